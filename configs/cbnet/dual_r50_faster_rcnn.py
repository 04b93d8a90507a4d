# CBNetV2 paper: Faster R-CNN, Dual-ResNet50 (DB-R50) FPN, 1x: 40.8 box AP on COCO val2017, 69M params, 284G FLOPs
# (reported by the paper, not reproduced here).
# The official CBNetV2 model (CBResNet, cb_del_stages=1, CBFPN): its converted checkpoint loads into this config.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBFasterRCNN',
    # The mmdet ResNet-50 arguments of the base stay (depth, frozen_stages=1, norm_eval, torchvision://resnet50
    # init_cfg, which is loaded once and copied into both backbones).
    backbone=dict(
        type='CBResNet',
        cb_inplanes=[64, 256, 512, 1024, 2048],  # checked against the ResNet-50 widths
        cb_del_stages=1,  # the lead reuses the assisting stem and layer1
        cb_zero_init=True),
    neck=dict(type='CBFPN'),
    # assistant supervision: assisting losses x0.5, lead x1 (the paper's lambda)
    assist_loss_weights=0.5,
    # soft-NMS at test time, as the official CBNetV2 configs do (from memory of those files; not re-checkable offline)
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))
