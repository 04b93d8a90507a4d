# CBNetV2 paper: Cascade Mask R-CNN, Dual-Swin-T FPN, 4conv1fc box heads with GIoU, 3x, multi-scale training
# (480-800, DETR-style crop), AdamW: 53.6 box AP / 46.2 mask AP on COCO val2017, 114M params, 836G FLOPs
# (reported by the paper, not reproduced here). Official config:
# cascade_mask_rcnn_cbv2_swin_tiny_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py.
# mmdet has no Swin Cascade Mask R-CNN; its ConvNeXt-T one is the same recipe (the Swin repo's 3x cascade with
# 4conv1fc GIoU SyncBN heads, ms-crop pipeline, AMP) with another backbone and optimizer, which we replace.
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa

model = dict(
    type='CBCascadeRCNN',
    backbone=dict(
        _delete_=True,
        type='CBSwinTransformer',
        embed_dim=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        ape=False,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        use_checkpoint=False,
        cb_del_stages=1,
        cb_zero_init=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='CBFPN', in_channels=[96, 192, 384, 768]),
    assist_loss_weights=0.5,
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))

# the Swin recipe: AdamW lr 1e-4 (per 16 images), wd 0.05, no decay on norms and position tables, AMP
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
auto_scale_lr = dict(enable=False, base_batch_size=16)
