# CBNetV2 paper: HTC, Dual-Swin-B FPN (ImageNet-22k pretrained), 20e, trained at (1600, 400)-(1600, 1400), tested
# at 1600x1400, AdamW: 57.9 box / 50.2 mask AP on COCO val2017, 231M params (reported by the paper, not reproduced
# here). Official config: htc_cbv2_swin_base_patch4_window7_mstrain_400-1400_adamw_20e_coco.py.
# This is HTC WITH its semantic branch (FusedSemanticHead, 183 COCO-stuff classes), as the paper trained it: it
# needs the COCO-stuff maps under data/coco/stuffthingmaps/train2017/ (see configs/cbnet/README.md). Without them
# use dual_swin_b_htc_without_semantic.py.
_base_ = 'mmdet::htc/htc_r50_fpn_20e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth'  # noqa

model = dict(
    type='CBHybridTaskCascade',
    backbone=dict(
        _delete_=True,
        type='CBSwinTransformer',
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
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
        cb_del_stages=1,
        cb_zero_init=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='CBFPN', in_channels=[128, 256, 512, 1024]),
    assist_loss_weights=0.5,
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomResize', scale=[(1600, 400), (1600, 1400)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1600, 1400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# 1 image per GPU at these sizes; 16 GPUs x 1 = the 16 images per iteration the lr is given for
train_dataloader = dict(batch_size=1, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW lr 1e-4 per 16 images, wd 0.05, no decay on norms and position tables; mixed precision
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
