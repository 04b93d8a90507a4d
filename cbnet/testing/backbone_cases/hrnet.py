"""mmdet's HRNet, loaded like ``hrnet/*_hrnetv2p-w32*``: the MSRA ImageNet file (``open-mmlab://msra/hrnetv2_w32``,
a bare state dict with the classifier's extra layers, read without prefix). One module and one block per stage,
streams 8 to 64 wide (the stem is 64 wide in HRNet itself). HRNet has ``norm_eval`` and ``with_cp``, no
``frozen_stages``."""
import torch
import torch.nn as nn

from . import BackboneCase, option_grid


def save_msra_hrnet(backbone: nn.Module, path: str) -> dict:
    """The backbone's weights and, as in the MSRA files, the classification head HRNet does not build."""
    state = dict(backbone.state_dict())
    state.update({
        'incre_modules.0.0.conv1.weight': torch.zeros(4, 8, 1, 1),
        'classifier.weight': torch.zeros(10, 4),
        'classifier.bias': torch.zeros(10)
    })
    torch.save(state, path)
    return dict(init_cfg=dict(type='Pretrained', checkpoint=str(path)))


def tiny_extra(widths=(8, 16, 32, 64)) -> dict:
    """HRNet's ``extra`` with one module of one block per stream (``stage1``: one Bottleneck)."""
    stages = dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ), num_channels=(widths[0], )))
    for k in (2, 3, 4):
        stages[f'stage{k}'] = dict(
            num_modules=1, num_branches=k, block='BASIC', num_blocks=(1, ) * k, num_channels=tuple(widths[:k]))
    return stages


CASES = [
    BackboneCase(
        'HRNet',
        dict(type='HRNet', extra=tiny_extra(), norm_eval=False, init_cfg=None),
        write_checkpoint=save_msra_hrnet,
        options=option_grid(norm_eval=(False, True)),
        with_cp=True),
    # multiscale_output=False: the last module returns the finest stream only (one returned resolution)
    BackboneCase(
        'HRNet-single-scale',
        dict(type='HRNet', extra=tiny_extra(), multiscale_output=False, norm_eval=False, init_cfg=None),
        write_checkpoint=save_msra_hrnet),
]
