# Test-time soft-NMS of the official CBNetV2 1600x1400 recipes (Cascade Mask R-CNN Swin-S/B, Cascade R-CNN
# Res2Net-DCN, every HTC): score threshold 0.001, soft-NMS with IoU 0.5, at most 100 detections per image. sigma,
# min_score and method are mmcv's soft_nms defaults, which the official configs used without naming them.
# Use through `_base_`: model = dict(test_cfg=dict(rcnn=_base_.soft_nms_rcnn)). mmcv's soft_nms runs on the CPU.
# The 480-800 Swin-T and the Dual-R50 recipes keep mmdet's NMS (IoU 0.5, score threshold 0.05).
soft_nms_rcnn = dict(
    score_thr=0.001,
    nms=dict(type='soft_nms', iou_threshold=0.5, sigma=0.5, min_score=0.001, method='linear'),
    max_per_img=100)
