"""mmdet's EfficientNet, loaded like ``efficientnet/retinanet_effb3_fpn_*``: an mmpretrain EfficientNet
classifier file read with ``prefix='backbone'``. ``frozen_stages=k`` freezes the first k layers (k = 1: the
stem); the default is 0. B0 up to its last MBConv stage (the final 1x1 conv is built only when returned)."""
import torch.nn as nn

from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid


def save_mmpretrain_efficientnet(backbone: nn.Module, path: str) -> dict:
    overrides = save_mmpretrain_classifier(backbone, path)
    overrides['init_cfg']['prefix'] = 'backbone'  # as mmdet's EfficientNet configs write it
    return overrides


CASES = [
    BackboneCase(
        'EfficientNet',
        dict(type='EfficientNet', arch='b0', out_indices=(1, 2, 3, 4, 5, 6), init_cfg=None),
        write_checkpoint=save_mmpretrain_efficientnet,
        options=option_grid(frozen_stages=(0, 1, 2), norm_eval=(False, True)),
        with_cp=True),
]
