"""mmdet's MobileNetV2 (YOLOv3-MobileNetV2, SSDLite)."""
from typing import List

from mmdet.models.backbones import MobileNetV2

from .base import register_adapter
from .layer_sequence import LayerSequenceAdapter


@register_adapter(MobileNetV2)
class MobileNetV2Adapter(LayerSequenceAdapter):
    """Stem = ``conv1``; stage i = ``layers[i]``: ``layer1`` .. ``layer7`` (the inverted-residual stages) and
    ``conv2`` (the final 1x1 conv), eight stages as the family's ``out_indices`` count them (0..7, stem not
    counted: SSDLite's ``(4, 7)`` are ``layer5`` and ``conv2``).

    The eight stages are the family's own, also where two share a resolution (``layer4``/``layer5`` at stride 16,
    ``layer6``/``layer7``/``conv2`` at stride 32): ``out_indices`` and ``frozen_stages`` address them one by one,
    and DHLC connects each to every earlier-or-equal stage input of the next branch.
    """

    stem_counted = False

    def layer_names(self, backbone: MobileNetV2) -> List[str]:
        return ['conv1'] + list(backbone.layers)
