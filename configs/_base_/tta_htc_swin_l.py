# Test-time augmentation of the CBNetV2 paper's HTC Dual-Swin-L result (60.1 box / 52.3 mask AP test-dev):
# 4 scales x {flip, no flip} = 8 views per image, merged by DetTTAModelWithMasks (boxes by NMS, masks by
# score-weighted voting of the overlapping same-class detections).
#
# Use: add this file to a config's _base_ list (or copy the two variables), then
#     python tools/test.py CONFIG CKPT --tta
# tools/test.py wraps the detector: cfg.model = dict(**cfg.tta_model, module=cfg.model), and replaces the
# test pipeline with tta_pipeline. Memory: masks of all 8 views are kept (boolean, original image size).
#
# Merging uses soft-NMS like the paper's RCNN test_cfg (iou 0.5). soft-NMS runs on the CPU in mmcv; for 8 views
# x 100 detections per image that costs a few ms; see docs/testdev_tta.md.
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
