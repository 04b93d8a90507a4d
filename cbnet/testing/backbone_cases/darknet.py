"""mmdet's Darknet, loaded from an OpenMMLab file (``open-mmlab://darknet53``: Darknet keys, no prefix).

Darknet has one architecture (depth 53, 40M parameters, fixed widths). The case runs Darknet's own code with a
narrow, shallow layer table: a subclass that only replaces the class's ``arch_settings`` (``conv1`` stays 32
wide, as Darknet hard-codes it). ``frozen_stages=k`` freezes the first k layers (``conv1`` for k = 1)."""
from mmdet.models.backbones import Darknet

from ..checkpoint_formats import save_openmmlab
from . import BackboneCase, option_grid


class NarrowDarknet(Darknet):
    """Darknet-53's modules and forward with (blocks per stage, (in, out) widths) of a tiny network."""

    arch_settings = {53: ((1, 1, 2, 1, 1), ((32, 16), (16, 32), (32, 32), (32, 64), (64, 64)))}


CASES = [
    BackboneCase(
        'Darknet',
        dict(type=NarrowDarknet, depth=53, out_indices=(1, 2, 3, 4, 5), init_cfg=None),
        write_checkpoint=save_openmmlab,
        options=option_grid(frozen_stages=(-1, 1, 2, 3), norm_eval=(False, True))),
]
