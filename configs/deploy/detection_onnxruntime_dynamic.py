# ONNX Runtime, any input size. MMDeploy's name and settings.
_base_ = ['./_dynamic_axes.py']
backend_config = dict(type='onnxruntime')
