"""Layer-wise lr decay for plain-ViT detectors, single or composite (ViTDet and EVA-02 recipes).

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` gives the parameters of block j the lr
``lr * decay ** (num_layers + 1 - (j + 1))`` but asks the *model* for ``get_layer_depth``, which mmdet detectors
do not have, and a composite backbone's names (``backbone.branches.1.layers.3...``) are not the ViT's. This
subclass supplies the depth of every detector parameter:

- every branch's block j: layer j + 1, the same in every branch; the embedding (patch and position embedding,
  class/distillation tokens, pre-norm): layer 0;
- a composite connection into group g: the depth of the first block of group g (it feeds that block);
- other backbone parameters: what the ViT's own ``get_layer_depth`` says (final norm, BEiT's shared relative
  position bias, SAM's channel reduction: the last layer); neck and heads: the last layer (full lr).

It accepts a plain mmpretrain ViT backbone too (the single-backbone baseline of the same recipe).
``paramwise_cfg`` is mmpretrain's: ``layer_decay_rate``, ``norm_decay_mult``, ``bias_decay_mult``,
``flat_decay_mult``, ``custom_keys`` (weight decay only).
"""
import re
from typing import Callable, List, Optional, Tuple

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor

from ..models.backbones import CBNet
from ..models.backbones.adapters.plain_vit import PlainViTAdapter

_BRANCH = re.compile(r'^backbone\.branches\.\d+\.(.+)$')
_CONNECTION = re.compile(r'^backbone\.composition\.connections\.\d+\.into(\d+)_from\d+\.')
_BLOCK = re.compile(r'^layers\.(\d+)\.')

LayerDepth = Callable[[str], Tuple[int, int]]


def _under(name: str, modules: List[str]) -> bool:
    return any(name == m or name.startswith(m + '.') for m in modules)


def composite_vit_layer_depth(backbone: CBNet) -> LayerDepth:
    """``param name -> (layer id, number of layer ids)`` for a detector whose backbone is a composite plain ViT."""
    if not isinstance(backbone.adapter, PlainViTAdapter):
        raise TypeError(f'this constructor decays plain ViTs by block; the composite backbone wraps '
                        f'{type(backbone.branches[0]).__name__}. For ConvNeXt use '
                        "CBLearningRateDecayOptimizerConstructor.")
    first = backbone.branches[0]  # never pruned: it names every part
    adapter = backbone.adapter
    stem = adapter.stem_modules(first)
    group_start = [g[0] for g in adapter.groups(first)]
    num_ids = len(first.layers) + 2

    def depth(name: str) -> Tuple[int, int]:
        connection = _CONNECTION.match(name)
        if connection:
            return group_start[int(connection.group(1))] + 1, num_ids
        branch = _BRANCH.match(name)
        if not branch:
            return num_ids - 1, num_ids  # neck, heads
        inner = branch.group(1)
        block = _BLOCK.match(inner)
        if block:
            return int(block.group(1)) + 1, num_ids
        if _under(inner, stem):
            return 0, num_ids
        if hasattr(first, 'get_layer_depth'):
            return first.get_layer_depth(inner)[0], num_ids
        return num_ids - 1, num_ids

    return depth


def detector_layer_depth(model: nn.Module) -> LayerDepth:
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, CBNet):
        return composite_vit_layer_depth(backbone)
    if hasattr(backbone, 'get_layer_depth'):
        return lambda name: backbone.get_layer_depth(name, prefix='backbone.')
    raise TypeError(f'{type(model).__name__} has no plain-ViT backbone (one with get_layer_depth, or a CBNet of '
                    'one): layer-wise lr decay by block does not apply.')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CBLearningRateDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-wise lr decay for mmdet detectors with a (composite) plain-ViT backbone."""

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[LayerDepth] = None,
                   **kwargs) -> None:
        if get_layer_depth is None:
            get_layer_depth = detector_layer_depth(module)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth, **kwargs)
