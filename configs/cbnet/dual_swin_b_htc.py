# CBNetV2 paper: HTC, Dual-Swin-B FPN (ImageNet-22k pretrained), 20e, trained at (1600, 400)-(1600, 1400), tested
# at 1600x1400, AdamW: 57.9 box / 50.2 mask AP on COCO val2017, 231M params, 1004G FLOPs (reported by the official
# repository, not reproduced here).
# Official config: htc_cbv2_swin_base_patch4_window7_mstrain_400-1400_adamw_20e_coco.py.
# This is HTC WITH its semantic branch (FusedSemanticHead, 183 COCO-stuff classes, loss weight 0.2), as the paper
# trained it: it needs the COCO-stuff maps under data/coco/stuffthingmaps/train2017/ (see configs/cbnet/README.md).
# Without them use dual_swin_b_htc_without_semantic.py.
#
# Recipe: mmdet's HTC (3 stages, interleaved, mask information flow; Shared2FC class-agnostic SmoothL1 box heads;
# 2000 RPN proposals; RoI assigners that match low-quality boxes) on a Dual-Swin-B (drop path 0.3); flip + short side
# 400-1400 / long side <= 1600, test 1600x1400; 1 image per GPU x 8 GPUs with AdamW lr 5e-5 wd 0.05, no decay on
# norms and position tables; 20 epochs, steps [16, 19], 500-iteration warm-up; mixed precision; test soft-NMS
# (IoU 0.5), score threshold 0.001, 100 per image.
# Differences to the official config: mixed precision is mmengine's AmpOptimWrapper (dynamic loss scale), the
# official runs used NVIDIA apex O1; the Swin-B ImageNet-22k file is named here (the official config leaves
# model.pretrained to the command line); HTC's semantic maps are rescaled by the semantic head (mmdet 3) instead of
# a SegRescale transform (mmdet 2), the same 1/8.
_base_ = [
    'mmdet::htc/htc_r50_fpn_20e_coco.py', '../_base_/cb_swin_backbones.py', '../_base_/swin_adamw_amp.py',
    '../_base_/ms_1600x1400.py', '../_base_/soft_nms.py'
]
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBHybridTaskCascade',
    backbone=dict(_delete_=True, **_base_.cb_swin_b),
    neck=dict(type='CBFPN', in_channels=_base_.cb_swin_b_widths),
    assist_loss_weights=0.5,
    assist_proposals='lead',
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn))

train_pipeline = _base_.semantic_train_pipeline_1600
test_pipeline = _base_.mask_test_pipeline_1600
train_dataloader = dict(batch_size=1, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(_delete_=True, **_base_.swin_optim_wrapper_1img)
# lr 5e-5 is for 8 images per iteration (8 GPUs x 1); tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=8)
