# TensorRT fp16, inputs from 320x320 to 1344x1344 (optimised for 800x1344); MMDeploy's settings.
_base_ = ['./_dynamic_axes.py']
backend_config = dict(
    type='tensorrt',
    common_config=dict(fp16_mode=True, max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            input_shapes=dict(
                input=dict(min_shape=[1, 3, 320, 320], opt_shape=[1, 3, 800, 1344], max_shape=[1, 3, 1344, 1344])))
    ])
