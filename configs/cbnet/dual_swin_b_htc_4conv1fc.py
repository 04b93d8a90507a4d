# CBNetV2 paper: HTC, Dual-Swin-B FPN, 4conv1fc box heads with GIoU (weight 10) and SyncBN, 20e, trained at
# (1600, 400)-(1600, 1400), tested at 1600x1400: 58.4 box / 50.7 mask AP on COCO val2017, 235M params (reported by
# the paper, not reproduced here). Everything else as dual_swin_b_htc.py (semantic branch included).
_base_ = './dual_swin_b_htc.py'

_bbox_head = dict(
    type='Shared4Conv1FCBBoxHead',
    in_channels=256,
    conv_out_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=80,
    reg_class_agnostic=True,
    reg_decoded_bbox=True,  # GIoU is computed on decoded boxes
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]

model = dict(
    roi_head=dict(bbox_head=[
        dict(**_bbox_head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=s))
        for s in _stds
    ]))
