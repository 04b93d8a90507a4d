# Dual-Swin backbones of the CBNetV2 paper configs, with the official CBNetV2 argument names (CBSwinTransformer).
# Use them through `_base_` (no other base of the config may define these names):
#     _base_ = ['mmdet::...', '../_base_/cb_swin_backbones.py']
#     model = dict(backbone=dict(_delete_=True, **_base_.cb_swin_t), neck=dict(in_channels=_base_.cb_swin_t_widths))
#
# Official recipe: K = 2; cb_del_stages=1 (the lead has no patch embedding; all four stages are duplicated);
# composite connections: identity for the same level (live at init, it cannot be zeroed) and 1x1 conv with bias
# (zero-initialised, no norm) from each higher level; drop path T/S 0.2, B 0.3, L 0.2; ImageNet-1k weights for
# T/S and ImageNet-22k weights for B/L (the public Swin release files below, original Swin layout, converted on
# load). Every other argument is the Swin default the official configs write out.
__release = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
# the names starting with '__' are private to this file (mmengine does not put them in the config)
__common = dict(
    type='CBSwinTransformer',
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    ape=False,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    use_checkpoint=False,  # True: activation checkpointing in every Swin block (less memory, slower)
    cb_del_stages=1,
    cb_zero_init=True)

cb_swin_t = dict(
    **__common,
    embed_dim=96,
    depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24],
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=__release + 'swin_tiny_patch4_window7_224.pth'))
cb_swin_s = dict(
    **__common,
    embed_dim=96,
    depths=[2, 2, 18, 2],
    num_heads=[3, 6, 12, 24],
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=__release + 'swin_small_patch4_window7_224.pth'))
cb_swin_b = dict(
    **__common,
    embed_dim=128,
    depths=[2, 2, 18, 2],
    num_heads=[4, 8, 16, 32],
    drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint=__release + 'swin_base_patch4_window7_224_22k.pth'))
cb_swin_l = dict(
    **__common,
    embed_dim=192,
    depths=[2, 2, 18, 2],
    num_heads=[6, 12, 24, 48],
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=__release + 'swin_large_patch4_window7_224_22k.pth'))

# stage widths (embed_dim x 2^i): the FPN's in_channels
cb_swin_t_widths = [96, 192, 384, 768]
cb_swin_s_widths = [96, 192, 384, 768]
cb_swin_b_widths = [128, 256, 512, 1024]
cb_swin_l_widths = [192, 384, 768, 1536]
