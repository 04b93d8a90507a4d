"""mmpretrain's ConvNeXt (``type='mmpretrain.ConvNeXt'``); skipped when mmpretrain is not installed."""
from typing import List, Tuple

from mmpretrain.models.backbones import ConvNeXt
from torch import Tensor

from .base import BackboneAdapter, register_adapter


@register_adapter(ConvNeXt)
class ConvNeXtAdapter(BackboneAdapter):
    """Stem = ``downsample_layers[0]``; stage i = ``downsample_layers[i]`` (i > 0) + ``stages[i]`` +
    ``norm{i}`` on the output when it exists. Like ResNet, a stage's input is the previous stage's output."""

    #: zero-padded depthwise convs and 2x2 downsampling run on any map: the probe may end at 1x1
    probe_cells = 1

    def num_stages(self, backbone: ConvNeXt) -> int:
        return len(backbone.stages)

    def stem_modules(self, backbone: ConvNeXt) -> List[str]:
        return ['downsample_layers.0']

    def stage_modules(self, backbone: ConvNeXt, i: int) -> List[str]:
        names = [f'downsample_layers.{i}'] if i > 0 else []
        names.append(f'stages.{i}')
        return names + ([f'norm{i}'] if hasattr(backbone, f'norm{i}') else [])

    def check(self, backbone: ConvNeXt) -> None:
        if backbone.gap_before_final_norm:
            raise ValueError('mmpretrain.ConvNeXt inside CBNet must keep spatial outputs: set '
                             'gap_before_final_norm=False (and out_indices=(0, 1, 2, 3) for detection).')

    def run_stem(self, backbone: ConvNeXt, x: Tensor) -> Tensor:
        return backbone.downsample_layers[0](x)

    def run_stage(self, backbone: ConvNeXt, i: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        if i > 0:
            h = backbone.downsample_layers[i](h)
        h = backbone.stages[i](h)
        norm = getattr(backbone, f'norm{i}', None)
        return h, (norm(h) if norm is not None else h)
