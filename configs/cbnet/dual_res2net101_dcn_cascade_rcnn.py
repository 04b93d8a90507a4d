# CBNetV2 paper: Cascade R-CNN, Dual-Res2Net101-DCN FPN, 20e, multi-scale training (1600, 400)-(1600, 1400),
# 4conv1fc box heads with GIoU loss, mixed precision: 53.7 box AP on COCO val2017, 141M params, 429G FLOPs
# (reported by the paper, not reproduced here). The official config of this result is
# cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_giou_4conv1f_coco.py.
_base_ = 'mmdet::res2net/cascade-rcnn_res2net-101_fpn_20e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

# 4conv1fc heads with GIoU (weight 10) and SyncBN, as the Swin/CBNetV2 strong recipes use them
_bbox_head = dict(
    type='ConvFCBBoxHead',
    num_shared_convs=4,
    num_shared_fcs=1,
    in_channels=256,
    conv_out_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=80,
    reg_class_agnostic=False,
    reg_decoded_bbox=True,
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]

model = dict(
    type='CBCascadeRCNN',
    # mmdet's Res2Net-101 (v1d, 26w x 4s) arguments of the base stay, open-mmlab://res2net101_v1d_26w_4s included
    backbone=dict(
        type='CBRes2Net',
        cb_inplanes=[64, 256, 512, 1024, 2048],
        cb_del_stages=1,
        cb_zero_init=True,
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),  # modulated deformable convs
        stage_with_dcn=(False, True, True, True)),
    neck=dict(type='CBFPN'),
    roi_head=dict(bbox_head=[
        dict(**_bbox_head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=s))
        for s in _stds
    ]),
    assist_loss_weights=0.5,
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=[(1600, 400), (1600, 1400)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1600, 1400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# fp16 as in the official recipe (needs a GPU; on CPU override with --cfg-options optim_wrapper.type=OptimWrapper)
optim_wrapper = dict(type='AmpOptimWrapper')
# the base lr 0.02 is for 16 images per iteration; tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=16)
