"""mmpretrain's hierarchical token backbones: Swin (v1, v2), DaViT, MViT, HiViT, VAN, Twins, tiny, loaded from
mmpretrain classifier files (``prefix='backbone.'``). Drop path 0, so that train-mode outputs compare exactly."""
from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid

_REQUIRES = ('mmpretrain', )
_HEADS = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
_FOUR = dict(out_indices=(0, 1, 2, 3), drop_path_rate=0., init_cfg=None)


def _case(name: str, config: dict, options=({}, ), with_cp: bool = False, rebuilt=()) -> BackboneCase:
    return BackboneCase(
        name,
        config,
        write_checkpoint=save_mmpretrain_classifier,
        options=options,
        with_cp=with_cp,
        requires=_REQUIRES,
        rebuilt=rebuilt)


CASES = [
    # mmpretrain's own Swin (not mmdet's): windows of 2 on 64 px, downsampling after each returned stage
    _case(
        'mmpretrain-Swin',
        dict(type='mmpretrain.SwinTransformer', arch=_HEADS, img_size=64, window_size=2, **_FOUR),
        options=option_grid(frozen_stages=(1, )) + option_grid(use_abs_pos_embed=(True, ), frozen_stages=(0, )),
        with_cp=True),
    # Swin v2: scaled cosine attention, log-spaced continuous position bias, downsampling at a stage's start
    _case(
        'SwinTransformerV2',
        dict(
            type='mmpretrain.SwinTransformerV2',
            arch=dict(_HEADS, extra_norm_every_n_blocks=0),
            img_size=64,
            window_size=2,
            **_FOUR),
        options=option_grid(frozen_stages=(1, )),
        with_cp=True,
        rebuilt=('relative_coords_table', 'relative_position_index')),
    # DaViT: spatial-window and channel attention blocks
    _case(
        'DaViT',
        dict(type='mmpretrain.DaViT', arch=_HEADS, window_size=2, **_FOUR),
        options=option_grid(frozen_stages=(1, ))),
    # MViT v2: pooling attention, scale s ends before the block that downscales; out_scales are its out_indices
    _case(
        'MViT',
        dict(
            type='mmpretrain.MViT',
            arch=dict(embed_dims=8, num_layers=4, num_heads=1, downscale_indices=[1, 2, 3]),
            img_size=64,
            out_scales=(0, 1, 2, 3),
            init_cfg=None)),
    # HiViT: patch-level MLP stages in the stem, then one resolution (returns its last block only)
    _case(
        'HiViT',
        dict(
            type='mmpretrain.HiViT',
            arch=dict(embed_dims=16, depths=[1, 1, 7], num_heads=2),
            img_size=64,
            out_indices=[6],
            init_cfg=None)),
    # VAN: large-kernel attention; norm{i} after every stage
    _case(
        'VAN',
        dict(
            type='mmpretrain.VAN',
            arch=dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1], ffn_ratios=[2, 2, 2, 2]),
            **_FOUR),
        options=option_grid(frozen_stages=(1, ), norm_eval=(True, ))),
    # Twins-PCPVT (SVT is its subclass): spatial-reduction attention, conditional position encoding
    _case(
        'Twins-PCPVT',
        dict(
            type='mmpretrain.PCPVT',
            arch=dict(
                embed_dims=[8, 16, 32, 64],
                depths=[1, 1, 1, 1],
                num_heads=[1, 1, 2, 2],
                patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2],
                mlp_ratios=[2, 2, 2, 2],
                sr_ratios=[4, 2, 1, 1]),
            norm_after_stage=True,
            **_FOUR)),
]
