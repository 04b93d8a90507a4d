# Cascade R-CNN, Dual-HRNetV2p-W32 (DHLC) + HRFPN, 20 epochs: mmdet's HRNet Cascade R-CNN recipe unchanged (train
# (1333, 800) + flip, 2 images per GPU, SGD lr 0.02, 20 epochs, steps [16, 19], 500-iteration warm-up, fp32; test
# with mmdet's NMS) with a Dual HRNet-W32 and assistant supervision. Base:
# mmdet::hrnet/cascade-rcnn_hrnetv2p-w32-20e_coco.py (single HRNet-W32: 43.3 box AP on COCO val2017 in mmdet's
# metafile). Not in the CBNetV2 paper: no AP is claimed for this config.
#
# Both HRNet-W32 load the MSRA ImageNet file (open-mmlab://msra/hrnetv2_w32) and keep norm_eval=True; the
# connections start at zero, so training starts from two copies of the pretrained HRNet. Composite stages of HRNet
# (cbnet/models/backbones/adapters/hrnet.py): layer1, stage2, stage3, stage4 (returning the finest of HRNet's
# four maps), then HRNet's three coarser returned maps; the lead reuses the assisting stem and layer1
# (del_stages=1, stride 4), its HRNet stages 2-4 receive the assisting branch's outputs on their finest (stride-4)
# stream, and its returned maps the assisting ones of the same and coarser resolutions. Both branches return
# HRNet's four maps (32/64/128/256 wide), read by the shared HRFPN (in_channels=[32, 64, 128, 256]); the neck and
# the heads run on every branch in training (assisting losses x0.5, logged assist1_*, RoI heads on the lead's
# proposals), on the lead only at test time.
# Measured: 104.26M parameters, all trainable (single HRNet-W32 Cascade R-CNN: 74.92M; backbone 58.64M vs 29.31M,
# of which 0.36M composite connections), built with every init_cfg dropped.
_base_ = 'mmdet::hrnet/cascade-rcnn_hrnetv2p-w32-20e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBCascadeRCNN',
    backbone=dict(
        _delete_=True,
        type='CBNet',
        num_backbones=2,
        composition='DHLC',
        del_stages=1,
        backbone=dict(
            type='HRNet',
            extra=dict(
                stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ), num_channels=(64, )),
                stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4), num_channels=(32, 64)),
                stage3=dict(
                    num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4), num_channels=(32, 64, 128)),
                stage4=dict(
                    num_modules=3,
                    num_branches=4,
                    block='BASIC',
                    num_blocks=(4, 4, 4, 4),
                    num_channels=(32, 64, 128, 256))),
            init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w32'))),
    assist_loss_weights=0.5,
    assist_proposals='lead')
