"""timm ViTs through ``TIMMBackbone`` (timm builds them features-only as FeatureGetterNet): plain ViTs cut at
their ``out_indices`` blocks (ViT, DeiT with its distillation token, BEiT with relative position bias, EVA02
with RoPE and SwiGLU) and hierarchical ones (Hiera's unrolled tokens, MViTv2's pooled stages). Tiny widths and
depths through timm's own arguments, random weights; the checkpoint is the timm classification model's state
dict, loaded by timm (see :mod:`.timm`).

MViTv2 takes its depths and widths only from a named configuration, so a tiny one is registered with timm
under :data:`TINY_MVITV2` (timm's own builder and checkpoint filter, the ``mvitv2_tiny`` pretrained config).
"""
import importlib.util

from .timm import timm_case

TINY_MVITV2 = 'cbnet_test_mvitv2'


def _register_tiny_mvitv2() -> None:
    from timm.models import build_model_with_cfg, is_model, register_model
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg, checkpoint_filter_fn
    if is_model(TINY_MVITV2):
        return

    def cbnet_test_mvitv2(pretrained: bool = False, **kwargs) -> MultiScaleVit:
        out_indices = kwargs.pop('out_indices', 4)
        return build_model_with_cfg(
            MultiScaleVit,
            'mvitv2_tiny',
            pretrained,
            model_cfg=MultiScaleVitCfg(depths=(1, 1, 1, 1), embed_dim=8, num_heads=1),
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
            **kwargs)

    register_model(cbnet_test_mvitv2)


if importlib.util.find_spec('timm') is not None:
    _register_tiny_mvitv2()

#: a 64 px image, 8 px patches: an 8x8 token grid; four one-block groups, as CB-ViT cuts a ViT into four
_PLAIN = dict(img_size=64, patch_size=8, embed_dim=16, depth=4, num_heads=2, out_indices=(0, 1, 2, 3))

CASES = [
    timm_case('timm-vit', 'vit_tiny_patch16_224', dynamic_img_size=True, **_PLAIN),
    timm_case('timm-deit-distilled', 'deit_tiny_distilled_patch16_224', **_PLAIN),
    timm_case('timm-beit', 'beit_base_patch16_224', **_PLAIN),
    timm_case('timm-eva02', 'eva02_tiny_patch14_224', dynamic_img_size=True, **_PLAIN),
    timm_case(
        'timm-hiera',
        'hiera_tiny_224',
        img_size=(64, 64),
        embed_dim=8,
        num_heads=1,
        stages=(1, 1, 1, 1),
        out_indices=(0, 1, 2, 3)),
    timm_case('timm-mvitv2', TINY_MVITV2, img_size=64, out_indices=(0, 1, 2, 3)),
]
