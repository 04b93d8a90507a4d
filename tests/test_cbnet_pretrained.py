"""Pretrained weights: a real torchvision file, an ImageNet classifier's partial checkpoint, bad checkpoints.

Every family's own checkpoint format loading into every branch is checked by ``test_backbone_families.py``.
"""
import logging

import pytest
import torch
import torchvision
from mmdet.registry import MODELS
from mmengine.logging import MMLogger

from cbnet.testing import family
from cbnet.testing.backbones import torch_threads
from cbnet.testing.checkpoint_formats import save_mmpretrain_classifier


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


class CapturedLog(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_log():
    logger = MMLogger.get_current_instance()
    handler = CapturedLog()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def cbnet(inner, k=2, **kw):
    model = MODELS.build(dict(type='CBNet', backbone=inner, num_backbones=k, **kw))
    model.init_weights()
    return model


def test_torchvision_resnet_file_loads_into_every_branch(tmp_path, warnings_log):
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / 'resnet18_torchvision.pth'
    torch.save(tv.state_dict(), path)
    model = cbnet(dict(type='ResNet', depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(path))), k=3)
    ref = tv.state_dict()
    for k, branch in enumerate(model.branches):
        for name, value in branch.state_dict().items():
            assert torch.equal(value, ref[name]), (k, name)
    assert not any('did not provide' in m for m in warnings_log)


def test_mmpretrain_convnext_classifier_file_loads_and_reports_new_norms(tmp_path, warnings_log):
    classifier_backbone = MODELS.build(family('ConvNeXt', out_indices=(3, ), gap_before_final_norm=True))
    model = cbnet(family('ConvNeXt', **save_mmpretrain_classifier(classifier_backbone, str(tmp_path / 'in1k.pth'))))
    lead = model.branches[-1]
    assert torch.equal(lead.stages[1][0].depthwise_conv.weight, classifier_backbone.stages[1][0].depthwise_conv.weight)
    # detection adds output norms 0..2 that an ImageNet classifier does not have: said loudly, by name
    report = [m for m in warnings_log if 'did not provide' in m]
    assert report and 'norm0.weight' in report[0] and 'stages' not in report[0]


def test_checkpoint_matching_nothing_is_an_error(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {'encoder.weight': torch.zeros(3)}}, path)
    with pytest.raises(ValueError, match="loaded none of the .* weights of ResNet.*prefix"):
        cbnet(family('ResNet', init_cfg=dict(type='Pretrained', checkpoint=str(path))))


def test_official_cbnetv2_checkpoint_as_backbone_init_points_to_converter(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save(
        {
            'state_dict': {
                'backbone.cb_modules.0.conv1.weight': torch.zeros(8, 3, 7, 7),
                'backbone.cb_linears.1.0.0.weight': torch.zeros(16, 32, 1, 1)
            }
        }, path)
    with pytest.raises(ValueError, match='official CBNetV2.*cbnetv2_to_cbnet.py'):
        cbnet(family('ResNet', init_cfg=dict(type='Pretrained', checkpoint=str(path))))


def test_random_init_copies_first_branch_into_the_others():
    model = cbnet(family('ResNet'), k=3)
    first = model.branches[0].state_dict()
    for branch in model.branches[1:]:
        for name, value in branch.state_dict().items():
            assert torch.equal(value, first[name]), name
