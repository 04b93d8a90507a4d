# Dual (K=2) version of the toy Grounding DINO: a composite ResNet-18 and assistant supervision; the text encoder
# runs once per batch and its output is shared by both branches. The whole change from the single-backbone base is
# these lines. The language model: see configs/_toy_/grounding_dino_r18_toy.py (CBNET_LANG_MODEL).
_base_ = '../_toy_/grounding_dino_r18_toy.py'

model = dict(
    type='CBGroundingDINO',
    backbone=dict(_delete_=True, type='CBNet', backbone={{_base_.backbone}}, num_backbones=2),
    assist_loss_weights=0.5)
