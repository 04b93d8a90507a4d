"""mmdet's SSDVGG (SSD300/SSD512): one ``features`` sequence of VGG layers, cut into stages at its max-pools."""
import math
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmdet.models.backbones import SSDVGG
from torch import Tensor

from .base import BackboneAdapter, register_adapter


@register_adapter(SSDVGG)
class SSDVGGAdapter(BackboneAdapter):
    """Stem = VGG's first block (``features`` up to the first max-pool); stage i = from the i-th block-opening
    max-pool to the layer before the next one. For SSD300's VGG-16: stem = conv1 (full resolution), stages 0-4 =
    pool1 + conv2, pool2 + conv3, pool3 + conv4 (ending at ``features.22``, the ReLU of conv4_3), pool4 + conv5,
    and pool5 (stride 1) + fc6 + fc7 (ending at ``features.34``). A max-pool right after another one stays in
    the stage the first opens (``with_last_pool=True``: pool5 then SSD's stride-1 pool).

    ``out_feature_indices`` (the family's way to pick outputs, by position in ``features``) must therefore be
    stage ends: SSD's ``(22, 34)`` are stages 2 and 4. Any other index is refused, since a composite connection
    can only feed a stage input.

    L2Norm: SSD normalises conv4_3 in its neck (``SSDNeck(l2_norm_scale=20)``), not in the backbone. The neck is
    shared and runs on every branch, so every branch's conv4_3 output is normalised before its head, while the
    composite connections read the raw stage output (what VGG itself passes on to pool4); zero-initialised
    connections then leave every branch exactly the single SSD.
    """

    connection_norm_cfg = dict(type='BN', requires_grad=True)
    #: ceil-mode 2x2 pools, the stride-1 pool5 and the dilated fc6 (padding = dilation) run on a 1x1 map
    probe_cells = 1

    def _starts(self, backbone: SSDVGG) -> List[int]:
        """Index in ``features`` where the stem and each stage begin."""
        features = backbone.features
        opening = [
            j for j in range(1, len(features))
            if isinstance(features[j], nn.MaxPool2d) and not isinstance(features[j - 1], nn.MaxPool2d)
        ]
        return [0] + opening

    def _ranges(self, backbone: SSDVGG) -> List[range]:
        starts = self._starts(backbone) + [len(backbone.features)]
        return [range(a, b) for a, b in zip(starts[:-1], starts[1:])]

    def _names(self, backbone: SSDVGG, part: range) -> List[str]:
        return [f'features.{j}' for j in part if any(True for _ in backbone.features[j].parameters())]

    def num_stages(self, backbone: SSDVGG) -> int:
        return len(self._ranges(backbone)) - 1

    def stem_modules(self, backbone: SSDVGG) -> List[str]:
        return self._names(backbone, self._ranges(backbone)[0])

    def stage_modules(self, backbone: SSDVGG, i: int) -> List[str]:
        return self._names(backbone, self._ranges(backbone)[i + 1])

    def out_indices(self, backbone: SSDVGG) -> Sequence[int]:
        ends = [part[-1] for part in self._ranges(backbone)[1:]]
        return tuple(ends.index(j) for j in sorted(set(backbone.out_feature_indices)))

    def check(self, backbone: SSDVGG) -> None:
        ranges = self._ranges(backbone)
        ends = [part[-1] for part in ranges[1:]]
        wrong = [j for j in backbone.out_feature_indices if j not in ends]
        if wrong:
            raise ValueError(
                f'SSDVGG inside CBNet: out_feature_indices {tuple(backbone.out_feature_indices)} must be ends of '
                f'VGG stages (the layer before a max-pool, or the last layer), so that the composite can feed the '
                f'next stage; {wrong} are not. Stage ends of this VGG: {ends} (SSD uses (22, 34) for VGG-16). The '
                f'stem (features 0..{ranges[0][-1]}) is not an output.')

    def total_stride(self, backbone: SSDVGG) -> int:
        pools = [backbone.features[j] for j in self._starts(backbone)[1:]]
        return math.prod(p.stride if isinstance(p.stride, int) else p.stride[0] for p in pools)

    def _run(self, backbone: SSDVGG, part: range, x: Tensor) -> Tensor:
        for j in part:
            x = backbone.features[j](x)
        return x

    def run_stem(self, backbone: SSDVGG, x: Tensor) -> Tensor:
        return self._run(backbone, self._ranges(backbone)[0], x)

    def run_stage(self, backbone: SSDVGG, i: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        out = self._run(backbone, self._ranges(backbone)[i + 1], h)
        return out, out
