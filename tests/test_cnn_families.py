"""mmdet's one-stage CNN backbone families (CSPNeXt, CSPDarknet, Darknet, MobileNetV2, EfficientNet, SSDVGG,
HourglassNet): their zoo configs through ``tools/cbnetify.py``, end to end; their stage layouts at full size
against what the zoo's necks read; what the composite refuses, with what to change.

The checks every family gets (zero init with its real checkpoint file, pruning, frozen stages, norm modes,
with_cp, K = 2/3, every composition) are generated in ``tests/test_backbone_families.py``.
"""
import copy
import os.path as osp
import re

import pytest
import torch
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub

from cbnet.models.backbones import CBNet
from cbnet.models.backbones.adapters import get_adapter
from cbnet.testing import family, images, load_tool, mmdet_config, shrink_detector, tiny_batch
from cbnet.testing.backbones import torch_threads
from cbnet.utils.configs import strip_pretrained

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: zoo config -> the family's own size arguments that make its backbone tiny (type and other options kept)
ZOO = {
    'rtmdet/rtmdet_l_8xb32-300e_coco.py':
    dict(deepen_factor=0.33, widen_factor=0.125),  # CSPNeXt
    'yolox/yolox_s_8xb8-300e_coco.py':
    dict(deepen_factor=0.33, widen_factor=0.125),  # CSPDarknet
    'yolo/yolov3_d53_8xb8-320-273e_coco.py': {},  # Darknet-53 has no size argument: full size
    'yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py':
    dict(widen_factor=0.25),
    'efficientnet/retinanet_effb3_fpn_8xb4-crop896-1x_coco.py':
    dict(arch='b0'),
    'ssd/ssd300_coco.py':
    dict(depth=11, out_feature_indices=(14, 24)),  # VGG-11's conv4 and fc7 (VGG-16: 22, 34)
    'cornernet/cornernet_hourglass104_8xb6-210e-mstest_coco.py':
    dict(  # two stacks as in Hourglass-104
        downsample_times=2,
        stage_channels=(16, 16, 32),
        stage_blocks=(1, 1, 1),
        feat_channel=16),
}


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


def run_cli(src: str, out: str) -> Config:
    """``python tools/cbnetify.py SRC -o OUT``, in this process; the written config, loaded."""
    cli = load_tool('tools/cbnetify.py')
    assert cli.main([src, '-o', out]) == 0
    return Config.fromfile(out)


