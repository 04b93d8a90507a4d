# CBNetV2 paper: Faster R-CNN, Dual-ResNet50 (DB-R50) FPN, 1x: 40.8 box AP on COCO val2017, 69M params, 284G FLOPs
# (reported by the paper, not reproduced here). Official config: faster_rcnn_cbv2d1_r50_fpn_1x_coco.py; its
# released checkpoint converts to this config (tools/model_converters/cbnetv2_to_cbnet.py).
#
# Recipe (the official one = mmdet's Faster R-CNN R-50 1x): train (1333, 800) + flip, 2 images per GPU x 8 GPUs,
# SGD lr 0.02 momentum 0.9 wd 1e-4, 12 epochs, steps [8, 11], 500-iteration linear warm-up, fp32 (no mixed
# precision); test (1333, 800) with mmdet's default NMS (IoU 0.5, score threshold 0.05, 100 per image).
# Differences to the official config: none in the recipe (mmdet 3 transforms replace the mmdet 2 ones).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBFasterRCNN',
    # The mmdet ResNet-50 arguments of the base stay (depth, frozen_stages=1, norm_eval, torchvision://resnet50
    # init_cfg, which is loaded once and copied into both backbones).
    backbone=dict(
        type='CBResNet',
        cb_inplanes=[64, 256, 512, 1024, 2048],  # checked against the ResNet-50 widths
        cb_del_stages=1,  # the lead reuses the assisting stem and layer1
        cb_zero_init=True),
    neck=dict(type='CBFPN'),
    # assistant supervision: assisting losses x0.5, lead x1; the RoI heads of both branches train on the lead's
    # proposals (the official training)
    assist_loss_weights=0.5,
    assist_proposals='lead')

# lr 0.02 is for 16 images per iteration (8 GPUs x 2); tools/train.py --auto-scale-lr rescales for other totals
auto_scale_lr = dict(enable=False, base_batch_size=16)
