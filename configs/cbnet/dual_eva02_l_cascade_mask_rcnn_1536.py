# Cascade Mask R-CNN, Dual-EVA02-L + simple feature pyramid at 1536 (CB-EVA02, the CBNetV2 authors' composite
# EVA02-L: 56.1 mask AP on COCO test-dev, 674M parameters). Recipe as theirs: LSJ at 1536, AdamW lr 4e-5 (weight
# decay 0.1, ViTDet's), layer-wise lr decay 0.8 over the 24 blocks, 40k iterations at batch 64 (8 GPUs x 8 images),
# constant lr after a 1% (400-iteration) warm-up from 0.001 (their cosine schedule starts and ends at 1), model EMA
# 0.9999 (mmengine EMAHook; validation and test use the EMA weights), AMP, 4conv1fc LN box heads with
# class-agnostic regression, IoU thresholds 0.5/0.6/0.7, LN mask head, 2-conv RPN, drop path 0.3. Composite: the
# 24 blocks in 4 groups ending at blocks 2, 5, 20, 23; the lead shares the assisting branch's embedding (their lead
# keeps an unused patch embedding, ours has none); DHLC 1x1 connections with bias, zero at init.
# What differs from the official model (mmpretrain's ViTEVA02 is not EVA's detection ViT):
# - attention is GLOBAL in all 24 blocks: ViTEVA02 has no windowed attention (official: window 16, every third
#   block global), so attention memory grows with (1536/16)^4 = 9216^2 per head and block;
# - no activation checkpointing (ViTEVA02 has no with_cp; official: on), no relative position bias (as official L);
#   RoPE is mmpretrain's, recomputed for the 96x96 grid;
# - the start checkpoint: the official one is the Objects365-fine-tuned single EVA02-L detector, not released in
#   mmpretrain's layout. The mmpretrain EVA02-L file below has 14x14 patch kernels: its patch embedding does not load
#   into the 16x16 one (the loader warns and names it; resize the kernel, as EVA's own conversion does, first).
# Measured: 679.14M parameters (single EVA02-L detector: 366.22M). Official: 674M; the 5.29M difference is the mask
# head: mmdet's CascadeRoIHead has one per stage (3 x 2.64M), the official detectron2 cascade one.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/lsj_1536.py',  # mmdet's LSJ data at 1536
]
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

image_size = (1536, 1536)
norm_cfg = dict(type='LN2d', eps=1e-6)
pretrained = 'https://download.openmmlab.com/mmpretrain/v1.0/eva02/eva02-large-p14_pre_m38m_20230505-b8a1a261.pth'  # noqa


def box_head(means_stds):
    return dict(
        type='Shared4Conv1FCBBoxHead',
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        norm_cfg=norm_cfg,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=means_stds),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


model = dict(
    type='CBCascadeRCNN',
    data_preprocessor=dict(
        pad_size_divisor=32, batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='CBNet',
        num_backbones=2,
        composition='DHLC',
        backbone=dict(
            type='mmpretrain.ViTEVA02',
            arch='l',  # 1024 wide, 24 blocks, 16 heads, SwiGLU 4*2/3
            img_size=224,  # position embedding of the pretraining grid, resized to the input in every forward
            patch_size=16,
            sub_ln=True,
            final_norm=False,
            out_indices=[2, 5, 20, 23],  # the groups (3, 3, 15, 3 blocks)
            out_type='featmap',
            drop_path_rate=0.3,
            init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.'))),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        backbone_channel=1024,
        in_channels=[256, 512, 1024, 1024],
        out_channels=256,
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=[
            box_head([0.1, 0.1, 0.2, 0.2]),
            box_head([0.05, 0.05, 0.1, 0.1]),
            box_head([0.033, 0.033, 0.067, 0.067])
        ],
        mask_head=dict(norm_cfg=norm_cfg)),
    assist_loss_weights=0.5,
    assist_proposals='lead')

# iteration-based: mmdet's LSJ dataset without its RepeatDataset wrapper (which only lengthens an epoch)
train_dataloader = dict(
    batch_size=8, num_workers=8, dataset=dict(_delete_=True, **_base_.train_dataloader.dataset.dataset))

max_iters = 40000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=max_iters // 100)]
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    constructor='CBLearningRateDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.8))
custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=1e-4, priority=49)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, save_last=True, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
