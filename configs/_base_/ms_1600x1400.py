# Data pipelines of the official CBNetV2 1600x1400 recipes: training scale "range" with a long side of at most 1600
# and a short side drawn uniformly from 400-1400 (RandomResize between (1600, 400) and (1600, 1400) samples both
# edges uniformly, as mmdet 2's multiscale_mode='range' did), horizontal flip 0.5, no crop; a single test scale
# 1600x1400, no flip. Padding to a multiple of 32 is the data preprocessor's. Use through `_base_`, e.g.
#     train_dataloader = dict(batch_size=1, dataset=dict(pipeline=_base_.mask_train_pipeline_1600))
# The official 1600x1400 Swin runs had 1 image per GPU; the Res2Net ones 2.
train_scale_range_1600 = [(1600, 400), (1600, 1400)]
test_scale_1600 = (1600, 1400)
__meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')

box_train_pipeline_1600 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=train_scale_range_1600, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
mask_train_pipeline_1600 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=train_scale_range_1600, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
# HTC with its semantic branch: the COCO-stuff maps too (its FusedSemanticHead rescales them by 1/8 itself)
semantic_train_pipeline_1600 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomResize', scale=train_scale_range_1600, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
box_test_pipeline_1600 = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale_1600, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=__meta_keys)
]
mask_test_pipeline_1600 = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale_1600, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=__meta_keys)
]
