"""``CB<Name>`` for every mmdet detector of a known kind: single- and two-stage detectors (CBFasterRCNN,
CBMaskRCNN, CBCascadeRCNN, CBHybridTaskCascade, CBRetinaNet, CBATSS, CBFCOS, CBGFL, CBMask2Former, CBCornerNet,
...), DETR-style detectors (CBDETR, CBDeformableDETR, CBDINO, ...), grounding detectors (CBGLIP, CBGroundingDINO: the
text encoder runs once per batch) and instance segmentors (CBSOLOv2,
CBCondInst, CBYOLACT, ...), listed in ``CB_DETECTORS``."""
from . import assisted as _assisted
from . import detr, grounding, two_stage  # noqa: F401  (register their kinds before the classes are generated)
from .assisted import KINDS, NOT_COMPOSABLE, AssistedDetectorMixin, assisted, kind_of, register_all, register_kind
from .detr import DETRAssistedMixin
from .grounding import GLIPAssistedMixin, GroundingAssistedMixin, GroundingDINOAssistedMixin, LanguageModelNotFound
from .two_stage import TwoStageAssistedMixin

CB_DETECTORS = register_all()
globals().update({name: getattr(_assisted, name) for name in CB_DETECTORS})

__all__ = [
    'AssistedDetectorMixin', 'assisted', 'register_all', 'register_kind', 'kind_of', 'KINDS', 'NOT_COMPOSABLE',
    'CB_DETECTORS', 'DETRAssistedMixin', 'TwoStageAssistedMixin', 'GroundingAssistedMixin', 'GLIPAssistedMixin',
    'GroundingDINOAssistedMixin', 'LanguageModelNotFound'
]
__all__ += CB_DETECTORS
