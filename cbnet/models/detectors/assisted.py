"""Assistant supervision for any mmdet single- or two-stage detector (one mechanism, every detector).

In training, the features of every branch go through the SAME neck and heads; the base detector's own
``loss`` runs once per branch, so RPN, RoI heads, HTC's semantic branch or a dense head all behave exactly as
in mmdet. Assisting losses are scaled (0.5 by default) and renamed ``assist{k}_<key>`` so that they are told
apart from the lead's in the logs. In eval, the backbone returns the lead's features only, and necks and heads
run once, on the lead.
"""
import contextlib
from typing import Dict, List, Optional, Sequence, Union

from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.registry import MODELS
from torch import Tensor

from ...utils.compat_checks import check_neck_matches_backbone
from ..backbones import CBNet
from ..structures import MultiBranchFeatures


class AssistedDetectorMixin:
    """Mixed in front of an mmdet detector class: ``class CBFasterRCNN(AssistedDetectorMixin, FasterRCNN)``.

    Args:
        assist_loss_weights: weight of each assisting branch's losses (a float for all, or one per assisting
            branch, K-1 values); the official CBNetV2 uses 0.5.
        lead_loss_weight: weight of the lead's losses.
    """

    def __init__(self, *args, assist_loss_weights: Union[float, Sequence[float]] = 0.5,
                 lead_loss_weight: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.backbone, CBNet):
            raise TypeError(
                f'{type(self).__name__} needs a composite backbone (CBNet, CBResNet, CBSwinTransformer, ...), '
                f'got {type(self.backbone).__name__}. Wrap the backbone: backbone=dict(type=\'CBNet\', '
                f'backbone=<the backbone config>, num_backbones=2), or use the plain detector type '
                f"'{type(self).__name__[2:]}' for a single backbone.")
        if self.with_neck:  # a width mismatch would otherwise surface as a conv shape error in the first step
            check_neck_matches_backbone(self.backbone, self.neck)
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
        if not self.with_neck:
            return feats
        if isinstance(feats, MultiBranchFeatures):
            return feats.map(self.neck)
        return self.neck(feats)

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
        feats = self.extract_feat(batch_inputs)
        if not isinstance(feats, MultiBranchFeatures):  # backbone kept in eval mode: lead only
            with self._features(feats):
                return super().loss(batch_inputs, batch_data_samples)
        weights = self.assist_loss_weights + [self.lead_loss_weight]
        prefixes = [f'assist{k + 1}_' for k in range(len(weights) - 1)] + ['']
        losses: Dict[str, Tensor] = {}
        for branch, weight, prefix in zip(feats.branches, weights, prefixes):
            with self._features(branch):
                branch_losses = super().loss(batch_inputs, batch_data_samples)
            for key, value in branch_losses.items():
                losses[prefix + key] = _scale(value, weight) if 'loss' in key else value
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        with self._features(_lead(self.extract_feat(batch_inputs))):
            return super().predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        with self._features(_lead(self.extract_feat(batch_inputs))):
            return super()._forward(batch_inputs, batch_data_samples)


def _lead(feats):
    return feats.lead if isinstance(feats, MultiBranchFeatures) else feats


def _scale(value, weight: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * weight for v in value)
    return value * weight


def assisted(detector_cls: type) -> type:
    """``CB<Name>``: ``detector_cls`` with assistant supervision, registered in mmdet's MODELS."""
    name = f'CB{detector_cls.__name__}'
    existing = MODELS.module_dict.get(name)
    if existing is not None:
        return existing
    cls = type(name, (AssistedDetectorMixin, detector_cls), {
        '__doc__': f'{detector_cls.__name__} with a composite backbone and assistant supervision.',
        '__module__': __name__,
    })
    MODELS.register_module(name=name, module=cls)
    globals()[name] = cls
    return cls


def register_all() -> List[str]:
    """A CB variant of every single- and two-stage detector registered in mmdet."""
    import mmdet.models  # noqa: F401  (fills the registry)
    names = []
    for base in list(MODELS.module_dict.values()):
        if (isinstance(base, type) and issubclass(base, (SingleStageDetector, TwoStageDetector))
                and not issubclass(base, AssistedDetectorMixin)):
            names.append(assisted(base).__name__)
    return sorted(names)
