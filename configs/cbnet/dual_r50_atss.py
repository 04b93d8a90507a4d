# CBNetV2 paper (Table: generality across detectors): ATSS, Dual-ResNet50 FPN, 1x.
# The official repository has no config for it (its code is two-stage only): this is mmdet's ATSS R-50 1x recipe
# unchanged (SGD lr 0.01, 12 epochs, test NMS IoU 0.6, score threshold 0.05) with the Dual backbone of
# dual_r50_faster_rcnn.py. The same assistant supervision applies: the dense head runs on every branch's FPN output
# in training (assisting losses x0.5), on the lead's only at test time.
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBATSS',
    backbone=dict(type='CBResNet', cb_inplanes=[64, 256, 512, 1024, 2048], cb_del_stages=1, cb_zero_init=True),
    neck=dict(type='CBFPN'),
    assist_loss_weights=0.5)
