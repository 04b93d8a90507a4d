# CBNetV2 paper, ablation of the number of backbones: Faster R-CNN with a Triple-ResNet50 (TB-R50) FPN, 1x.
# Same recipe as dual_r50_faster_rcnn.py with K=3 (two assisting backbones, each supervised with weight 0.5, all
# RoI heads trained on the lead's proposals). The official code hard-codes K=2, so there is no official config or
# checkpoint for this one.
_base_ = './dual_r50_faster_rcnn.py'

model = dict(backbone=dict(num_backbones=3), assist_loss_weights=[0.5, 0.5])
