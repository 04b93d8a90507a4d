# CBNetV2 paper, headline result: HTC, Dual-Swin-L FPN (ImageNet-22k pretrained), 4conv1fc box heads with GIoU
# (weight 10) and SyncBN, 1x: 59.1 box / 51.0 mask AP on COCO val2017, 59.4 / 51.6 on test-dev; 453M params,
# 2162G FLOPs. With test-time augmentation (`--tta`, configs/_base_/tta_htc_swin_l.py): 59.6 / 51.8 val2017,
# 60.1 / 52.3 test-dev. (All reported by the paper, not reproduced here.) Official configs:
# htc_cbv2_swin_large_patch4_window7_mstrain_400-1400_giou_4conv1f_adamw_1x_coco.py and its _tta variant.
#
# Recipe: dual_swin_b_htc_4conv1fc.py (class-agnostic 4conv1fc heads, semantic branch, 1600x1400, 1 image per GPU x
# 8 GPUs, AdamW lr 5e-5, mixed precision, soft-NMS 0.5 / score 0.001) on a Dual-Swin-L (drop path 0.2); 12 epochs,
# steps [8, 11], 500-iteration linear warm-up. HTC with its semantic branch, as the paper trained it (needs
# COCO-stuff maps in data/coco/stuffthingmaps/train2017/); dual_swin_l_htc_without_semantic.py needs none.
# Differences to the official config: as dual_swin_b_htc.py; TTA merges differently (see
# configs/_base_/tta_htc_swin_l.py).
#
# Memory: about 900M parameter+gradient tensors in fp32 plus AdamW state; at 1600x1400 activations dominate. To trade
# compute for memory, checkpoint the Swin blocks' activations:
#     python tools/train.py configs/cbnet/dual_swin_l_htc.py --cfg-options model.backbone.use_checkpoint=True
_base_ = ['./dual_swin_b_htc_4conv1fc.py', '../_base_/tta_htc_swin_l.py']  # `tools/test.py ... --tta`: paper TTA

model = dict(backbone=dict(_delete_=True, **_base_.cb_swin_l), neck=dict(in_channels=_base_.cb_swin_l_widths))

# 1x: 12 epochs, lr x0.1 after epochs 8 and 11, linear warm-up over the first 500 iterations
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
