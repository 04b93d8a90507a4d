# Small single-backbone Grounding DINO for the toy shapes dataset, trained from scratch on a CPU: mmdet's Grounding
# DINO (text-image fusion in the encoder, text cross-attention in the decoder, contrastive classification against
# the prompt's tokens) with the toy DINO's half-width ResNet-18, 3 feature levels, 2 encoder / 3 decoder layers and
# 30 queries. The prompt is the dataset's class names ('rectangle. ellipse. triangle.'; return_classes=True).
# The language model is a local directory (no download): by default data/tiny_bert/, which
#   python tools/misc/make_tiny_bert.py data/tiny_bert
# writes (a one-layer BERT with a small vocabulary); CBNET_LANG_MODEL=/path/to/bert points it at another one, e.g.
# a bert-base-uncased saved with save_pretrained. The Dual version is configs/cbnet/dual_r18_grounding_dino_toy.py.
_base_ = ['./toy_coco_detection.py', './toy_schedule.py']
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

lang_model_name = '{{$CBNET_LANG_MODEL:data/tiny_bert/}}'
num_levels = 3
embed_dims = 256  # fixed by mmdet 3.3's DINO decoder (128 positional features per coordinate)
backbone = dict(
    type='ResNet',
    depth=18,
    base_channels=32,
    num_stages=4,
    out_indices=(1, 2, 3),
    frozen_stages=-1,
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=False,
    style='pytorch',
    init_cfg=None)
model = dict(
    type='GroundingDINO',
    num_queries=30,
    with_box_refine=True,
    as_two_stage=True,
    num_feature_levels=num_levels,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1,
        pad_mask=False),
    language_model=dict(
        type='BertModel',
        name=lang_model_name,
        pad_to_max=False,
        use_sub_sentence_represent=True,
        special_tokens_list=['[CLS]', '[SEP]', '.', '?'],
        add_pooling_layer=False),
    backbone=backbone,
    neck=dict(
        type='ChannelMapper',
        in_channels=[64, 128, 256],
        kernel_size=1,
        out_channels=embed_dims,
        act_cfg=None,
        bias=True,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=num_levels),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_levels=num_levels, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0)),
        text_layer_cfg=dict(
            self_attn_cfg=dict(num_heads=4, embed_dims=embed_dims, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0)),
        fusion_layer_cfg=dict(v_dim=embed_dims, l_dim=embed_dims, embed_dim=256, num_heads=4, init_values=1e-4)),
    decoder=dict(
        num_layers=3,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_text_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True, offset=0.0, temperature=20),
    bbox_head=dict(
        type='GroundingDINOHead',
        num_classes=3,
        sync_cls_avg_factor=True,
        contrastive_cfg=dict(max_text_len=256, log_scale=0.0, bias=False),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(
        label_noise_scale=0.5, box_noise_scale=1.0, group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=20)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='BinaryFocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=20))

# the prompt: the dataset's class names travel with every image (return_classes=True, PackDetInputs' text keys)
img_scale = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
                   'custom_entities'))
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text', 'custom_entities'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, return_classes=True))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, return_classes=True))
test_dataloader = val_dataloader

# DETR-style training as the toy DINO: AdamW 2e-4, tight gradient clipping
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4), clip_grad=dict(max_norm=1.0, norm_type=2))
