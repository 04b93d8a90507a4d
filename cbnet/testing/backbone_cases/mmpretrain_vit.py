"""mmpretrain's plain ViTs: 4 blocks of width 16 on 4x4 patches (64 px), loaded from mmpretrain classifier files.

Cases cover every adapted class and the token layouts: class token or none, DeiT's distillation token, DeiT
III's late class token, CLIP's pre-norm, EVA-02's RoPE, BEiT's per-block and shared relative position bias,
SAM's windowed/global blocks with NHWC tokens and channel reduction; groups of one block (out_indices 0..3) and
of two ((1, 3)). ``frozen_stages`` counts blocks; none of these classes has ``with_cp``.
"""
from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid

_ARCH = dict(embed_dims=16, num_layers=4, num_heads=2, feedforward_channels=32)
_COMMON = dict(arch=_ARCH, img_size=64, patch_size=16, out_type='featmap', init_cfg=None)
_FROZEN = option_grid(frozen_stages=(-1, 1, 4))


def _case(name: str, type_: str, options=({}, ), **config) -> BackboneCase:
    cfg = dict(type=f'mmpretrain.{type_}', **_COMMON)
    cfg.update(config)
    return BackboneCase(
        name, cfg, write_checkpoint=save_mmpretrain_classifier, options=options, requires=('mmpretrain', ))


CASES = [
    _case('ViT', 'VisionTransformer', _FROZEN, out_indices=[1, 3]),
    _case(
        'ViT-CLIP-no-cls', 'VisionTransformer', _FROZEN, out_indices=[0, 1, 2, 3], pre_norm=True, with_cls_token=False),
    _case('DeiT-distilled', 'DistilledVisionTransformer', _FROZEN, out_indices=[0, 1, 2, 3]),
    _case('DeiT3', 'DeiT3', out_indices=[1, 3]),
    _case('EVA02', 'ViTEVA02', out_indices=[0, 1, 2, 3], arch=dict(_ARCH, feedforward_channels=21), sub_ln=True),
    _case('BEiT', 'BEiTViT', _FROZEN, out_indices=[0, 1, 2, 3]),
    _case(
        'BEiT-shared-bias',
        'BEiTViT',
        out_indices=[1, 3],
        use_abs_pos_emb=True,
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True,
        final_norm=True),
    _case(
        'ViTSAM',
        'ViTSAM',
        option_grid(frozen_stages=(-1, 1, 4)),
        arch=dict(_ARCH, global_attn_indexes=[1, 3]),
        out_indices=[0, 1, 2, 3],
        window_size=2,
        out_channels=8),
]
