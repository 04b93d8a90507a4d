# The SWA stage (configs/_base_/swa_12e.py) of the demo model, dual_r18_faster_rcnn_toy.py, on the toy data: 12
# epochs from its last checkpoint with the lr cycling from 2e-3 down to 2e-5 in every epoch (AdamW as before), the
# mean of the 12 epoch-end weights in <work_dir>/swa_model.pth. The toy schedule counts iterations; an SWA stage
# counts epochs (one pass over the 240 training images = 60 iterations of 4).
#     python tools/train.py configs/cbnet/dual_r18_faster_rcnn_toy.py            # -> work_dirs/.../iter_300.pth
#     python tools/train.py configs/cbnet/dual_r18_faster_rcnn_swa_toy.py
#     python tools/test.py configs/cbnet/dual_r18_faster_rcnn_swa_toy.py \
#         work_dirs/dual_r18_faster_rcnn_swa_toy/swa_model.pth
_base_ = ['./dual_r18_faster_rcnn_toy.py', '../_base_/swa_12e.py']

train_dataloader = dict(sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
train_cfg = dict(_delete_=True, **_base_.swa_train_cfg)
param_scheduler = _base_.swa_param_scheduler
default_hooks = dict(checkpoint=dict(_delete_=True, **_base_.swa_checkpoint))
log_processor = dict(by_epoch=True)
custom_hooks = [_base_.swa_hook]
load_from = 'work_dirs/dual_r18_faster_rcnn_toy/iter_300.pth'
