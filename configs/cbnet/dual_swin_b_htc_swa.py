# CBNetV2 paper: HTC, Dual-Swin-B (ImageNet-22k), "20e + 1x SWA": 58.2 box / 50.4 mask AP on COCO val2017 (58.6 /
# 51.1 test-dev) against 57.9 / 50.2 without SWA (reported by the official repository, not reproduced here).
# Released checkpoint: htc_cbv2_swin_base22k_patch4_window7_mstrain_400-1400_adamw_20e_coco_swa.pth.zip.
#
# The SWA stage of dual_swin_b_htc.py (same model with its semantic branch, data, AdamW and mixed precision): 12
# epochs from its last checkpoint (epoch_20.pth) with the lr cycling from 5e-5 down to 5e-7 in every epoch, no
# warm-up; the model is the mean of the 12 epoch-end weights, written to <work_dir>/swa_model.pth
# (configs/_base_/swa_12e.py). The official repository publishes no SWA config (its model zoo refers to the
# "SWA Object Detection" recipe, which this follows).
_base_ = ['./dual_swin_b_htc.py', '../_base_/swa_12e.py']

train_cfg = _base_.swa_train_cfg
param_scheduler = _base_.swa_param_scheduler
default_hooks = dict(checkpoint=_base_.swa_checkpoint)
custom_hooks = [_base_.swa_hook]
# the normal schedule's last checkpoint (its default work dir); or --cfg-options load_from=...
load_from = 'work_dirs/dual_swin_b_htc/epoch_20.pth'
