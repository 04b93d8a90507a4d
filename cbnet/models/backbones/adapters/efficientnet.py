"""mmdet's EfficientNet (``efficientnet/retinanet_effb3_fpn_*``), loaded from mmpretrain's EfficientNet files."""
from typing import List

from mmdet.models.backbones import EfficientNet

from .base import register_adapter
from .layer_sequence import LayerSequenceAdapter


@register_adapter(EfficientNet)
class EfficientNetAdapter(LayerSequenceAdapter):
    """Stem = ``layers[0]`` (stride-2 conv); stage i = ``layers[i + 1]``: the MBConv stages and, when
    ``out_indices`` ask for it, the final 1x1 conv (the family builds nothing after its last returned layer).

    The family's ``out_indices`` count the stem as 0: RetinaNet-B3's ``(3, 4, 5)`` are CBNet stages 2, 3, 4.
    ``frozen_stages=k`` freezes the first k layers (the stem for k = 1), ``norm_eval``, ``with_cp`` and the drop
    path of the blocks hold in every branch.
    """

    def layer_names(self, backbone: EfficientNet) -> List[str]:
        return [f'layers.{i}' for i in range(len(backbone.layers))]
