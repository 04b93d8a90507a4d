"""Layer-wise lr decay for composite ConvNeXt: every branch's parameters get their stage's lr."""
import torch.nn as nn
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from cbnet.engine.layer_decay import inner_backbone_name
from cbnet.testing import family


class Wrapper(nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(4, 4)


def test_names_map_to_the_inner_backbone():
    assert inner_backbone_name('backbone.branches.1.stages.2.0.gamma') == 'backbone.stages.2.0.gamma'
    assert inner_backbone_name('backbone.composition.connections.0.into2_from3.conv.weight') == \
        'backbone.stages.2.0.cb_connection.conv.weight'
    assert inner_backbone_name('neck.lateral_convs.0.conv.weight') == 'neck.lateral_convs.0.conv.weight'


def test_composite_convnext_gets_the_same_lr_per_stage_in_every_branch():
    model = Wrapper(MODELS.build(dict(type='CBNet', backbone=family('ConvNeXt'), num_backbones=3)))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='CBLearningRateDecayOptimizerConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
            paramwise_cfg=dict(decay_rate=0.5, decay_type='layer_wise', num_layers=6)))
    optimizer = constructor(model).optimizer
    lr_of = {id(p): g['lr'] for g in optimizer.param_groups for p in g['params']}
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)
    branches = model.backbone.branches
    stage1 = [lr_of[id(b.stages[1][0].depthwise_conv.weight)] for b in branches]
    stage3 = [lr_of[id(b.stages[3][0].depthwise_conv.weight)] for b in branches]
    assert len(set(stage1)) == 1 and len(set(stage3)) == 1 and stage1[0] < stage3[0]
    connection = model.backbone.composition.connections[1]['into1_from1'].conv.weight
    assert lr_of[id(connection)] == stage1[0]
    assert lr_of[id(model.head.weight)] == 1.0  # outside the backbone: full lr
