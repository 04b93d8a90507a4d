"""Tiny versions of mmdet zoo detectors (narrow necks and heads, few samples) and batches for them."""
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict

from ..utils.configs import resolve_config_path
from .backbones import family


def mmdet_config(relative_path: str) -> Config:
    """A config of mmdet's own zoo (what ``_base_ = 'mmdet::...'`` resolves to)."""
    return Config.fromfile(resolve_config_path('mmdet::' + relative_path))


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


def tiny_detector_cfg(relative_path: str,
                      cb_type: Optional[str] = None,
                      num_backbones: int = 2,
                      inner: str = 'ResNet',
                      **detector_kwargs) -> ConfigDict:
    """mmdet's config ``relative_path`` with a tiny (composite) ResNet, narrow neck/heads, few samples."""
    cfg = mmdet_config(relative_path).model.to_dict()
    neck = cfg['neck'][0] if isinstance(cfg['neck'], list) else cfg['neck']
    neck['in_channels'] = list(TINY_WIDTHS)
    backbone = family(inner)
    cfg['backbone'] = backbone if cb_type is None else dict(
        type='CBNet', backbone=backbone, num_backbones=num_backbones)
    shrink_detector(cfg)
    if cb_type is not None:
        cfg['type'] = cb_type
    cfg.update(detector_kwargs)
    return ConfigDict(cfg)


def tiny_batch(model,
               batch_size: int = 2,
               size: int = 64,
               with_mask: bool = False,
               with_semantic: bool = False,
               training: bool = True,
               seed: int = 0) -> dict:
    """A preprocessed batch of random images with 3 random objects each (mmdet's ``demo_mm_inputs``)."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    packed = demo_mm_inputs(
        batch_size,
        image_shapes=[(3, size, size)] * batch_size,
        num_items=[3] * batch_size,
        num_classes=80,
        with_mask=with_mask,
        with_semantic=with_semantic)
    return model.data_preprocessor(packed, training)
