# CBNetV2 paper, headline result: HTC, Dual-Swin-L FPN (ImageNet-22k pretrained), 4conv1fc box heads with GIoU
# (weight 10) and SyncBN, 1x: 59.1 box / 51.0 mask AP on COCO val2017, 59.4 / 51.6 on test-dev; 453M params,
# 2162G FLOPs. With test-time augmentation (`--tta`, configs/_base_/tta_htc_swin_l.py): 60.1 / 52.3 test-dev.
# (All reported by the paper, not reproduced here.)
#
# Recipe: train at (1600, 400)-(1600, 1400) with flip, test at 1600x1400; AdamW lr 1e-4 per 16 images, wd 0.05,
# no decay on norms / position tables; 12 epochs, steps [8, 11], 500-iter linear warm-up; drop path 0.2; mixed
# precision (AmpOptimWrapper); soft-NMS (iou 0.5), score threshold 0.001. HTC with its semantic branch, as the paper
# trained it (needs COCO-stuff maps in data/coco/stuffthingmaps/train2017/); dual_swin_l_htc_without_semantic.py
# needs none.
#
# Memory: about 900M parameter+gradient tensors in fp32 plus AdamW state; at 1600x1400 activations dominate. To trade
# compute for memory, checkpoint the Swin blocks' activations:
#     python tools/train.py configs/cbnet/dual_swin_l_htc.py --cfg-options model.backbone.use_checkpoint=True
_base_ = ['./dual_swin_b_htc_4conv1fc.py', '../_base_/tta_htc_swin_l.py']  # `tools/test.py ... --tta`: paper TTA

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth'  # noqa

model = dict(
    backbone=dict(
        embed_dim=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=7,
        drop_path_rate=0.2,
        use_checkpoint=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768, 1536]))

# 1x: 12 epochs, lr x0.1 after epochs 8 and 11, linear warm-up over the first 500 iterations
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
