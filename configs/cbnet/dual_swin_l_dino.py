# DINO-5scale, Dual-Swin-L (ImageNet-22k, 384 px), 36 epochs: mmdet's DINO Swin-L recipe (900 queries,
# ChannelMapper to 5 levels at strides 4-64, 6 deformable encoder / 6 decoder layers, contrastive denoising;
# AdamW lr 1e-4 per 16 images, backbone lr x0.1, gradient clip 0.1, lr x0.1 after epochs 27 and 33; multi-scale
# 480-800 + DETR crop; activation checkpointing in the Swin blocks) with a Dual-Swin-L and assistant supervision.
# Base: mmdet::dino/dino-5scale_swin-l_8xb2-36e_coco.py (single Swin-L: 58.4 box AP on COCO val2017 in mmdet's
# metafile). Not in the CBNetV2 paper: no AP is claimed for this config.
#
# CBDINO: every branch's features go through the same ChannelMapper, encoder, decoder and DINO head (denoising
# queries and two-stage proposals made per branch); the assisting branch's losses x0.5 (logged assist1_*). The
# Swin-L checkpoint is loaded once (original Swin layout, converted) and copied into both branches.
# Measured: 416.11M parameters (single Swin-L DINO: 218.33M), built with every init_cfg dropped.
_base_ = 'mmdet::dino/dino-5scale_swin-l_8xb2-36e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBDINO',
    # The mmdet SwinTransformer arguments of the base stay (embed_dims=192, depths [2, 2, 18, 2], window 12,
    # drop path 0.2, with_cp=True, convert_weights=True, out_indices (0, 1, 2, 3), the 22k init_cfg).
    backbone=dict(
        type='CBSwinTransformer',  # official CBNetV2 Swin composition (1x1 conv + bias, identity on equal widths)
        cb_del_stages=1,  # official meaning: the lead has no patch embedding
        cb_zero_init=True),
    assist_loss_weights=0.5)

# The recipe's backbone lr x0.1 is for pretrained weights: the composite connections are new and train at the
# full lr, like the rest of the detector.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.composition': dict(lr_mult=1.0)}))
