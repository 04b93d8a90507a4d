"""mmdet's SSDVGG as SSD configures it (no last pool, ceil-mode pools, pool5 + fc6 + fc7), loaded from an
OpenMMLab file (``open-mmlab://vgg16_caffe``: ``features.*`` keys). VGG's widths are fixed (64 to 1024):
VGG-11, whose conv4 and fc7 ReLUs are ``features.14`` and ``features.24`` (VGG-16's 22 and 34). No
``frozen_stages``, ``norm_eval`` or ``with_cp``: SSDVGG exposes none."""
from ..checkpoint_formats import save_openmmlab
from . import BackboneCase

CASES = [
    BackboneCase(
        'SSDVGG',
        dict(
            type='SSDVGG', depth=11, with_last_pool=False, ceil_mode=True, out_feature_indices=(14, 24), init_cfg=None),
        write_checkpoint=save_openmmlab,
        image_size=32),
]
