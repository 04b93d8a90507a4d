# Mask R-CNN, Dual-ViT-B (ViTDet's plain ViT: windowed attention 14, global blocks 2, 5, 8, 11, decomposed
# relative positions) + simple feature pyramid, ViTDet's 100-epoch LSJ recipe at 1024 (AdamW lr 1e-4, wd 0.1,
# layer-wise lr decay 0.7, 184375 iterations at batch 64, steps at 163889 and 177546, 250-iteration warm-up, AMP),
# from MAE ViT-B. Not in the CBNetV2 paper (no paper number); the composite follows CB-EVA02: the 12 blocks are
# cut into 4 groups ending at the global blocks, the lead shares the assisting branch's patch and position
# embedding, DHLC connections are 1x1 convs with bias, zero at init.
# Differences from ViTDet's own model: the backbone is mmpretrain's ViTSAM (the same ViT as ViTDet's: abs.
# position embedding resized to the input, windowed/global blocks, decomposed relative positions), so its pretrained
# file must be in ViTSAM's layout: convert mmpretrain's MAE ViT-B file first,
#   python tools/model_converters/vit_to_vitsam.py MAE_FILE data/pretrained/mae_vit-b_vitsam.pth
# (position embedding without the class token, reshaped to the patch grid; the final norm, unused by ViTDet,
# dropped). No activation checkpointing (mmpretrain's ViTSAM has no with_cp). Batch 64 = 8 GPUs x 8 images.
# Measured: 204.94M parameters (the single ViT-B Mask R-CNN of this recipe: 113.89M).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', eps=1e-6)
pretrained = 'data/pretrained/mae_vit-b_vitsam.pth'  # see the header: MAE ViT-B converted to ViTSAM's layout

model = dict(
    type='CBMaskRCNN',
    data_preprocessor=dict(
        pad_size_divisor=32, batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='CBNet',
        num_backbones=2,
        composition='DHLC',
        backbone=dict(
            type='mmpretrain.ViTSAM',
            arch=dict(
                embed_dims=768,
                num_layers=12,
                num_heads=12,
                feedforward_channels=3072,
                global_attn_indexes=[2, 5, 8, 11]),
            img_size=1024,
            patch_size=16,
            window_size=14,
            use_abs_pos=True,
            use_rel_pos=True,
            out_channels=0,  # no channel reduction: the pyramid reads the 768-wide map
            out_indices=[2, 5, 8, 11],  # the groups of the composite end at the global blocks
            out_type='featmap',
            drop_path_rate=0.1,
            norm_cfg=dict(type='LN', eps=1e-6),
            init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.'))),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        backbone_channel=768,
        in_channels=[192, 384, 768, 768],
        out_channels=256,
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)),
    assist_loss_weights=0.5,
    assist_proposals='lead')

# ViTDet's LSJ at 1024: mmdet's pipeline; test images resized to 1024 and padded to the square by the preprocessor
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# iteration-based: mmdet's LSJ dataset without its RepeatDataset wrapper (which only lengthens an epoch)
train_dataloader = dict(
    batch_size=8, num_workers=8, dataset=dict(_delete_=True, **_base_.train_dataloader.dataset.dataset))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 184375
interval = 5000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[163889, 177546], gamma=0.1)
]
# block j of every branch: lr * 0.7 ** (13 - (j + 1)); embedding: layer 0; a connection: its group's first block
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    constructor='CBLearningRateDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'rel_pos': dict(decay_mult=0.)
        }))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=interval, save_last=True, max_keep_ckpts=5))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
