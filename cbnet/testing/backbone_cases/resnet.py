"""mmdet's ResNet and its subclasses ResNetV1d, ResNeXt, Res2Net (the ResNet adapter)."""
from ..checkpoint_formats import save_openmmlab, save_torchvision
from . import BackboneCase, option_grid

_TRAINING = option_grid(frozen_stages=(-1, 0, 1, 2), norm_eval=(False, True))
_TINY = dict(base_channels=8, stem_channels=8, out_indices=(0, 1, 2, 3), init_cfg=None)

CASES = [
    BackboneCase(
        'ResNet',
        dict(type='ResNet', depth=18, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, **_TINY),
        write_checkpoint=save_torchvision,
        options=_TRAINING,
        with_cp=True),
    BackboneCase(
        'ResNetV1d',
        dict(type='ResNetV1d', depth=18, **_TINY),
        write_checkpoint=save_openmmlab,
        options=_TRAINING,
        with_cp=True),
    BackboneCase(
        'ResNeXt',
        dict(type='ResNeXt', depth=50, groups=2, base_width=4, **_TINY),
        write_checkpoint=save_openmmlab,
        options=_TRAINING,
        with_cp=True),
    BackboneCase(
        'Res2Net',
        dict(type='Res2Net', depth=50, scales=2, base_width=4, **_TINY),
        write_checkpoint=save_openmmlab,
        options=_TRAINING,
        with_cp=True),
]
