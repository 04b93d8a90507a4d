# TensorRT fp16 on a CUDA machine (MMDeploy's TRTBatchedNMS post-processing). MMDeploy's name and settings.
_base_ = ['./_tensorrt_fp16_320_1344.py']
