# CBNetV2 paper (Table: generality across detectors): Mask R-CNN, Dual-ResNet50 FPN, 1x.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBMaskRCNN',
    backbone=dict(type='CBResNet', cb_inplanes=[64, 256, 512, 1024, 2048], cb_del_stages=1, cb_zero_init=True),
    neck=dict(type='CBFPN'),
    assist_loss_weights=0.5,
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))
