# The "4conv1fc" box heads of the official CBNetV2 / Swin strong recipes, one per cascade stage: 4 shared 3x3 convs
# (256) with SyncBN + 1 fc (1024), GIoU loss (weight 10) on decoded boxes, the cascade's target stds per stage.
# Use through `_base_`: model = dict(roi_head=dict(bbox_head=_base_.bbox_heads_4conv1fc_giou)).
# - bbox_heads_4conv1fc_giou: class-specific regression (Cascade (Mask) R-CNN: Swin T/S/B, Res2Net-DCN).
# - bbox_heads_4conv1fc_giou_agnostic: class-agnostic regression (the official HTC 4conv1fc configs).
__stage_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
__head = dict(
    type='ConvFCBBoxHead',
    num_shared_convs=4,
    num_shared_fcs=1,
    in_channels=256,
    conv_out_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=80,
    reg_decoded_bbox=True,  # GIoU is computed on decoded boxes
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0))

bbox_heads_4conv1fc_giou = [
    dict(
        **__head,
        reg_class_agnostic=False,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds))
    for stds in __stage_stds
]
bbox_heads_4conv1fc_giou_agnostic = [
    dict(
        **__head,
        reg_class_agnostic=True,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds))
    for stds in __stage_stds
]
