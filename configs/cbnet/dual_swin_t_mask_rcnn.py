# CBNetV2 paper: Mask R-CNN, Dual-Swin-T (DB-Swin-T) FPN, 3x, multi-scale training (480-800, DETR-style crop),
# AdamW: 50.2 box AP / 44.5 mask AP on COCO val2017, 76M params, 357G FLOPs (reported by the paper, not
# reproduced here). Official config: mask_rcnn_cbv2_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py.
#
# Recipe: mmdet's Swin-T Mask R-CNN 3x (= the Swin repository's): flip, then either a short side in 480-800 (step
# 32, long side <= 1333) or a 400-600 resize + (384, 600) crop + 480-800 resize; test (1333, 800); 2 images per GPU
# x 8 GPUs; AdamW lr 1e-4 wd 0.05, no decay on norms and position tables; 36 epochs, steps [27, 33], 500-iteration
# linear warm-up; mixed precision; test with mmdet's default NMS (IoU 0.5, score threshold 0.05, 100 per image).
# Differences to the official config: mixed precision is mmengine's AmpOptimWrapper (dynamic loss scale), the
# official runs used NVIDIA apex O1; the Swin-T ImageNet-1k file is named here (the official config leaves
# model.pretrained to the command line).
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py', '../_base_/cb_swin_backbones.py',
    '../_base_/swin_adamw_amp.py'
]
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBMaskRCNN',
    backbone=dict(_delete_=True, **_base_.cb_swin_t),  # official CBNetV2 argument names
    neck=dict(type='CBFPN', in_channels=_base_.cb_swin_t_widths),
    assist_loss_weights=0.5,
    assist_proposals='lead')

optim_wrapper = dict(_delete_=True, **_base_.swin_optim_wrapper)
# mmdet's Swin recipe warms up over 1000 iterations; the official CBNetV2 one over 500
max_epochs = 36
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
# lr 1e-4 is for 16 images per iteration (8 GPUs x 2); tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=16)
