# Small single-backbone Faster R-CNN for the toy shapes dataset, trained from scratch on a CPU in minutes.
# Narrow on purpose (ResNet-18 at half width, 64-channel FPN and heads, few RoIs): it is the base that the
# Dual/Triple toy configs change with a thin delta (configs/cbnet/dual_r18_faster_rcnn_toy.py):
#   model = dict(type='CBFasterRCNN',
#                backbone=dict(_delete_=True, type='CBNet', backbone={{_base_.backbone}}, num_backbones=2))
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './toy_coco_detection.py',
    './toy_schedule.py',
]
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

num_classes = 3
# The backbone on its own, so that composite-backbone configs can wrap it: backbone={{_base_.backbone}}.
backbone = dict(
    type='ResNet',
    depth=18,
    base_channels=32,  # half-width ResNet-18: stage channels 32, 64, 128, 256
    num_stages=4,
    out_indices=(0, 1, 2, 3),
    frozen_stages=-1,  # from scratch: train everything, BN statistics included
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=False,
    style='pytorch',
    init_cfg=None)
model = dict(
    backbone=backbone,
    # objects are 18-50% of a ~128 px image: strides 8-32 suffice, and skipping the stride-4 level (FPN
    # start_level=1) removes the most expensive neck/RPN computations
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64, start_level=1, num_outs=3),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64, featmap_strides=[8, 16, 32]),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

# Horizontal-flip test-time augmentation for `tools/test.py --tta`.
tta_model = dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True)],
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='LoadAnnotations', with_bbox=True)],
            [
                dict(
                    type='PackDetInputs',
                    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                               'flip_direction'))
            ],
        ])
]