def unscoped(node):
    if isinstance(node, dict):
        return {k: unscoped(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(unscoped(v) for v in node)
    return node


def cpu_model(model: dict) -> dict:
    """No checkpoint download, no SyncBN, no batch-level random resizing: what a CPU test can build and run."""
    model = copy.deepcopy(model)
    strip_pretrained(model)

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') in ('SyncBN', 'MMSyncBN'):
                node['type'] = 'BN'
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(model)
    if isinstance(model.get('data_preprocessor'), dict):
        model['data_preprocessor']['batch_augments'] = None
    return model


def consumer_of(model: dict) -> dict:
    """What reads the backbone: the neck, else the head."""
    neck = model.get('neck')
    return (neck[0] if isinstance(neck, list) else neck) if neck else model['bbox_head']


def fit_in_channels(consumer: dict, widths) -> None:
    given = consumer['in_channels']
    if isinstance(given, int):
        consumer['in_channels'] = widths[-1]
        return
    deepest_first = len(given) > 1 and list(given) == sorted(given, reverse=True)  # YOLOV3Neck
    consumer['in_channels'] = type(given)(reversed(widths) if deepest_first else widths)


def tiny(model: dict, size_args: dict) -> ConfigDict:
    """The CB detector with its inner backbone made tiny by the family's own arguments, the neck fitted to the
    tiny widths, narrow neck/heads, few samples."""
    model = cpu_model(model)
    inner = model['backbone']['backbone']
    inner.update(size_args)
    single = MODELS.build(copy.deepcopy(inner))
    single.eval()
    with torch.no_grad():
        widths = [int(f.shape[1]) for f in single(torch.zeros(1, 3, 64, 64))]
    shrink_detector(model)
    consumer = consumer_of(model)
    fit_in_channels(consumer, widths)
    if consumer['type'] == 'SSDNeck':  # its last levels (3x3 convs, no padding) assume >= 300 px images
        consumer['level_paddings'] = (1, ) * len(consumer['level_paddings'])
    return ConfigDict(model)


@pytest.mark.parametrize('rel', sorted(ZOO), ids=[osp.basename(r)[:-3] for r in sorted(ZOO)])
def test_zoo_config_through_the_cli_trains_and_predicts(rel, tmp_path):
    source = mmdet_config(rel)
    cfg = run_cli('mmdet::' + rel, str(tmp_path / 'cb.py'))
    assert cfg.model.type == 'CB' + source.model.type and cfg.model.backbone.type == 'CBNet'
    assert unscoped(cfg.model.backbone.backbone.to_dict()) == unscoped(source.model.backbone.to_dict())

    model = MODELS.build(tiny(cfg.model.to_dict(), ZOO[rel]))
    if isinstance(model.bbox_head, SSDHead) and not hasattr(model.bbox_head, 'loss_cls'):
        model.bbox_head.loss_cls = None  # mmdet 3.3's predict reads it; SSDHead never sets it (plain SSD too)
    train_step_and_predict(model)


def train_step_and_predict(model) -> None:
    """One training step of a tiny CB detector (lead losses, the same keys for the assisting branch, a finite
    total, a gradient for every trainable parameter), then predict on two images."""
    model.init_weights()
    model.train()
    MessageHub.get_current_instance().update_info('epoch', 0)  # YOLOX/RTMDet heads read it; a Runner sets it
    losses = model(**tiny_batch(model), mode='loss')
    lead = {k for k in losses if not k.startswith('assist')}
    assist = {k[len('assist1_'):] for k in losses if k.startswith('assist1_')}
    assert lead and assist == lead, sorted(losses)
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v) for k, v in losses.items()
                if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead, f'parameters without gradient: {dead}'

    model.eval()
    with torch.no_grad():
        results = model(**tiny_batch(model, training=False), mode='predict')
    assert len(results) == 2 and all(r.pred_instances.bboxes.shape[-1] == 4 for r in results)


@pytest.mark.parametrize('rel', sorted(ZOO), ids=[osp.basename(r)[:-3] for r in sorted(ZOO)])
def test_full_size_composite_returns_what_the_zoo_neck_reads(rel):
    """At full size, the stages CBNet returns (the family's out_indices, mapped to composite stages) have the
    widths the zoo config's neck was written for."""
    model = cpu_model(mmdet_config(rel).model.to_dict())
    backbone = MODELS.build(dict(type='CBNet', backbone=model['backbone']))
    expected = copy.deepcopy(consumer_of(model))
    widths = [backbone.stage_out_channels[i] for i in backbone.out_indices]
    fit_in_channels(expected, widths)
    assert expected['in_channels'] == consumer_of(model)['in_channels'], (widths, backbone.out_indices)


def test_ssd_vgg16_stages_are_cut_at_its_max_pools():
    vgg = MODELS.build(cpu_model(mmdet_config('ssd/ssd300_coco.py').model.to_dict())['backbone'])
    adapter = get_adapter(vgg)
    assert adapter.stem_modules(vgg) == ['features.0', 'features.2']  # conv1_1, conv1_2: full resolution
    assert adapter.stage_modules(vgg, 0) == ['features.5', 'features.7']  # pool1, conv2_1, conv2_2
    assert adapter.stage_modules(vgg, 2) == ['features.17', 'features.19', 'features.21']  # pool3, conv4_1..3
    assert adapter.stage_modules(vgg, 3) == ['features.24', 'features.26', 'features.28']  # pool4, conv5_1..3
    assert adapter.stage_modules(vgg, 4) == ['features.31', 'features.33']  # pool5 (stride 1), fc6, fc7
    assert adapter.num_stages(vgg) == 5 and adapter.total_stride(vgg) == 16
    assert tuple(adapter.out_indices(vgg)) == (2, 4)  # SSD's (22, 34): the ReLUs of conv4_3 and fc7


@pytest.mark.parametrize('name, overrides, match', [
    ('CSPNeXt', dict(out_indices=(0, 2, 3, 4)), r'include 0, the stem \(stem\).*stage1, stage2, stage3, stage4'),
    ('CSPDarknet', dict(out_indices=(0, 1)), r'include 0, the stem \(stem\)'),
    ('Darknet', dict(out_indices=(0, 4, 5)), r'the stem \(conv1\).*conv_res_block1'),
    ('EfficientNet', dict(out_indices=(0, 3)), r'the stem \(layers.0\).*drop 0 from out_indices'),
    ('SSDVGG', dict(out_feature_indices=(13, 24)), r'\[13\] are not\. Stage ends of this VGG: \[4, 9, 14, 19, 24\]'),
])
def test_outputs_the_composite_cannot_feed_are_refused_with_what_to_change(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='CBNet', backbone=family(name, **overrides)))
    single = MODELS.build(family(name, **overrides))  # the family itself accepts them: the refusal is CBNet's
    single.eval()
    with torch.no_grad():
        outputs = single(images(size=64))
    assert len(outputs) == len(overrides.get('out_indices', overrides.get('out_feature_indices')))


def test_dual_rtmdet_l_config_builds_as_its_header_says():
    path = osp.join(ROOT, 'configs', 'cbnet', 'dual_cspnext_l_rtmdet.py')
    cfg = Config.fromfile(path)
    base = mmdet_config('rtmdet/rtmdet_l_8xb32-300e_coco.py')
    assert [h.type for h in cfg.custom_hooks] == [h.type for h in base.custom_hooks]  # EMA, pipeline switch
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg'):  # inherited through mmdet::
        assert unscoped(cfg[key]) == unscoped(base[key]), key
    model = MODELS.build(ConfigDict(cpu_model(cfg.model.to_dict())))
    backbone = model.backbone
    assert isinstance(backbone, CBNet) and backbone.num_backbones == 2 and backbone.del_stages == 1
    assert [backbone.stage_out_channels[i] for i in backbone.out_indices] == list(cfg.model.neck.in_channels)
    header = open(path).read().split('\n_base_ =')[0]
    measured = float(re.search(r'Measured: ([\d.]+)M parameters', header).group(1))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == measured

    model.train()
    MessageHub.get_current_instance().update_info('epoch', 0)
    losses = model(**tiny_batch(model, batch_size=1), mode='loss')
    assert {'loss_cls', 'loss_bbox', 'assist1_loss_cls', 'assist1_loss_bbox'} <= set(losses)
