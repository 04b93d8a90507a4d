# CBNetV2 paper: Cascade Mask R-CNN, Dual-Swin-S FPN, 4conv1fc GIoU heads, 3x, trained at (1600, 400)-(1600, 1400),
# tested at 1600x1400: 56.3 box / 48.6 mask AP on COCO val2017, 56.9 / 49.1 on test-dev, 156M params
# (reported by the paper, not reproduced here). Official config:
# cascade_mask_rcnn_cbv2_swin_small_patch4_window7_mstrain_400-1400_adamw_3x_coco.py.
_base_ = './dual_swin_t_cascade_mask_rcnn.py'

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth'  # noqa

model = dict(
    backbone=dict(depths=[2, 2, 18, 2], drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
