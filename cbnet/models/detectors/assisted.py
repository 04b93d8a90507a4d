"""Assistant supervision for any mmdet detector (one mechanism, every detector kind).

In training, the features of every branch go through the SAME neck and heads; the base detector's own
``loss`` runs once per branch, so RPN, RoI heads, HTC's semantic branch, a dense head, a DETR transformer or a
Mask2Former pixel decoder all behave exactly as in mmdet. Assisting losses are scaled (0.5 by default) and
renamed ``assist{k}_<key>`` so that they are told apart from the lead's in the logs. In eval, the backbone
returns the lead's features only, and necks and heads run once, on the lead.

A detector *kind* (two-stage, DETR, ...) may change how the branches are run through
:meth:`AssistedDetectorMixin.branch_losses` (e.g. two-stage detectors train every branch's RoI head on the
lead's proposals): it is a subclass of the mixin registered with :func:`register_kind`, never a copy of a
detector's ``loss``.
"""
import contextlib
import copy
import inspect
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmdet.models.detectors import SingleStageDetector
from mmdet.models.detectors.single_stage_instance_seg import SingleStageInstanceSegmentor
from mmdet.registry import MODELS
from torch import Tensor

from ...utils.compat_checks import check_neck_matches_backbone, check_pyramid_strides
from ..backbones import CBNet
from ..structures import MultiBranchFeatures

#: detector base class -> the mixin of its kind (filled by :func:`register_kind`; most specific base wins)
KINDS: Dict[type, type] = {}
#: detector classes that get no CB variant, and why (their backbone or wrapper cannot hold a composite one)
NOT_COMPOSABLE: Dict[str, str] = {
    'TridentFasterRCNN': ('TridentNet multiplies the batch by its branches inside the last backbone stage '
                          '(TridentResNet) and its detector reads backbone.num_branch: the composite connections '
                          'cannot feed such a stage. Use the Faster R-CNN config of the same backbone.'),
}


class AssistedDetectorMixin:
    """Mixed in front of an mmdet detector class: ``class CBFasterRCNN(AssistedDetectorMixin, FasterRCNN)``.

    Args:
        assist_loss_weights: weight of each assisting branch's losses (a float for all, or one per assisting
            branch, K-1 values); the official CBNetV2 uses 0.5.
        lead_loss_weight: weight of the lead's losses.
    """

    #: options a kind adds to the constructor (checked so that an option of another kind is a clear error)
    kind_options: Tuple[str, ...] = ()

    def __init__(self,
                 *args,
                 assist_loss_weights: Union[float, Sequence[float]] = 0.5,
                 lead_loss_weight: float = 1.0,
                 **kwargs) -> None:
        _refuse_foreign_options(type(self), kwargs)
        super().__init__(*args, **kwargs)
        if not isinstance(self.backbone, CBNet):
            raise TypeError(
                f'{type(self).__name__} needs a composite backbone (CBNet, CBResNet, CBSwinTransformer, ...), '
                f'got {type(self.backbone).__name__}. Wrap the backbone: backbone=dict(type=\'CBNet\', '
                f'backbone=<the backbone config>, num_backbones=2), or use the plain detector type '
                f"'{type(self).__name__[2:]}' for a single backbone.")
        if self.with_neck:  # a width mismatch would otherwise surface as a conv shape error in the first step
            _check_neck(self.backbone, self.neck)
        check_pyramid_strides(self)  # a stride mismatch would train silently with wrong anchors / RoI levels
        num_assisting = self.backbone.num_backbones - 1
        if isinstance(assist_loss_weights, (int, float)):
            assist_loss_weights = [float(assist_loss_weights)] * num_assisting
        if len(assist_loss_weights) != num_assisting:
            raise ValueError(f'assist_loss_weights has {len(assist_loss_weights)} values but the backbone has '
                             f'{num_assisting} assisting branch(es): give one value per assisting branch.')
        self.assist_loss_weights: List[float] = [float(w) for w in assist_loss_weights]
        self.lead_loss_weight = float(lead_loss_weight)
        self._given_feats = None

    # -- features ----------------------------------------------------------------------------------------
    def extract_feat(self, batch_inputs: Tensor):
        """Backbone + shared neck. In training: :class:`MultiBranchFeatures`; in eval: the lead's features."""
        if self._given_feats is not None:
            return self._given_feats
        feats = self.backbone(batch_inputs)
        if isinstance(feats, MultiBranchFeatures):
            return feats.map(self.shared_neck)
        return self.shared_neck(feats)

    def shared_neck(self, feats):
        """The neck every branch goes through (none for neck-less detectors: the heads read the backbone)."""
        return self.neck(feats) if self.with_neck else feats

    @contextlib.contextmanager
    def _features(self, feats):
        """Make the base class's ``extract_feat`` call return ``feats`` (one branch's)."""
        self._given_feats = feats
        try:
            yield
        finally:
            self._given_feats = None

    # -- modes ---------------------------------------------------------------------------------------------
    def loss(self, batch_inputs: Tensor, batch_data_samples) -> Dict[str, Tensor]:
        feats = self.backbone(batch_inputs)
        if not isinstance(feats, MultiBranchFeatures):  # backbone kept in eval mode: lead only
            return self.branch_loss(self.shared_neck(feats), batch_inputs, batch_data_samples)
        per_branch = self.branch_losses(feats, batch_inputs, batch_data_samples)
        weights = self.assist_loss_weights + [self.lead_loss_weight]
        prefixes = [f'assist{k + 1}_' for k in range(len(weights) - 1)] + ['']
        losses: Dict[str, Tensor] = {}
        for branch_losses, weight, prefix in zip(per_branch, weights, prefixes):
            for key, value in branch_losses.items():
                losses[prefix + key] = _scale(value, weight) if 'loss' in key else value
        return losses

    def branch_losses(self, feats: MultiBranchFeatures, batch_inputs: Tensor, batch_data_samples) -> List[dict]:
        """The unweighted losses of every branch (assisting first, lead last). Kinds override this."""
        return [
            self.branch_loss(self.shared_neck(branch), batch_inputs, batch_data_samples) for branch in feats.branches
        ]

    def branch_loss(self, feats, batch_inputs: Tensor, batch_data_samples) -> dict:
        """The base detector's own ``loss`` on one branch's (neck) features, with its own copy of the data
        samples: some heads convert the ground truth in place (RTMDet-Ins turns its masks into tensors), which
        the next branch would otherwise receive."""
        with self._features(feats):
            return super().loss(batch_inputs, copy.deepcopy(batch_data_samples))

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        with self._features(_lead(self.extract_feat(batch_inputs))):
            return super().predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        with self._features(_lead(self.extract_feat(batch_inputs))):
            return super()._forward(batch_inputs, batch_data_samples)


