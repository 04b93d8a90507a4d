"""Helpers for tests, benchmarks and demos: tiny backbones and detectors, batches, the toy COCO dataset.

Like ``mmdet.testing``: importable by cbnet's tests and by anyone writing a new adapter or detector kind.
"""
from .backbones import FAMILIES, family, images
from .detectors import TINY_WIDTHS, mmdet_config, shrink_detector, tiny_batch, tiny_detector_cfg
from .tools import load_tool
from .toy_coco import CLASS_NAMES, make_toy_coco
from .toy_runs import DUAL_TOY, FASTER_TOY, MASK_TOY, REPO, make_tiny_toy, write_tiny_config

__all__ = [
    'FAMILIES', 'family', 'images', 'TINY_WIDTHS', 'mmdet_config', 'shrink_detector', 'tiny_batch', 'tiny_detector_cfg',
    'CLASS_NAMES', 'make_toy_coco', 'DUAL_TOY', 'FASTER_TOY', 'MASK_TOY', 'REPO', 'make_tiny_toy', 'write_tiny_config',
    'load_tool'
]
