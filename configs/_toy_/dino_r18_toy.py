# Small single-backbone DINO for the toy shapes dataset, trained from scratch on a CPU in minutes: mmdet's
# DINO (two-stage query selection, box refinement, contrastive denoising) with the toy Faster R-CNN's
# half-width ResNet-18, 3 feature levels (strides 8-32), 2 encoder / 3 decoder layers and 30 queries (the toy
# images hold 1-4 objects). The transformer stays 256-d: mmdet 3.3's DinoTransformerDecoder encodes the
# reference boxes with a fixed 128 features per coordinate, so other widths fail with a shape error. The Dual
# toy DINO changes it with a thin delta (configs/cbnet/dual_r18_dino_toy.py).
_base_ = ['./toy_coco_detection.py', './toy_schedule.py']
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

num_classes = 3
num_levels = 3
embed_dims = 256  # fixed by mmdet 3.3's DINO decoder (see above)
# The backbone on its own, so that composite-backbone configs can wrap it: backbone={{_base_.backbone}}.
backbone = dict(
    type='ResNet',
    depth=18,
    base_channels=32,  # half-width ResNet-18: stage channels 32, 64, 128, 256
    num_stages=4,
    out_indices=(1, 2, 3),  # strides 8, 16, 32: objects are 23-64 px in 128 px images
    frozen_stages=-1,  # from scratch: train everything, BN statistics included
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=False,
    style='pytorch',
    init_cfg=None)
model = dict(
    type='DINO',
    num_queries=30,
    with_box_refine=True,
    as_two_stage=True,
    num_feature_levels=num_levels,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=backbone,
    neck=dict(
        type='ChannelMapper',
        in_channels=[64, 128, 256],
        kernel_size=1,
        out_channels=embed_dims,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=num_levels),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0))),
    decoder=dict(
        num_layers=3,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True, offset=0.0, temperature=20),
    bbox_head=dict(
        type='DINOHead',
        embed_dims=embed_dims,
        num_classes=num_classes,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(
        label_noise_scale=0.5, box_noise_scale=1.0, group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=20)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=20))

# DETR-style training: AdamW at a tenth of the CNN toys' lr (1e-3 reached 0.46 val mAP in 300 iterations where
# 2e-4 reached 0.55), tight gradient clipping
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4), clip_grad=dict(max_norm=1.0, norm_type=2))
