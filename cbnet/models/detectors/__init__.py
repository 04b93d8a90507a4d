"""``CB<Name>`` for every mmdet single- and two-stage detector: CBFasterRCNN, CBMaskRCNN, CBCascadeRCNN,
CBHybridTaskCascade, CBRetinaNet, CBATSS, CBFCOS, CBGFL, ... (listed in ``CB_DETECTORS``)."""
from . import assisted as _assisted
from .assisted import AssistedDetectorMixin, assisted, register_all

CB_DETECTORS = register_all()
globals().update({name: getattr(_assisted, name) for name in CB_DETECTORS})

__all__ = ['AssistedDetectorMixin', 'assisted', 'register_all', 'CB_DETECTORS'] + CB_DETECTORS
