# Test-time augmentation of the CBNetV2 paper's HTC Dual-Swin-L result (59.6 box / 51.8 mask AP val2017, 60.1 / 52.3
# test-dev): 4 scales x {flip, no flip} = 8 views per image, as the official *_1x_coco_tta.py config.
#
# Use: add this file to a config's _base_ list (or copy the two variables), then
#     python tools/test.py CONFIG CKPT --tta
# tools/test.py wraps the detector: cfg.model = dict(**cfg.tta_model, module=cfg.model), and replaces the
# test pipeline with tta_pipeline. Memory: masks of all 8 views are kept (boolean, original image size).
#
# Merging differs from the official (mmdet 2) HTC aug_test, which ran all views on the same merged proposals,
# averaged their box scores/deltas and mask probabilities, then applied the soft-NMS of the RCNN test_cfg once. Here
# (mmdet 3 TTA) every view is detected on its own and the union is merged: boxes by soft-NMS (IoU 0.5, min score
# 0.001, 100 per image, as the RCNN test_cfg), masks by score-weighted voting of the overlapping same-class
# detections (DetTTAModelWithMasks). soft-NMS runs on the CPU in mmcv; for 8 views x 100 detections per image that
# costs a few ms; see docs/testdev_tta.md.
# No custom_imports here: the configs that include this file import cbnet themselves (mmengine refuses a key defined
# by two bases).

tta_model = dict(
    type='DetTTAModelWithMasks',
    tta_cfg=dict(
        nms=dict(type='soft_nms', iou_threshold=0.5, min_score=0.001),
        max_per_img=100,
        mask_voting=dict(iou_threshold=0.5, mask_thr=0.5)))

# (long edge, short edge) limits as in the paper; keep_ratio=True makes the order irrelevant.
tta_img_scales = [(1600, 1000), (1600, 1400), (1800, 1200), (1800, 1600)]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=scale, keep_ratio=True) for scale in tta_img_scales],
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [
                dict(
                    type='PackDetInputs',
                    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                               'flip_direction'))
            ],
        ])
]
