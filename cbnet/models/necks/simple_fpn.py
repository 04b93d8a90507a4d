"""ViTDet's simple feature pyramid: p2..p6 from the single stride-16 map of a plain ViT.

mmdet 3.3's package does not ship it (it lives in the repository's ``projects/ViTDet``, which pip does not
install), and a plain ViT (single or composite) needs it to feed mmdet's FPN-based heads. Registered as
``SimpleFeaturePyramid``; ``import cbnet`` also registers it as ``SimpleFPN`` when no ``SimpleFPN`` exists yet
(:mod:`cbnet.global_effects`), with the arguments of ``projects/ViTDet``'s, so that ViTDet neck configs work
unchanged. (To use that one instead, import ``projects.ViTDet.vitdet`` before ``cbnet``.)
``LN2d`` (LayerNorm over the channels of an NCHW map, ViTDet's norm for the pyramid and the heads) is registered
the same way.

A CB detector runs this one neck on every branch's features (shared weights), like any neck.
"""
from typing import List, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor


class LN2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (ViTDet's and ConvNeXt's "channels-first" LayerNorm)."""

    def __init__(self, num_channels: int, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Scale factors 4, 2, 1, 0.5 of the last input map (2x2 transposed convs, with norm + GELU between the two
    of the 4x branch / identity / 2x2 max pool), each then a 1x1 conv + norm and a 3x3 conv + norm to
    ``out_channels``; levels beyond 4 (``num_outs=5``: p6) are stride-2 subsamplings of the last.

    Args:
        backbone_channel: width of the backbone's map.
        in_channels: widths after the four rescalings; ViTDet's ``[C/4, C/2, C, C]``, which is what is built
            (any other value is an error, so that a config cannot silently disagree with the model).
        out_channels: width of every output level.
        num_outs: number of levels (>= 4).
        norm_cfg: norm after each conv and inside the 4x branch (ViTDet: ``dict(type='LN2d')``).
    """

    def __init__(self,
                 backbone_channel: int,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int = 5,
                 conv_cfg: Union[dict, None] = None,
                 norm_cfg: Union[dict, None] = dict(type='LN2d', eps=1e-6),
                 act_cfg: Union[dict, None] = None,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        super().__init__(init_cfg)
        c = backbone_channel
        expected = [c // 4, c // 2, c, c]
        if list(in_channels) != expected:
            raise ValueError(f'SimpleFeaturePyramid builds levels of widths {expected} from backbone_channel={c}; '
                             f'set in_channels={expected} (got {list(in_channels)}).')
        if num_outs < 4:
            raise ValueError(f'num_outs must be >= 4 (p2..p5 and extra max-pooled levels), got {num_outs}')
        self.backbone_channel = c
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        mid_norm = build_norm_layer(norm_cfg, c // 2)[1] if norm_cfg else nn.Identity()
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, 2, 2), mid_norm, nn.GELU(), nn.ConvTranspose2d(c // 2, c // 4, 2, 2))
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, 2))
        self.fpn3 = nn.Sequential(nn.Identity())
        self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
        convs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
        self.lateral_convs = nn.ModuleList(ConvModule(w, out_channels, 1, **convs) for w in self.in_channels)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, **convs) for _ in self.in_channels)

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> tuple:
        """``inputs``: the backbone's map or its tuple of maps (a ViT's out_indices); the last one is used."""
        x = inputs if isinstance(inputs, Tensor) else inputs[-1]
        levels = [self.fpn1(x), self.fpn2(x), self.fpn3(x), self.fpn4(x)]
        outs = [fpn(lateral(level)) for level, lateral, fpn in zip(levels, self.lateral_convs, self.fpn_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
