"""mmdet's CSPNeXt (RTMDet, from mmdet's ImageNet-pretrained CSPNeXt classifiers: ``prefix='backbone.'``) and
CSPDarknet (YOLOX, trained from scratch in the zoo: its file here is a YOLOX detector's, ``prefix='backbone.'``).
``deepen_factor``/``widen_factor`` make them tiny; ``frozen_stages=k`` freezes the stem and ``stage1..k``."""
import torch
import torch.nn as nn

from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid

_TINY = dict(deepen_factor=0.33, widen_factor=0.125, out_indices=(1, 2, 3, 4), init_cfg=None)
_TRAINING = option_grid(frozen_stages=(-1, 0, 1, 2), norm_eval=(False, True))


def save_detector(backbone: nn.Module, path: str) -> dict:
    """An mmdet detector checkpoint (backbone, neck and head keys), read for its backbone with ``prefix``."""
    state = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    state['neck.reduce_layers.0.conv.weight'] = torch.zeros(4, 4, 1, 1)
    torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': ('a', 'b')}}}, path)
    return dict(init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))


CASES = [
    BackboneCase(
        'CSPNeXt',
        dict(type='CSPNeXt', arch='P5', expand_ratio=0.5, channel_attention=True, **_TINY),
        write_checkpoint=save_mmpretrain_classifier,
        options=_TRAINING),
    # the out_indices of mmdet's RTMDet-X P6
    BackboneCase(
        'CSPNeXt-P6-depthwise',
        dict(type='CSPNeXt', arch='P6', use_depthwise=True, **dict(_TINY, out_indices=(2, 3, 4, 5))),
        write_checkpoint=save_mmpretrain_classifier,
        options=option_grid(frozen_stages=(-1, 3))),
    BackboneCase('CSPDarknet', dict(type='CSPDarknet', **_TINY), write_checkpoint=save_detector, options=_TRAINING),
]
