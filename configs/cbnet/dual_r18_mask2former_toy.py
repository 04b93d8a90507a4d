# Dual (K=2) version of the toy Mask2Former: the toy Mask2Former with a composite ResNet-18 and assistant
# supervision. The whole change from the single-backbone base is these lines.
_base_ = '../_toy_/mask2former_r18_toy.py'

model = dict(
    type='CBMask2Former',
    backbone=dict(_delete_=True, type='CBNet', backbone={{_base_.backbone}}, num_backbones=2),
    assist_loss_weights=0.5)
