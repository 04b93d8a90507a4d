# CBNetV2 paper: Cascade Mask R-CNN, Dual-Swin-S FPN, 4conv1fc GIoU heads, 3x, trained at (1600, 400)-(1600, 1400),
# tested at 1600x1400: 56.3 box / 48.6 mask AP on COCO val2017, 56.9 / 49.1 on test-dev, 156M params, 1016G FLOPs
# (reported by the paper, not reproduced here). Official config:
# cascade_mask_rcnn_cbv2_swin_small_patch4_window7_mstrain_400-1400_adamw_3x_coco.py.
#
# Recipe: the heads of dual_swin_t_cascade_mask_rcnn.py (4conv1fc, SyncBN, GIoU 10, class-specific) on a Dual-Swin-S
# (drop path 0.2, ImageNet-1k); flip + short side 400-1400 / long side <= 1600, no crop; test 1600x1400; 1 image per
# GPU x 8 GPUs with AdamW lr 5e-5 (1e-4 x 1/2) wd 0.05; 36 epochs, steps [27, 33], 500-iteration warm-up; mixed
# precision; test soft-NMS (IoU 0.5), score threshold 0.001, 100 per image.
# Differences to the official config: as dual_swin_t_cascade_mask_rcnn.py (AmpOptimWrapper for apex O1; the Swin-S
# file is named here).
_base_ = ['./dual_swin_t_cascade_mask_rcnn.py', '../_base_/ms_1600x1400.py', '../_base_/soft_nms.py']

model = dict(
    backbone=dict(_delete_=True, **_base_.cb_swin_s),
    neck=dict(in_channels=_base_.cb_swin_s_widths),
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn))

train_pipeline = _base_.mask_train_pipeline_1600
test_pipeline = _base_.mask_test_pipeline_1600
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(_delete_=True, **_base_.swin_optim_wrapper_1img)
# lr 5e-5 is for 8 images per iteration (8 GPUs x 1); tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=8)
