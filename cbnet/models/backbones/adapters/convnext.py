"""mmpretrain's ConvNeXt-shaped backbones: ConvNeXt (v1, and v2 with ``use_grn=True``), HorNet, EdgeNeXt.

They keep ``downsample_layers`` (the stem first) and ``stages`` side by side and an output norm ``norm{i}`` per
returned stage; skipped when mmpretrain is not installed.
"""
from typing import List, Tuple

import torch.nn as nn
from mmpretrain.models.backbones import ConvNeXt, EdgeNeXt, HorNet
from torch import Tensor
from torch.utils import checkpoint

from .base import register_adapter
from .layer_sequence import LayerSequenceAdapter


@register_adapter(ConvNeXt, HorNet, EdgeNeXt)
class ConvNeXtAdapter(LayerSequenceAdapter):
    """Stem = ``downsample_layers[0]``; stage i = ``downsample_layers[i]`` (i > 0) + ``stages[i]`` + ``norm{i}``
    on the output when it exists (the family builds it for returned stages only). Like ResNet, a stage's input is
    the previous stage's output. ``out_indices`` count stages (the stem is not counted); ``frozen_stages=k``
    freezes downsample layers and stages 0..k (HorNet, ConvNeXt: and their norms), ``with_cp`` holds in every
    branch (HorNet checkpoints whole stages, the others their blocks).
    """

    stem_counted = False
    output_norm = 'norm{}'
    #: LayerNorm/GRN families: the composite connections are 1x1 convs with bias, no norm
    connection_norm_cfg = None

    def layer_names(self, backbone: nn.Module) -> List[str]:
        return ['downsample_layers.0'] + [f'stages.{i}' for i in range(len(backbone.stages))]

    def unit_modules(self, backbone: nn.Module, j: int) -> List[str]:
        names = ([f'downsample_layers.{j}'] if j > 0 else []) + [f'stages.{j}']
        if j == 0 and isinstance(getattr(backbone, 'pos_embed', None), nn.Module):
            names.append('pos_embed')  # EdgeNeXt's positional encoding, added after stage 0
        return names

    def check(self, backbone: nn.Module) -> None:
        if getattr(backbone, 'gap_before_final_norm', False):
            raise ValueError(f'mmpretrain.{type(backbone).__name__} inside CBNet must keep spatial outputs: set '
                             'gap_before_final_norm=False (and out_indices=(0, 1, 2, 3) for detection).')

    def run_unit(self, backbone: nn.Module, j: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        if j > 0:
            h = backbone.downsample_layers[j](h)
        stage = backbone.stages[j]
        if isinstance(backbone, HorNet) and backbone.with_cp:  # HorNet's own: the whole stage, checkpointed
            h = checkpoint.checkpoint_sequential(stage, len(stage), h, use_reentrant=False)
        else:
            h = stage(h)
        if isinstance(backbone, EdgeNeXt) and backbone.pos_embed and j == 0:  # EdgeNeXt adds it after stage 0
            h = h + backbone.pos_embed((h.shape[0], *h.shape[2:]))
        return h, h

    def output(self, backbone: nn.Module, j: int, out: Tensor) -> Tensor:
        out = super().output(backbone, j, out)
        # HorNet and EdgeNeXt make their LayerNorm2d outputs contiguous, ConvNeXt does not: same values
        return out.contiguous() if isinstance(backbone, (HorNet, EdgeNeXt)) else out

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        return ['downsample_layers.0']
