"""mmdet's MobileNetV2, loaded from an OpenMMLab file (``open-mmlab://mmdet/mobilenet_v2``: no prefix); all eight
stages returned. ``frozen_stages=k`` freezes ``conv1``'s parameters (not its mode) and ``layer1..k``."""
from ..checkpoint_formats import save_openmmlab
from . import BackboneCase, option_grid

CASES = [
    BackboneCase(
        'MobileNetV2',
        dict(type='MobileNetV2', widen_factor=0.25, out_indices=tuple(range(8)), init_cfg=None),
        write_checkpoint=save_openmmlab,
        options=option_grid(frozen_stages=(-1, 0, 1, 7), norm_eval=(False, True)),
        with_cp=True),
]
