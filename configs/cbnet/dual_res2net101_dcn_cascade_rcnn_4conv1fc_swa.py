# CBNetV2 paper: Cascade R-CNN with 4conv1fc box heads, Dual-Res2Net101-DCN, "20e + 1x SWA": 55.3 box AP on COCO
# val2017 (55.6 test-dev) against 54.1 without SWA (reported by the official repository, not reproduced here).
# Released checkpoint: cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_giou_4conv1f_coco_swa.pth.zip.
#
# The SWA stage of dual_res2net101_dcn_cascade_rcnn_4conv1fc.py, as dual_res2net101_dcn_cascade_rcnn_swa.py is of
# its Shared2FC twin: 12 epochs from epoch_20.pth, lr cycling 0.02 -> 0.0002 in every epoch, the mean of the 12
# epoch-end weights in <work_dir>/swa_model.pth (configs/_base_/swa_12e.py). The SyncBN statistics of the 4conv1fc
# heads are averaged like the weights.
_base_ = ['./dual_res2net101_dcn_cascade_rcnn_4conv1fc.py', '../_base_/swa_12e.py']

train_cfg = _base_.swa_train_cfg
param_scheduler = _base_.swa_param_scheduler
default_hooks = dict(checkpoint=_base_.swa_checkpoint)
custom_hooks = [_base_.swa_hook]
# the normal schedule's last checkpoint (its default work dir); or --cfg-options load_from=...
load_from = 'work_dirs/dual_res2net101_dcn_cascade_rcnn_4conv1fc/epoch_20.pth'
