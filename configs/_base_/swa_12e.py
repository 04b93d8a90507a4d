# The SWA stage of the released CBNetV2 SWA models ("20e + 1x SWA"), the recipe of "SWA Object Detection" (Zhang et
# al. 2020): after the normal schedule, 12 more epochs from its last checkpoint with a cyclic learning rate, one
# cycle per epoch, each going from the base lr (the optimizer's lr of the normal schedule) down to 0.01x of it
# (cosine), with no warm-up; the model is the mean of the 12 epoch-end weights.
# Use through `_base_` (no other base may define these names):
#     _base_ = ['./<normal config>.py', '../_base_/swa_12e.py']
#     train_cfg = _base_.swa_train_cfg
#     param_scheduler = _base_.swa_param_scheduler
#     default_hooks = dict(checkpoint=_base_.swa_checkpoint)
#     custom_hooks = [_base_.swa_hook]
#     load_from = 'work_dirs/<normal config>/epoch_<last>.pth'
#
# - The lr: mmengine's CosineRestartLR with one period per epoch, converted to iterations (the lr changes every
#   iteration): the first iteration of each epoch uses the base lr, the cosine ends at 0.01x when the epoch ends.
# - SWAHook (cbnet/engine/swa.py) keeps the mean of the epoch-end weights in <work_dir>/swa_model.pth after every
#   epoch and validates that mean. The epoch checkpoints (every epoch, all kept) hold the trained weights:
#   `python tools/model_converters/average_checkpoints.py work_dirs/X/epoch_{1..12}.pth -o swa.pth` gives the same
#   mean afterwards. Test with `python tools/test.py CONFIG work_dirs/X/swa_model.pth`.
swa_epochs = 12

swa_train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=swa_epochs, val_interval=1)
swa_param_scheduler = [
    dict(
        type='CosineRestartLR',
        periods=[1] * swa_epochs,
        restart_weights=[1] * swa_epochs,
        eta_min_ratio=0.01,
        begin=0,
        end=swa_epochs,
        by_epoch=True,
        convert_to_iter_based=True)
]
swa_checkpoint = dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1)
swa_hook = dict(type='SWAHook', begin_epoch=1, filename='swa_model.pth', validate_average=True)
