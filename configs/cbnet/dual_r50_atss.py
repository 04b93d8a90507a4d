# CBNetV2 paper (Table: generality across detectors): ATSS, Dual-ResNet50 FPN, 1x.
# A single-stage detector: the official code has none; here the same assistant supervision applies (the
# dense head runs on every branch's FPN output in training, on the lead's only at test time).
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBATSS',
    backbone=dict(type='CBResNet', cb_inplanes=[64, 256, 512, 1024, 2048], cb_del_stages=1, cb_zero_init=True),
    neck=dict(type='CBFPN'),
    assist_loss_weights=0.5)
