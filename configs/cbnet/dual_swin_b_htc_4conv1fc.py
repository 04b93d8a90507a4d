# CBNetV2 paper: HTC, Dual-Swin-B FPN (ImageNet-22k), 4conv1fc box heads with GIoU (weight 10) and SyncBN, 20e,
# trained at (1600, 400)-(1600, 1400), tested at 1600x1400: 58.4 box / 50.7 mask AP on COCO val2017, 58.7 / 51.1 on
# test-dev, 235M params, 1348G FLOPs (reported by the paper, not reproduced here). Official config:
# htc_cbv2_swin_base_patch4_window7_mstrain_400-1400_giou_4conv1f_adamw_20e_coco.py.
# The official HTC 4conv1fc heads regress class-agnostic boxes (unlike the cascade ones). Everything else (the
# semantic branch included, and the differences to the official config) as dual_swin_b_htc.py.
_base_ = ['./dual_swin_b_htc.py', '../_base_/heads_4conv1fc_giou.py']

model = dict(roi_head=dict(bbox_head=_base_.bbox_heads_4conv1fc_giou_agnostic))
