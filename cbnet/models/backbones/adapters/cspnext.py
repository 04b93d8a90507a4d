"""mmdet's CSP backbones: CSPNeXt (RTMDet) and CSPDarknet (YOLOX), P5 and P6 alike."""
from typing import List

from mmdet.models.backbones import CSPDarknet, CSPNeXt

from .base import register_adapter
from .layer_sequence import LayerSequenceAdapter


@register_adapter(CSPNeXt, CSPDarknet)
class CSPAdapter(LayerSequenceAdapter):
    """Stem = ``stem`` (CSPNeXt's three 3x3 convs, CSPDarknet's Focus: stride 2); stage i = ``stage{i + 1}``
    (a stride-2 conv, the SPP block in the last stage, the CSP layer).

    The family's ``out_indices`` count the stem as 0, so its usual ``(2, 3, 4)`` are CBNet stages 1, 2, 3 (strides
    8, 16, 32). ``frozen_stages=k`` (the family's: stem and ``stage1..k``) and ``norm_eval`` run in every branch.
    ``del_stages=1`` shares the stem and ``stage1`` (stride 4), as the official ResNet models share their stem
    and ``layer1``.
    """

    def layer_names(self, backbone: CSPNeXt) -> List[str]:
        return list(backbone.layers)

    def total_stride(self, backbone: CSPNeXt) -> int:
        return 2**len(backbone.layers)  # every layer (stem included) halves the map: 32 for P5, 64 for P6
