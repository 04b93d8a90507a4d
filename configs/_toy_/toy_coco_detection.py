# Toy COCO-format shapes dataset written by `python tools/misc/make_toy_coco.py data/toy_coco` (3 classes,
# boxes + polygon masks, ~128 px images). The root is overridable without editing configs:
#   CBNET_TOY_DATA_ROOT=/path/to/toy_coco/ python tools/train.py ...   (keep the trailing '/')
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

data_root = '{{$CBNET_TOY_DATA_ROOT:data/toy_coco/}}'
metainfo = dict(classes=('rectangle', 'ellipse', 'triangle'), palette=[(220, 40, 40), (40, 200, 60), (50, 80, 230)])
img_scale = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # the toy schedule counts iterations, not epochs
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', metric='bbox')
test_evaluator = val_evaluator

# The test-dev style split (images only, no annotations): predict and write COCO json for submission with
#   tools/test.py CONFIG CKPT --cfg-options test_dataloader.dataset.ann_file=annotations/image_info_test-dev.json \
#     test_dataloader.dataset.data_prefix.img=test/ test_evaluator.format_only=True \
#     test_evaluator.ann_file=<data_root>annotations/image_info_test-dev.json \
#     test_evaluator.outfile_prefix=work_dirs/toy_test_dev
