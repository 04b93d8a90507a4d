"""DetectoRS' ResNet with Switchable Atrous Convolution, as in ``mmdet::detectors/cascade-rcnn_r50-sac_1x_coco.py``
(deformable SAC in stages 2-4, weight-standardised convs). SAC's 3x3 deformable convs and reflect padding need
maps of at least 3x3 at the deepest stage: 96 px images."""
from ..checkpoint_formats import save_torchvision
from . import BackboneCase, option_grid

CASES = [
    BackboneCase(
        'DetectoRS-SAC',
        dict(
            type='DetectoRS_ResNet',
            depth=50,
            base_channels=8,
            stem_channels=8,
            out_indices=(0, 1, 2, 3),
            conv_cfg=dict(type='ConvAWS'),
            sac=dict(type='SAC', use_deform=True),
            stage_with_sac=(False, True, True, True),
            norm_eval=False,
            init_cfg=None),
        write_checkpoint=save_torchvision,
        options=option_grid(frozen_stages=(-1, 0, 1, 2), norm_eval=(False, True)),
        with_cp=True,
        image_size=96),
]
