"""mmdet's RegNet (ResNet-style stages, stem without max-pool)."""
from ..checkpoint_formats import save_openmmlab
from . import BackboneCase, option_grid

CASES = [
    BackboneCase(
        'RegNet',
        dict(
            type='RegNet',
            arch=dict(w0=8, wa=16.0, wm=1.5, group_w=8, depth=4, bot_mul=1.0),
            out_indices=(0, 1, 2, 3),
            base_channels=8,
            stem_channels=8,
            init_cfg=None),
        write_checkpoint=save_openmmlab,
        options=option_grid(frozen_stages=(-1, 0, 1, 2), norm_eval=(False, True)),
        with_cp=True),
]