def _check_neck(backbone: CBNet, neck) -> None:
    """The neck's ``in_channels`` against the composite's widths; necks that list them deepest first
    (YOLOV3Neck reads ``feats[-1]`` with ``in_channels[0]``) match the reversed widths."""
    given = getattr(neck, 'in_channels', None)
    widths = [backbone.stage_out_channels[i] for i in backbone.out_indices]
    if isinstance(given, (list, tuple)) and len(given) > 1 and list(given) == widths[::-1]:
        return
    check_neck_matches_backbone(backbone, neck)


def _lead(feats):
    return feats.lead if isinstance(feats, MultiBranchFeatures) else feats


def _scale(value, weight: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * weight for v in value)
    return value * weight


def _refuse_foreign_options(cls: type, kwargs: dict) -> None:
    """An option of another detector kind (e.g. ``assist_proposals`` on a one-stage detector) is an error
    that names the kind it belongs to, instead of mmdet's bare ``unexpected keyword argument``."""
    for base, kind in KINDS.items():
        for option in set(kind.kind_options) & set(kwargs):
            raise TypeError(f'{option} is an option of CB {base.__name__} detectors (subclasses of mmdet\'s '
                            f'{base.__name__}); {cls.__name__} is not one: remove {option} from its config.')


# -- kinds and registration ------------------------------------------------------------------------------
def register_kind(base: type) -> Callable[[type], type]:
    """Register ``mixin`` (a subclass of :class:`AssistedDetectorMixin`) as the kind of ``base``'s detectors."""

    def register(mixin: type) -> type:
        if not issubclass(mixin, AssistedDetectorMixin):
            raise TypeError(f'a detector kind must subclass AssistedDetectorMixin, got {mixin.__name__}')
        KINDS[base] = mixin
        return mixin

    return register


# one-stage detectors (incl. MaskFormer/Mask2Former, CornerNet) and instance segmentors need no hook
register_kind(SingleStageDetector)(AssistedDetectorMixin)
register_kind(SingleStageInstanceSegmentor)(AssistedDetectorMixin)


def kind_of(detector_cls: type) -> Optional[type]:
    """The kind mixin of ``detector_cls``: the one registered for its most specific base class."""
    for base in detector_cls.__mro__:
        if base in KINDS:
            return KINDS[base]
    return None


def assisted(detector_cls: type) -> type:
    """``CB<Name>``: ``detector_cls`` with assistant supervision, registered in mmdet's MODELS."""
    name = f'CB{detector_cls.__name__}'
    existing = MODELS.module_dict.get(name)
    if existing is not None:
        return existing
    kind = kind_of(detector_cls)
    if kind is None:
        raise TypeError(f'{detector_cls.__name__} is no subclass of a detector kind cbnet knows '
                        f'({", ".join(b.__name__ for b in KINDS)}): it has no CB variant.')
    if detector_cls.__name__ in NOT_COMPOSABLE:
        raise TypeError(f'{detector_cls.__name__} has no CB variant: {NOT_COMPOSABLE[detector_cls.__name__]}')
    cls = type(
        name, (kind, detector_cls), {
            '__doc__': f'{detector_cls.__name__} with a composite backbone and assistant supervision.',
            '__module__': __name__,
        })
    MODELS.register_module(name=name, module=cls)
    globals()[name] = cls  # importable by name, so that it pickles like a normal class
    return cls


def register_all() -> List[str]:
    """A CB variant of every concrete mmdet detector of a registered kind (idempotent: a second call
    returns the same names and registers nothing new)."""
    import mmdet.models  # noqa: F401  (fills the registry)
    names = []
    for base in list(MODELS.module_dict.values()):
        if (isinstance(base, type) and kind_of(base) is not None and not issubclass(base, AssistedDetectorMixin)
                and not inspect.isabstract(base) and base.__name__ not in NOT_COMPOSABLE):
            names.append(assisted(base).__name__)
    return sorted(names)
