# TensorRT fp16 with masks on a CUDA machine. MMDeploy's name and settings.
_base_ = ['./_tensorrt_fp16_320_1344.py']
onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes={'masks': {
        0: 'batch',
        1: 'num_dets',
        2: 'height',
        3: 'width'
    }})
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
