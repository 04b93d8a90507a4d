# Triple (K=3) version of the demo model: Dual vs Triple is a number.
_base_ = './dual_r18_faster_rcnn_toy.py'

model = dict(backbone=dict(num_backbones=3))
