# DINO-4scale, Dual-ResNet50 (DHLC), 12 epochs: mmdet's DINO R-50 recipe (900 queries, ChannelMapper
# to 4 levels at strides 8-64, 6 deformable encoder / 6 decoder layers, contrastive denoising, two-stage query
# selection, box refinement; AdamW lr 1e-4 per 16 images, backbone lr x0.1, gradient clip 0.1, lr x0.1 after
# epoch 11; multi-scale 480-800 + DETR crop) with a Dual-ResNet50 and assistant supervision.
# Base: mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py (single R-50: 49.0 box AP on COCO val2017 in mmdet's
# metafile). Not in the CBNetV2 paper: no AP is claimed for this config.
#
# CBDINO: every branch's features go through the same ChannelMapper, encoder, decoder and DINO head (denoising
# queries and two-stage proposals made per branch); the assisting branch's losses x0.5 (logged assist1_*). At
# test time only the lead runs, once.
# Measured: 75.58M parameters, 75.25M trainable (single R-50 DINO: 47.70M), built with every init_cfg dropped.
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBDINO',
    # The mmdet ResNet-50 arguments of the base stay (out_indices=(1, 2, 3), frozen_stages=1, frozen BN, the
    # torchvision://resnet50 init_cfg, which is loaded once and copied into both backbones).
    backbone=dict(
        type='CBResNet',
        cb_inplanes=[64, 256, 512, 1024, 2048],  # checked against the ResNet-50 widths
        cb_del_stages=1,  # the lead reuses the assisting stem and layer1
        cb_zero_init=True),
    assist_loss_weights=0.5)

# The recipe's backbone lr x0.1 is for pretrained weights: the composite connections are new (zero-initialised)
# and train at the full lr, like the rest of the detector.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.composition': dict(lr_mult=1.0)}))
