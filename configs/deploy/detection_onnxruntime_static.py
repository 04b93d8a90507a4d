# ONNX Runtime, input shape fixed at export (the export image's). MMDeploy's name and settings.
_base_ = ['./_base_onnx.py']
backend_config = dict(type='onnxruntime')
