# CBNetV2 paper (Table: generality across detectors): Mask R-CNN, Dual-ResNet50 FPN, 1x.
# The official repository has no config for it: this is mmdet's Mask R-CNN R-50 1x recipe unchanged (train
# (1333, 800) + flip, 2 images per GPU, SGD lr 0.02, 12 epochs, steps [8, 11], fp32; test with mmdet's NMS, IoU 0.5,
# score threshold 0.05) with the Dual backbone of dual_r50_faster_rcnn.py and the official assistant supervision.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBMaskRCNN',
    backbone=dict(type='CBResNet', cb_inplanes=[64, 256, 512, 1024, 2048], cb_del_stages=1, cb_zero_init=True),
    neck=dict(type='CBFPN'),
    assist_loss_weights=0.5,
    assist_proposals='lead')
