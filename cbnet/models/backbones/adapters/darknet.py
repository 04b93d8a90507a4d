"""mmdet's Darknet (YOLOv3's Darknet-53)."""
from typing import List

from mmdet.models.backbones import Darknet

from .base import register_adapter
from .layer_sequence import LayerSequenceAdapter


@register_adapter(Darknet)
class DarknetAdapter(LayerSequenceAdapter):
    """Stem = ``conv1`` (a stride-1 3x3 conv); stage i = ``conv_res_block{i + 1}`` (a stride-2 conv, then
    residual blocks): five stages of strides 2 to 32.

    The family's ``out_indices`` count the stem as 0: YOLOv3's ``(3, 4, 5)`` are CBNet stages 2, 3, 4.
    ``frozen_stages=k`` freezes Darknet's first k layers (``conv1`` for k = 1) in every branch. Darknet has one
    stride-2 stage more than ResNet before stride 4, so ``del_stages=1`` shares the stem and the stride-2 stage;
    ``del_stages=2`` shares up to stride 4 as the official ResNet models do.
    """

    def layer_names(self, backbone: Darknet) -> List[str]:
        return list(backbone.cr_blocks)
