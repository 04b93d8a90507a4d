"""Tiny toy-data runs: a few 64x64 images of the toy shapes dataset and a config that trains the toy
detectors on them in seconds (batch 2, no workers, log every iteration)."""
import os.path as osp
from typing import Optional

from .toy_coco import make_toy_coco as _write_toy_coco

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the root of a source checkout (its ``tools/``, ``configs/``); in an installed wheel, the site-packages folder
REPO = osp.dirname(_PACKAGE)
#: the configs cbnet ships, as ``cbnet::`` names resolve them: ``cbnet/.mim/configs`` (the checkout's
#: ``configs/`` through a link in a source checkout, a copy in a wheel)
CONFIGS = osp.join(_PACKAGE, '.mim', 'configs')
if not osp.isdir(CONFIGS):  # a checkout whose file system dropped the link
    CONFIGS = osp.join(REPO, 'configs')
FASTER_TOY = osp.join(CONFIGS, '_toy_', 'faster_rcnn_r18_toy.py')
MASK_TOY = osp.join(CONFIGS, '_toy_', 'mask_rcnn_r18_toy.py')
DUAL_TOY = osp.join(CONFIGS, 'cbnet', 'dual_r18_faster_rcnn_toy.py')  # the demo model


def make_tiny_toy(out_dir: str) -> str:
    """4 train / 2 val / 2 test images of 64x64; returns the dataset root with a trailing '/'."""
    _write_toy_coco(out_dir, num_train=4, num_val=2, num_test=2, size=(64, 64), seed=0)
    return out_dir.rstrip('/') + '/'


def write_tiny_config(path: str,
                      data_root: str,
                      base: str = FASTER_TOY,
                      max_iters: int = 2,
                      flip_prob: float = 0.5,
                      extra: Optional[str] = None) -> str:
    """A config file that inherits ``base`` (a toy config) and shrinks the run; returns ``path``."""
    with_mask = 'mask' in osp.basename(base)
    text = f'''
_base_ = {base!r}
data_root = {data_root!r}
img_scale = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob={flip_prob}),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
log_processor = dict(window_size=1)
'''
    with open(path, 'w') as f:
        f.write(text + (extra or ''))
    return path
