"""The DETR kind (DETR, Conditional/DAB/Deformable DETR, DINO, DDQ-DETR): branches one after the other, or all
stacked along the batch through one neck/transformer pass with the losses split per branch afterwards."""
from typing import Dict, List

import torch
from mmdet.models.detectors import DABDETR, DDQDETR, DetectionTransformer
from torch import Tensor

from ..structures import MultiBranchFeatures
from .assisted import AssistedDetectorMixin, register_kind

BRANCH_BATCHING = ('sequential', 'stacked')

#: the batch dimension of the transformer outputs that the bbox head reads (0 unless listed)
_BATCH_DIMS: Dict[type, Dict[str, int]] = {
    DetectionTransformer: {
        'hidden_states': 1
    },  # (num_layers, batch, queries, dim)
    DABDETR: {
        'hidden_states': 1,
        'references': 1
    },  # its decoder stacks the references per layer too
}
#: detectors whose transformer couples the images of a batch, so a stacked batch is not K separate ones
_NOT_STACKABLE = {
    DDQDETR: 'its distinct-query selection pads the dense queries of all images of the batch to the longest',
}


@register_kind(DetectionTransformer)
class DETRAssistedMixin(AssistedDetectorMixin):
    """Assistant supervision of DETR-style detectors: every branch's features go through the SAME neck
    (ChannelMapper), encoder, decoder and head; denoising queries (DINO) and two-stage proposals are made per
    branch, and each branch's losses are normalised over its own boxes, as in the plain detector.

    Args:
        branch_batching: ``'sequential'`` (default): the detector's own ``loss`` runs once per branch, which
            works for every DETR-style detector and gives each branch exactly the plain detector's loss.
            A Dual DINO-R50 training step on a CPU took 2.15x the single one's time this way and 1.99x stacked
            (min of 3 alternating rounds whose ranges overlap; same peak memory, 2.04x vs 2.05x): too small a
            gain to give up the generality, so stacking is an option.
            ``'stacked'``: the branches' features are concatenated along the batch and run through the neck
            and transformer in ONE pass (the data samples repeated per branch); the head's loss is then
            computed per branch on its slice. Same losses up to float error where the neck has no batch
            statistics (ChannelMapper with GN or no norm) and no random draws differ (dropout, DINO's noise).
    """

    kind_options = ('branch_batching', )

    def __init__(self, *args, branch_batching: str = 'sequential', **kwargs) -> None:
        if branch_batching not in BRANCH_BATCHING:
            raise ValueError(f"branch_batching must be 'sequential' (one pass per branch) or 'stacked' (all "
                             f'branches in one batch), got {branch_batching!r}')
        super().__init__(*args, **kwargs)
        if branch_batching == 'stacked':
            reason = next((why for cls, why in _NOT_STACKABLE.items() if isinstance(self, cls)), None)
            if reason is None and _overrides_loss(type(self)):
                reason = 'it overrides DetectionTransformer.loss, so its losses cannot be split per branch'
            if reason:
                raise ValueError(f"branch_batching='stacked' does not work for {type(self).__name__}: {reason}. "
                                 "Use branch_batching='sequential'.")
        self.branch_batching = branch_batching

    def branch_losses(self, feats: MultiBranchFeatures, batch_inputs: Tensor, batch_data_samples) -> List[dict]:
        if self.branch_batching == 'sequential':
            return super().branch_losses(feats, batch_inputs, batch_data_samples)
        num_branches, batch_size = feats.num_branches, len(batch_data_samples)
        stacked = tuple(torch.cat(levels, dim=0) for levels in zip(*feats.branches))
        head_inputs = self.forward_transformer(self.shared_neck(stacked), list(batch_data_samples) * num_branches)
        dims = self._batch_dims()
        return [
            self.bbox_head.loss(
                **_batch_slice(head_inputs, dims, k, batch_size, num_branches), batch_data_samples=batch_data_samples)
            for k in range(num_branches)
        ]

    def _batch_dims(self) -> Dict[str, int]:
        dims: Dict[str, int] = {}
        for cls in reversed(type(self).__mro__):  # most specific last, so it wins
            dims.update(_BATCH_DIMS.get(cls, {}))
        return dims


def _overrides_loss(cls: type) -> bool:
    """Whether a class between the mixin and DetectionTransformer defines its own ``loss``."""
    mro = cls.__mro__
    for base in mro[mro.index(AssistedDetectorMixin) + 1:]:
        if base is DetectionTransformer:
            return False
        if 'loss' in vars(base):
            return True
    return False


def _batch_slice(head_inputs: dict, dims: Dict[str, int], k: int, batch_size: int, num_branches: int) -> dict:
    """Branch ``k``'s part of the stacked transformer outputs (``batch_size`` images of ``num_branches``)."""

    def take(key, value, dim):
        if isinstance(value, Tensor):
            if value.dim() <= dim or value.shape[dim] != batch_size * num_branches:
                raise RuntimeError(f'stacked branch batching: {key} has shape {tuple(value.shape)}, expected '
                                   f'{batch_size * num_branches} (= {num_branches} branches x {batch_size} '
                                   f'images) along dim {dim}')
            return value.narrow(dim, k * batch_size, batch_size)
        if isinstance(value, (list, tuple)):
            return type(value)(take(key, v, dim) for v in value)
        return value  # None, dn_meta (the same for every branch: its groups depend on the gt counts only)

    return {key: take(key, value, dims.get(key, 0)) for key, value in head_inputs.items()}
