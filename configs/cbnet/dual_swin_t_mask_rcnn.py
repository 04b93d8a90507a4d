# CBNetV2 paper: Mask R-CNN, Dual-Swin-T (DB-Swin-T) FPN, 3x, multi-scale training (480-800, DETR-style crop),
# AdamW: 50.2 box AP / 44.5 mask AP on COCO val2017, 76M params, 357G FLOPs (reported by the paper, not
# reproduced here). Official config: mask_rcnn_cbv2_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py.
# mmdet's base already has the recipe (the Swin repo's 3x: 36 epochs, steps 27/33, AdamW lr 1e-4 wd 0.05, no decay
# on norms and position tables, mixed precision); only the backbone and neck change.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa

model = dict(
    type='CBMaskRCNN',
    backbone=dict(
        _delete_=True,
        type='CBSwinTransformer',  # official CBNetV2 argument names
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
        use_checkpoint=False,  # True: activation checkpointing in every Swin block (less memory, slower)
        cb_del_stages=1,  # official meaning: the lead has no patch embedding
        cb_zero_init=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),  # original Swin layout, converted on load
    neck=dict(type='CBFPN', in_channels=[96, 192, 384, 768]),
    assist_loss_weights=0.5,
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))

# lr 1e-4 is for 16 images per iteration (8 GPUs x 2); tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=16)
