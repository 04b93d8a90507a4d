# Mask2Former (instance segmentation), Dual-Swin-S (ImageNet-1k, 224 px), 50 epochs LSJ: mmdet's Mask2Former
# Swin-S COCO instance recipe (100 queries, deformable pixel decoder of 6 layers, 9 masked-attention
# decoder layers, 12544 sampled points per mask; AdamW lr 1e-4 per 16 images, wd 0.05, backbone lr x0.1, no decay
# on norms and embeddings, gradient clip 0.01; 368750 iterations, steps at 327778 / 355092; large-scale jitter
# at 1024x1024) with a Dual-Swin-S and assistant supervision.
# Base: mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py (single Swin-S: 49.3 box / 46.1 mask
# AP on COCO val2017 in mmdet's metafile; the closest mmdet Mask2Former Swin instance recipe). Not in the CBNetV2
# paper: no AP is claimed for this config.
#
# CBMask2Former: no neck; every branch's four stage outputs go through the same pixel decoder, transformer
# decoder and losses; the assisting branch's losses x0.5 (logged assist1_*). The Swin-S checkpoint is loaded once
# (original Swin layout, converted) and copied into both branches.
# Measured: 118.22M parameters (single Swin-S Mask2Former: 68.74M), built with every init_cfg dropped.
_base_ = 'mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

num_backbones = 2
depths = [2, 2, 18, 2]
model = dict(
    type='CBMask2Former',
    # The mmdet SwinTransformer arguments of the base stay (embed_dims=96, depths [2, 2, 18, 2], window 7, drop
    # path 0.3, convert_weights=True, out_indices (0, 1, 2, 3), the 1k init_cfg).
    backbone=dict(
        type='CBSwinTransformer',  # official CBNetV2 Swin composition (1x1 conv + bias, identity on equal widths)
        num_backbones=num_backbones,
        cb_del_stages=1,  # official meaning: the lead has no patch embedding
        cb_zero_init=True),
    assist_loss_weights=0.5)

# The recipe's parameter groups with the composite backbone's names: mmdet's keys name the plain Swin's
# modules (backbone.stages.0.blocks.0.norm...), which are backbone.branches.<k>.stages.0.blocks.0.norm... here.
# The composite connections are new and train at the full lr.
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
backbone_embed_multi = dict(lr_mult=0.1, decay_mult=0.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.composition': dict(lr_mult=1.0, decay_mult=1.0),
    'absolute_pos_embed': backbone_embed_multi,
    'relative_position_bias_table': backbone_embed_multi,
    'query_embed': embed_multi,
    'query_feat': embed_multi,
    'level_embed': embed_multi
}
# every branch's norms: its patch embedding (the first branch only), blocks, downsampling layers and outputs
branch_norms = ['patch_embed.norm', 'norm'] + [
    f'stages.{stage_id}.blocks.{block_id}.norm' for stage_id, num_blocks in enumerate(depths)
    for block_id in range(num_blocks)
] + [f'stages.{stage_id}.downsample.norm' for stage_id in range(len(depths) - 1)]
custom_keys.update({
    f'backbone.branches.{branch}.{norm}': backbone_norm_multi
    for branch in range(num_backbones)
    for norm in branch_norms
})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(_delete_=True, **custom_keys), norm_decay_mult=0.0))
