"""mmdet's ResNet family: ResNet, ResNetV1d, ResNeXt, Res2Net (subclasses) and RegNet (no max-pool)."""
from typing import List, Tuple

import torch.nn as nn
from mmdet.models.backbones import RegNet, ResNet
from torch import Tensor

from .base import BackboneAdapter, register_adapter


@register_adapter(ResNet)
class ResNetAdapter(BackboneAdapter):
    """Stem = conv1/norm1/relu (or the deep stem) + max-pool; stage i = ``res_layers[i]``, no output norm."""

    connection_norm_cfg = dict(type='BN', requires_grad=True)

    def num_stages(self, backbone: ResNet) -> int:
        return len(backbone.res_layers)

    def stem_modules(self, backbone: ResNet) -> List[str]:
        return ['stem'] if backbone.deep_stem else ['conv1', backbone.norm1_name]

    def stage_modules(self, backbone: ResNet, i: int) -> List[str]:
        return [backbone.res_layers[i]]

    def run_stem(self, backbone: ResNet, x: Tensor) -> Tensor:
        if backbone.deep_stem:
            x = backbone.stem(x)
        else:
            x = backbone.relu(backbone.norm1(backbone.conv1(x)))
        return backbone.maxpool(x)

    def run_stage(self, backbone: ResNet, i: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        out = getattr(backbone, backbone.res_layers[i])(h)
        return out, out


@register_adapter(RegNet)
class RegNetAdapter(ResNetAdapter):
    """RegNet builds a ResNet-style stem without the max-pool."""

    def run_stem(self, backbone: nn.Module, x: Tensor) -> Tensor:
        return backbone.relu(backbone.norm1(backbone.conv1(x)))
