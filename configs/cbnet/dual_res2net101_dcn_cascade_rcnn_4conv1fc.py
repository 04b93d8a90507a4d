# CBNetV2 paper: Cascade R-CNN, Dual-Res2Net101-DCN FPN, 4conv1fc box heads (SyncBN, GIoU weight 10,
# class-specific), 20e, trained at (1600, 400)-(1600, 1400), tested at 1600x1400: 54.1 box AP on COCO val2017,
# 146M params, 774G FLOPs (reported by the official repository, not reproduced here). Official config:
# cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_giou_4conv1f_coco.py.
# Everything else (and the differences to the official config) as dual_res2net101_dcn_cascade_rcnn.py.
_base_ = ['./dual_res2net101_dcn_cascade_rcnn.py', '../_base_/heads_4conv1fc_giou.py']

model = dict(roi_head=dict(bbox_head=_base_.bbox_heads_4conv1fc_giou))
