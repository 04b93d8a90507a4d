"""mmpretrain's ConvNeXt (``frozen_stages=k`` freezes downsample layers and stages 0..k-1, not the norms)."""
from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid

CASES = [
    BackboneCase(
        'ConvNeXt',
        dict(
            type='mmpretrain.ConvNeXt',
            arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
            out_indices=(0, 1, 2, 3),
            gap_before_final_norm=False,
            init_cfg=None),
        write_checkpoint=save_mmpretrain_classifier,
        options=option_grid(frozen_stages=(0, 1, 2, 3)),
        with_cp=True,
        requires=('mmpretrain', )),
]
