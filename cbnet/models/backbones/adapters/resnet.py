"""mmdet's ResNet family: ResNet, ResNetV1d, ResNeXt, Res2Net (subclasses), RegNet (no max-pool) and DetectoRS'
ResNet with SAC (its Recursive Feature Pyramid is refused)."""
import math
from typing import List, Tuple

import torch.nn as nn
from mmdet.models.backbones import DetectoRS_ResNet, RegNet, ResNet
from torch import Tensor

from .base import BackboneAdapter, register_adapter


@register_adapter(ResNet)
class ResNetAdapter(BackboneAdapter):
    """Stem = conv1/norm1/relu (or the deep stem) + max-pool; stage i = ``res_layers[i]``, no output norm."""

    connection_norm_cfg = dict(type='BN', requires_grad=True)
    stem_stride = 4  # stride-2 conv, stride-2 max-pool

    def num_stages(self, backbone: ResNet) -> int:
        return len(backbone.res_layers)

    def stem_modules(self, backbone: ResNet) -> List[str]:
        return ['stem'] if backbone.deep_stem else ['conv1', backbone.norm1_name]

    def stage_modules(self, backbone: ResNet, i: int) -> List[str]:
        return [backbone.res_layers[i]]

    def total_stride(self, backbone: ResNet) -> int:
        return self.stem_stride * math.prod(backbone.strides[:self.num_stages(backbone)])

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

    stem_stride = 2

    def run_stem(self, backbone: nn.Module, x: Tensor) -> Tensor:
        return backbone.relu(backbone.norm1(backbone.conv1(x)))


@register_adapter(DetectoRS_ResNet)
class DetectoRSResNetAdapter(ResNetAdapter):
    """DetectoRS' ResNet runs like a ResNet: Switchable Atrous Convolution (SAC) lives inside its stages.

    Its Recursive Feature Pyramid does not: the RFP neck feeds the pyramid back into the backbone through
    ``rfp_forward`` (and expects the image as an extra first output, ``output_img=True``), a second pass the
    composite backbone has no place for.
    """

    def check(self, backbone: DetectoRS_ResNet) -> None:
        if backbone.output_img or backbone.rfp_inplanes:
            raise ValueError(
                'CBNet cannot wrap DetectoRS with its Recursive Feature Pyramid (neck RFP, backbone output_img=True '
                'or rfp_inplanes): the RFP neck runs the backbone a second time through rfp_forward, which a '
                'composite backbone does not have. Use the SAC-only DetectoRS backbone (e.g. '
                'mmdet::detectors/cascade-rcnn_r50-sac_1x_coco.py: DetectoRS_ResNet with sac=..., no output_img, '
                'no rfp_inplanes, neck FPN); the composite connections take the place of the recursive feedback.')
