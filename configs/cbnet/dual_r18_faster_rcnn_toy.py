# The demo model (`make demo`): the toy Faster R-CNN with a Dual (K=2) composite ResNet-18 and assistant
# supervision. The whole change from the single-backbone base is these lines.
_base_ = '../_toy_/faster_rcnn_r18_toy.py'

model = dict(
    type='CBFasterRCNN',
    backbone=dict(_delete_=True, type='CBNet', backbone={{_base_.backbone}}, num_backbones=2),
    assist_loss_weights=0.5)
