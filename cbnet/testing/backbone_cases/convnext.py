"""mmpretrain's ConvNeXt-shaped families: ConvNeXt v1 and v2 (GRN, no layer scale), HorNet, EdgeNeXt.
``frozen_stages=k`` freezes downsample layers and stages 0..k (ConvNeXt: not the norms; HorNet: and them)."""
from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid

_TINY_CONVNEXT = dict(
    type='mmpretrain.ConvNeXt',
    arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
    out_indices=(0, 1, 2, 3),
    gap_before_final_norm=False,
    init_cfg=None)

CASES = [
    BackboneCase(
        'ConvNeXt',
        _TINY_CONVNEXT,
        write_checkpoint=save_mmpretrain_classifier,
        options=option_grid(frozen_stages=(0, 1, 2, 3)),
        with_cp=True,
        requires=('mmpretrain', )),
    # ConvNeXt V2 (the 'atto' ... 'huge' V2 checkpoints): global response norm, layer scale off
    BackboneCase(
        'ConvNeXt-V2',
        dict(_TINY_CONVNEXT, use_grn=True, layer_scale_init_value=0.),
        write_checkpoint=save_mmpretrain_classifier,
        options=option_grid(frozen_stages=(1, )),
        image_size=32,
        requires=('mmpretrain', )),
    # HorNet: recursive gated convolutions of orders 2..5 (a width of 16 is the least that order 5 divides); two
    # blocks in stage 0, since HorNet's with_cp checkpoints all but the last block of a stage
    BackboneCase(
        'HorNet',
        dict(
            type='mmpretrain.HorNet',
            arch=dict(
                base_dim=16, depths=[2, 1, 1, 1], orders=[2, 3, 4, 5], dw_cfg=[dict(type='DW', kernel_size=3)] * 4),
            out_indices=(0, 1, 2, 3),
            gap_before_final_norm=False,
            init_cfg=None),
        write_checkpoint=save_mmpretrain_classifier,
        options=option_grid(frozen_stages=(1, )),
        with_cp=True,
        image_size=32,
        requires=('mmpretrain', )),
    # EdgeNeXt: convolution stages, then split depth-wise transposed attention (SDTA) with its position encoding
    BackboneCase(
        'EdgeNeXt',
        dict(
            type='mmpretrain.EdgeNeXt',
            arch=dict(channels=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_heads=[2, 2, 2, 2]),
            global_blocks=[0, 1, 1, 1],
            use_pos_embd_global=True,
            d2_scales=[2, 2, 2, 2],
            out_indices=(0, 1, 2, 3),
            gap_before_final_norm=False,
            init_cfg=None),
        write_checkpoint=save_mmpretrain_classifier,
        image_size=32,
        requires=('mmpretrain', )),
]
