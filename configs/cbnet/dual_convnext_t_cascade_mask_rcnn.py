# Cascade Mask R-CNN, Dual-ConvNeXt-T (mmpretrain ConvNeXt) FPN, 4conv1fc GIoU heads, 3x, multi-scale training
# (480-800, DETR-style crop), mixed precision. Not in the CBNetV2 paper (no paper number): mmdet's single
# ConvNeXt-T recipe (50.3 box / 43.6 mask AP there) with a Dual backbone, to show the composite on a third family.
# Everything but the backbone is mmdet's recipe (AdamW lr 2e-4 with layer-wise decay 0.7, 1000-iteration warm-up,
# 36 epochs, mixed precision, mmdet's NMS at test time).
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/convnext/downstream/convnext-tiny_3rdparty_32xb128-noema_in1k_20220301-795e9634.pth'  # noqa

model = dict(
    type='CBCascadeRCNN',
    backbone=dict(
        _delete_=True,
        type='CBConvNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        cb_del_stages=1,  # the lead reuses the assisting stem and first stage
        cb_zero_init=True,
        # an mmpretrain classifier checkpoint: its backbone weights carry the 'backbone.' prefix
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=dict(type='CBFPN', in_channels=[96, 192, 384, 768]),
    assist_loss_weights=0.5,
    assist_proposals='lead')

# mmdet's ConvNeXt recipe decays the lr layer-wise; its constructor only knows single-backbone parameter names.
# cbnet's subclass maps every branch (and each composite connection) to its stage, same paramwise_cfg.
optim_wrapper = dict(constructor='CBLearningRateDecayOptimizerConstructor')
