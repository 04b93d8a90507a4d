"""Tiny inner-backbone configs, one per supported family, shared by the tests (narrow, init_cfg=None)."""
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


# -- tiny detectors ---------------------------------------------------------------------------------------------
def mmdet_config(relative_path: str):
    """A config of mmdet's own zoo (what `_base_ = 'mmdet::...'` resolves to)."""
    import os.path as osp

    import mmdet
    from mmengine.config import Config
    return Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', relative_path))


TINY_WIDTHS = [8, 16, 32, 64]  # FAMILIES['ResNet'] stage widths
_SHRINK = {256: 32, 512: 32, 1024: 64, 2048: 64}  # multiples of 32: heads' default GroupNorm(32)


def _shrink(node):
    """Narrow every '*channels' width of a detector config (heads, necks) so that CPU tests are fast."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key.endswith('channels') and isinstance(value, int) and value in _SHRINK:
                node[key] = _SHRINK[value]
            else:
                _shrink(value)
    elif isinstance(node, list):
        for item in node:
            _shrink(item)
    return node


def shrink_detector(model: dict) -> dict:
    """Narrow the neck/head widths (not the backbone) and sample few RoIs/proposals: fast CPU losses."""
    backbone = model.pop('backbone')
    _shrink(model)
    model['backbone'] = backbone
    train_cfg = model.get('train_cfg') or {}
    for stage in ('rpn', 'rcnn'):
        stages = train_cfg.get(stage)
        for s in (stages if isinstance(stages, list) else [stages] if stages else []):
            if 'sampler' in s and 'num' in s['sampler']:
                s['sampler']['num'] = 32
    if 'rpn_proposal' in train_cfg:
        train_cfg['rpn_proposal'].update(nms_pre=200, max_per_img=50)
    return model


def tiny_detector_cfg(relative_path: str, cb_type: str = None, num_backbones: int = 2, inner: str = 'ResNet',
                      **detector_kwargs) -> dict:
    """mmdet's config ``relative_path`` with a tiny (composite) ResNet, narrow neck/heads, few samples."""
    from mmengine.config import ConfigDict
    cfg = mmdet_config(relative_path).model.to_dict()
    neck = cfg['neck'][0] if isinstance(cfg['neck'], list) else cfg['neck']
    neck['in_channels'] = list(TINY_WIDTHS)
    backbone = family(inner)
    cfg['backbone'] = backbone if cb_type is None else dict(type='CBNet', backbone=backbone,
                                                            num_backbones=num_backbones)
    shrink_detector(cfg)
    if cb_type is not None:
        cfg['type'] = cb_type
    cfg.update(detector_kwargs)
    return ConfigDict(cfg)


def tiny_batch(model, batch_size=2, size=64, with_mask=False, with_semantic=False, training=True, seed=0):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    packed = demo_mm_inputs(batch_size, image_shapes=[(3, size, size)] * batch_size, num_items=[3] * batch_size,
                            num_classes=80, with_mask=with_mask, with_semantic=with_semantic)
    return model.data_preprocessor(packed, training)
