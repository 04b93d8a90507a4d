# The optimizer of every CBNetV2 Swin config: AdamW, betas (0.9, 0.999), weight decay 0.05, no grad clipping, mixed
# precision. Use through `_base_`: optim_wrapper = dict(_delete_=True, **_base_.swin_optim_wrapper).
#
# - lr: 1e-4 for 2 images per GPU, 1e-4 x (images per GPU / 2) otherwise, i.e. 5e-5 for the 1600x1400 recipes at
#   1 image per GPU (`swin_optim_wrapper_1img`). With the 8 GPUs of the official runs that is a total batch of 16
#   (or 8): set auto_scale_lr.base_batch_size to match, so that `--auto-scale-lr` rescales for other totals.
# - weight decay 0 for parameters whose name CONTAINS 'absolute_pos_embed', 'relative_position_bias_table' or
#   'norm' (mmengine matches custom_keys as substrings, like mmcv did): the Swin norms and position tables. The SyncBN
#   layers of 4conv1fc box heads are named 'bn' (mmcv ConvModule) and keep the decay, as in the official runs.
# - AmpOptimWrapper with a dynamic loss scale: the closest equivalent of the official NVIDIA apex amp O1 (fp16 autocast
#   of the white-listed ops, dynamic loss scaling). It needs a GPU; on CPU pass
#   --cfg-options optim_wrapper.type=OptimWrapper (and drop loss_scale).
__paramwise_cfg = dict(
    custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    })

swin_optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=None,
    paramwise_cfg=__paramwise_cfg)
swin_optim_wrapper_1img = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=None,
    paramwise_cfg=__paramwise_cfg)
