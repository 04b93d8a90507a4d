# ONNX Runtime, any input size, with masks (28x28 per detection in the graph, pasted into the image afterwards as
# mmdet pastes them). MMDeploy's name and settings.
_base_ = ['./_dynamic_axes.py']
onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes={'masks': {
        0: 'batch',
        1: 'num_dets',
        2: 'height',
        3: 'width'
    }})
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
backend_config = dict(type='onnxruntime')
