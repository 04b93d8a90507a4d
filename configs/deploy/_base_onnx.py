# MMDeploy's ONNX export settings (its configs/_base_/onnx_config.py) and mmdet post-processing defaults
# (configs/mmdet/_base_/base_static.py). The RPN and R-CNN box heads of ONNX Runtime graphs post-process as mmdet
# does (cbnet.deploy.rewriters); post_processing is read by the other heads.
# opset 16 instead of MMDeploy's 11: from opset 16 ONNX Runtime's RoiAlign has mmcv's aligned=True ('half_pixel');
# below it, mmdeploy shifts the RoIs and ONNX Runtime stretches RoIs under one feature pixel to one pixel, which
# changes the features of small RoIs (tests/test_deploy_compat.py measures both).
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=16,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=None,
    optimize=True)
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,  # YOLOv3
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))
