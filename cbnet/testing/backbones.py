"""Tiny inner-backbone configs, one per supported family (narrow, ``init_cfg=None``): fast CPU tests."""
import copy

import torch

FAMILIES = {
    'ResNet': dict(type='ResNet', depth=18, base_channels=8, stem_channels=8, out_indices=(0, 1, 2, 3),
                   norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    'ResNetV1d': dict(type='ResNetV1d', depth=18, base_channels=8, stem_channels=8, out_indices=(0, 1, 2, 3),
                      init_cfg=None),
    'ResNeXt': dict(type='ResNeXt', depth=50, groups=2, base_width=4, base_channels=8, stem_channels=8,
                    out_indices=(0, 1, 2, 3), init_cfg=None),
    'Res2Net': dict(type='Res2Net', depth=50, scales=2, base_width=4, base_channels=8, stem_channels=8,
                    out_indices=(0, 1, 2, 3), init_cfg=None),
    'RegNet': dict(type='RegNet', arch=dict(w0=8, wa=16.0, wm=1.5, group_w=8, depth=4, bot_mul=1.0),
                   out_indices=(0, 1, 2, 3), base_channels=8, stem_channels=8, init_cfg=None),
    'Swin': dict(type='SwinTransformer', embed_dims=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                 window_size=4, pretrain_img_size=64, drop_path_rate=0.0, out_indices=(0, 1, 2, 3), init_cfg=None),
    'ConvNeXt': dict(type='mmpretrain.ConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                     out_indices=(0, 1, 2, 3), gap_before_final_norm=False, init_cfg=None),
}


def family(name: str, **overrides) -> dict:
    cfg = copy.deepcopy(FAMILIES[name])
    cfg.update(overrides)
    return cfg


def images(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)
