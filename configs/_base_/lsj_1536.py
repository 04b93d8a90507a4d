# mmdet's large-scale jitter (LSJ) instance-segmentation data at 1536 x 1536, the CB-EVA02 recipe's scale: mmdet's
# `common/lsj-100e_coco-instance.py` with only its scale changed (resize ratio 0.1-2.0 of 1536, crop 1536, flip;
# test images resized to fit 1536 x 1536). Square padding to 1536 is the data preprocessor's `BatchFixedSizePad`.
_base_ = 'mmdet::common/lsj-100e_coco-instance.py'

image_size = (1536, 1536)
train_pipeline = [
    dict(t, scale=image_size) if 'scale' in t else dict(t, crop_size=image_size) if 'crop_size' in t else t
    for t in _base_.train_pipeline
]
test_pipeline = [dict(t, scale=image_size) if 'scale' in t else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
