# CBNetV2 paper: Cascade R-CNN, Dual-Res2Net101-DCN FPN, 20e, trained at (1600, 400)-(1600, 1400), tested at
# 1600x1400: 53.7 box AP on COCO val2017, 141M params, 429G FLOPs (reported by the official repository, not
# reproduced here). Official config: cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_coco.py. The 4conv1fc
# GIoU variant (54.1 AP) is dual_res2net101_dcn_cascade_rcnn_4conv1fc.py.
#
# Recipe: mmdet's Res2Net-101 (v1d, 26w x 4s, open-mmlab://res2net101_v1d_26w_4s) with modulated deformable convs
# in stages 2-4; mmdet's Cascade R-CNN heads (Shared2FC, class-agnostic, SmoothL1); train range 400-1400 short side,
# long side <= 1600, flip, 2 images per GPU x 8 GPUs, SGD lr 0.02 momentum 0.9 wd 1e-4, 20 epochs, steps [16, 19],
# 500-iteration linear warm-up, mixed precision; test soft-NMS (IoU 0.5), score threshold 0.001, 100 per image.
# Differences to the official config: mixed precision is mmengine's AmpOptimWrapper (dynamic loss scale), the
# official runs used NVIDIA apex O1.
_base_ = [
    'mmdet::res2net/cascade-rcnn_res2net-101_fpn_20e_coco.py', '../_base_/ms_1600x1400.py', '../_base_/soft_nms.py'
]
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBCascadeRCNN',
    # mmdet's Res2Net-101 arguments of the base stay, open-mmlab://res2net101_v1d_26w_4s included
    backbone=dict(
        type='CBRes2Net',
        cb_inplanes=[64, 256, 512, 1024, 2048],
        cb_del_stages=1,
        cb_zero_init=True,
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),  # modulated deformable convs
        stage_with_dcn=(False, True, True, True)),
    neck=dict(type='CBFPN'),
    assist_loss_weights=0.5,
    assist_proposals='lead',
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn))

train_pipeline = _base_.box_train_pipeline_1600
test_pipeline = _base_.box_test_pipeline_1600
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# fp16 as in the official recipe (needs a GPU; on CPU pass --cfg-options optim_wrapper.type=OptimWrapper)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
# the lr 0.02 is for 16 images per iteration (8 GPUs x 2); tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=16)
