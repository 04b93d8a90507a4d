# CBNetV2 paper: Cascade R-CNN, Dual-Res2Net101-DCN, "20e + 1x SWA": 54.8 box AP on COCO val2017 (55.3 test-dev)
# against 53.7 without SWA (reported by the official repository, not reproduced here). Released checkpoint:
# cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_coco_swa.pth.zip.
#
# The SWA stage of dual_res2net101_dcn_cascade_rcnn.py (same model, data, SGD and mixed precision): 12 epochs from
# its last checkpoint (epoch_20.pth) with the lr cycling from 0.02 down to 0.0002 in every epoch, no warm-up; the
# model is the mean of the 12 epoch-end weights, written to <work_dir>/swa_model.pth (configs/_base_/swa_12e.py).
# The official repository publishes no SWA config (its model zoo refers to the "SWA Object Detection" recipe,
# which this follows).
_base_ = ['./dual_res2net101_dcn_cascade_rcnn.py', '../_base_/swa_12e.py']

train_cfg = _base_.swa_train_cfg
param_scheduler = _base_.swa_param_scheduler
default_hooks = dict(checkpoint=_base_.swa_checkpoint)
custom_hooks = [_base_.swa_hook]
# the normal schedule's last checkpoint (its default work dir); or --cfg-options load_from=...
load_from = 'work_dirs/dual_res2net101_dcn_cascade_rcnn/epoch_20.pth'
