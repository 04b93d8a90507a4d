# RTMDet-L, Dual-CSPNeXt-L (DHLC), 300 epochs: mmdet's RTMDet-L recipe unchanged (CSPNeXtPAFPN, RTMDetSepBNHead,
# dynamic soft-label assignment, AdamW lr 0.004 per 256 images, cosine from epoch 150, Mosaic/MixUp switched off
# for the last 20 epochs by PipelineSwitchHook, EMA of all weights, SyncBN) with a Dual CSPNeXt-L and assistant
# supervision. Base: mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py (single CSPNeXt-L: 51.4 box AP on COCO val2017 in
# mmdet's metafile). Not in the CBNetV2 paper: no AP is claimed for this config.
#
# Both CSPNeXt-L keep the recipe's options and its from-scratch Kaiming init (RTMDet-L has no pretrained backbone
# file); the connections start at zero. The lead reuses the assisting stem and stage1 (del_stages=1, stride 4).
# Both branches return stage2..stage4 (out_indices 2, 3, 4: 256/512/1024 wide), so CSPNeXtPAFPN keeps
# in_channels=[256, 512, 1024]; the neck and the head are shared and run on every branch in training (assisting
# losses x0.5, logged assist1_*), on the lead only at test time. EMA averages the composite like any model.
# Measured: 79.32M parameters, all trainable (single RTMDet-L: 52.32M; backbone 53.15M vs 26.14M, of which 1.15M
# composite connections), built with every init_cfg dropped.
_base_ = 'mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

model = dict(
    type='CBRTMDet',
    backbone=dict(
        _delete_=True,
        type='CBNet',
        num_backbones=2,
        composition='DHLC',
        del_stages=1,
        backbone=dict(
            type='CSPNeXt',
            arch='P5',
            expand_ratio=0.5,
            deepen_factor=1,
            widen_factor=1,
            out_indices=(2, 3, 4),
            channel_attention=True,
            norm_cfg=dict(type='SyncBN'),
            act_cfg=dict(type='SiLU', inplace=True))),
    assist_loss_weights=0.5)
