"""A trained plain detector as the starting point of its CB detector (cbnet.converters.single_to_cb).

The property: with every branch holding the plain backbone, the composite connections at their zero init and
the plain neck/heads, the CB detector's eval predictions are IDENTICAL to the plain detector's. Checked for a
detector of each kind and backbone family below (tiny models, random non-trivial weights, BN statistics
included), through the library, the CLI and ``load_from`` in a real Runner; other architectures are refused.
"""
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner, load_checkpoint

from cbnet import cbnetify
from cbnet.converters import expand_checkpoint, expand_single_state_dict
from cbnet.engine import CheckpointCompatibilityHook, enable_reliability
from cbnet.models.detectors import CB_DETECTORS
from cbnet.testing import (DUAL_TOY, FASTER_TOY, REPO, TINY_WIDTHS, family, load_tool, make_tiny_toy, mmdet_config,
                           tiny_batch, tiny_detector_cfg, write_tiny_config)
from cbnet.testing.zoo import tiny_zoo_detector, zoo_config_for
from cbnet.utils.configs import strip_pretrained

#: transformer detectors, from mmdet's zoo made tiny by cbnet.testing.zoo and made composite by cbnetify
TRANSFORMER_CASES = ('DINO', 'Mask2Former')
#: (mmdet zoo config, CB detector type, inner backbone family of cbnet.testing, masks)
CASES = {
    'faster_rcnn': ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'CBFasterRCNN', 'ResNet', False),
    'mask_rcnn': ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'CBMaskRCNN', 'ResNet', True),
    'cascade_rcnn': ('cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 'CBCascadeRCNN', 'ResNet', False),
    'retinanet': ('retinanet/retinanet_r50_fpn_1x_coco.py', 'CBRetinaNet', 'ResNet', False),
    'swin_mask_rcnn': ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'CBMaskRCNN', 'Swin', True),
    'convnext_cascade_rcnn': ('cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 'CBCascadeRCNN', 'ConvNeXt', False),
}


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The model's own initialisation (as a Runner gives it), then non-trivial values in every float parameter
    and buffer (BN statistics too), in place. Initialising first matters: mmdet creates some parameters
    uninitialised (DINO's level embeddings: ``torch.Tensor(levels, dims)``) and fills them in ``init_weights``;
    left alone they hold whatever the memory held, NaN under ``torch.use_deterministic_algorithms``."""
    model.init_weights()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if name.endswith('running_var'):
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
            elif value.dim() > 1:
                value.mul_(1 + 0.2 * torch.randn(value.shape, generator=g))
            else:
                value.add_(0.1 * torch.randn(value.shape, generator=g))
    return model


def keep_every_prediction(cfg) -> None:
    """score_thr 0 (detector and every stage): the predictions compared are never empty; 20 per image."""
    test_cfg = cfg.get('test_cfg') or {}
    for node in [test_cfg] + [v for v in test_cfg.values() if isinstance(v, dict)]:
        if 'score_thr' in node:
            node['score_thr'] = 0.0
        if 'max_per_img' in node and node is not test_cfg.get('rpn'):
            node['max_per_img'] = 20


def build_pair(case: str, **backbone_changes):
    rel, cb_type, inner, _ = CASES[case]
    plain_cfg = tiny_detector_cfg(rel, inner=inner)
    cb_cfg = tiny_detector_cfg(rel, cb_type, inner=inner)
    plain_cfg.backbone.update(backbone_changes)
    cb_cfg.backbone.backbone.update(backbone_changes)
    for cfg in (plain_cfg, cb_cfg):
        keep_every_prediction(cfg)
    return randomize_(MODELS.build(plain_cfg)).eval(), MODELS.build(cb_cfg).eval()


def predictions(model, with_mask: bool):
    batch = tiny_batch(model, training=False, with_mask=with_mask, seed=1)
    with torch.no_grad():
        return model.predict(batch['inputs'], batch['data_samples'])


@pytest.mark.parametrize('case', sorted(CASES))
def test_expanded_cb_detector_predicts_exactly_like_the_plain_one(case):
    plain, cb = build_pair(case)
    expanded, report = expand_single_state_dict(cb, plain.state_dict())
    assert list(expanded) == list(cb.state_dict())
    cb.load_state_dict(expanded, strict=True)
    assert report.num_branches == 2 and report.pruned[1]  # the second branch has no stem / first stage
    with_mask = CASES[case][3]
    expected, got = predictions(plain, with_mask), predictions(cb, with_mask)
    for a, b in zip(expected, got):
        assert len(a.pred_instances) > 0
        for key in ('bboxes', 'scores', 'labels') + (('masks', ) if with_mask else ()):
            assert torch.equal(a.pred_instances[key], b.pred_instances[key]), f'{case}: {key} differ'


def _same(expected, got) -> None:
    """Every prediction field (instances, panoptic and semantic maps) of ``got`` equals ``expected``'s."""
    for a, b in zip(expected, got):
        fields = [f for f in ('pred_instances', 'pred_panoptic_seg', 'pred_sem_seg') if f in a]
        assert fields and all(f in b for f in fields)
        for field in fields:
            for key, value in a.get(field).items():
                other = b.get(field).get(key)
                if hasattr(value, 'to_tensor'):  # BitmapMasks
                    value, other = value.to_tensor(torch.float32, 'cpu'), other.to_tensor(torch.float32, 'cpu')
                assert torch.equal(value, other), f'{field}.{key} differ'


@pytest.mark.parametrize('base', TRANSFORMER_CASES)
def test_expanded_transformer_detector_predicts_exactly_like_the_plain_one(base):
    assert f'CB{base}' in CB_DETECTORS
    rel, base_type = zoo_config_for(base)
    plain_cfg = dict(tiny_zoo_detector(mmdet_config(rel).model), type=base_type)
    cb_cfg = cbnetify(Config(dict(model=plain_cfg)), num_backbones=2).model
    plain, cb = randomize_(MODELS.build(ConfigDict(plain_cfg))).eval(), MODELS.build(cb_cfg).eval()
    expanded, report = expand_single_state_dict(cb, plain.state_dict())
    cb.load_state_dict(expanded, strict=True)
    assert report.pruned[1]
    with_mask = base == 'Mask2Former'
    _same(predictions(plain, with_mask), predictions(cb, with_mask))


def test_every_branch_holds_the_plain_backbone_and_connections_are_zero():
    plain, cb = build_pair('faster_rcnn')
    expanded, report = expand_single_state_dict(cb, plain.state_dict())
    source = plain.state_dict()
    for key, value in expanded.items():
        if key.startswith('backbone.branches.'):
            assert torch.equal(value, source['backbone.' + key.split('.', 3)[3]])
        elif key.startswith('backbone.') and key.endswith(('norm.weight', 'norm.bias')):
            assert not value.any(), key  # the BN after each 1x1 conv is what makes a connection zero
        elif not key.startswith('backbone.'):
            assert torch.equal(value, source[key])
    assert report.zero_keys and all(k.startswith('backbone.composition.') for k in report.zero_keys)
    assert report.pruned[1] == ['conv1', 'bn1', 'layer1'] and 0 not in report.pruned


def test_lead_stages_after_its_last_output_are_dropped_and_reported():

    def cfg(cb_type=None):
        c = tiny_detector_cfg(CASES['retinanet'][0], cb_type)
        (c.backbone.backbone if cb_type else c.backbone).out_indices = (0, 1, 2)
        c.neck.in_channels = TINY_WIDTHS[:3]
        keep_every_prediction(c)
        return c

    plain, cb = randomize_(MODELS.build(cfg())).eval(), MODELS.build(cfg('CBRetinaNet')).eval()
    expanded, report = expand_single_state_dict(cb, plain.state_dict())
    cb.load_state_dict(expanded, strict=True)
    assert report.pruned[1] == ['conv1', 'bn1', 'layer1', 'layer4'] and 0 not in report.pruned
    for a, b in zip(predictions(plain, False), predictions(cb, False)):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)


def test_another_architecture_is_refused_with_the_keys():
    _, cb = build_pair('faster_rcnn')
    rel = CASES['faster_rcnn'][0]
    wider = MODELS.build(tiny_detector_cfg(rel, backbone=family('ResNet', base_channels=16)))
    with pytest.raises(ValueError, match=r'another architecture(.|\n)*different shapes \(\d+ in backbone'):
        expand_single_state_dict(cb, wider.state_dict())
    state = OrderedDict(MODELS.build(tiny_detector_cfg(rel)).state_dict())
    state['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(4, state['roi_head.bbox_head.fc_cls.weight'].shape[1])
    with pytest.raises(ValueError, match=r'different shapes \(1 in roi_head: roi_head.bbox_head.fc_cls.weight'):
        expand_single_state_dict(cb, state)
    state = OrderedDict(MODELS.build(tiny_detector_cfg(rel)).state_dict())
    state['roi_head.extra.weight'] = torch.zeros(1)
    del state['neck.fpn_convs.0.conv.bias']
    with pytest.raises(ValueError, match=r'missing in the checkpoint \(1 in neck(.|\n)*no place in the CB detector'):
        expand_single_state_dict(cb, state)
    with pytest.raises(ValueError, match='already of a composite detector'):
        expand_single_state_dict(cb, cb.state_dict())


def _tool_main():
    return load_tool('tools/model_converters/single_to_cb.py').main


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('single_to_cb')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    return dict(
        tmp=tmp,
        plain=write_tiny_config(str(tmp / 'plain.py'), data_root, base=FASTER_TOY, max_iters=1),
        dual=write_tiny_config(str(tmp / 'dual.py'), data_root, base=DUAL_TOY, max_iters=1))


def _plain_checkpoint(toy, bare: bool = False) -> str:
    model = randomize_(MODELS.build(Config.fromfile(toy['plain']).model))
    path = str(toy['tmp'] / ('plain_bare.pth' if bare else 'plain.pth'))
    meta = dict(dataset_meta=dict(classes=('rectangle', 'ellipse', 'triangle')), iter=300)
    torch.save(model.state_dict() if bare else dict(state_dict=model.state_dict(), meta=meta), path)
    return path


@pytest.mark.parametrize('bare', [False, True], ids=['mmengine_file', 'bare_state_dict'])
def test_cli_writes_a_checkpoint_that_loads_strictly(toy, bare, capsys):
    src, dst = _plain_checkpoint(toy, bare), str(toy['tmp'] / f'dual_{bare}.pth')
    assert _tool_main()([src, dst, '--config', toy['dual']]) == 0
    printed = capsys.readouterr().out
    assert 'dropped for branch 1 (pruned' in printed and 'conv1, bn1, layer1' in printed
    assert 'loads strictly' in printed and f'written: {dst}' in printed
    model = MODELS.build(Config.fromfile(toy['dual']).model)
    saved = load_checkpoint(model, dst, strict=True)
    assert saved['meta']['expanded_from'] == src
    assert ('dataset_meta' in saved['meta']) is not bare  # the class names travel with the weights


def test_cli_refuses_another_config_and_writes_nothing(toy, capsys):
    src, dst = _plain_checkpoint(toy), str(toy['tmp'] / 'wrong.pth')
    wrong = write_tiny_config(
        str(toy['tmp'] / 'wrong_cfg.py'),
        str(toy['tmp'] / 'toy') + '/',
        base=DUAL_TOY,
        extra="model = dict(roi_head=dict(bbox_head=dict(num_classes=5)))\n")
    assert _tool_main()([src, dst, '--config', wrong]) == 1
    assert 'another architecture' in capsys.readouterr().err and not osp.exists(dst)


def test_load_from_a_plain_checkpoint_is_expanded_in_a_runner(toy):
    src = _plain_checkpoint(toy)
    cfg = Config.fromfile(toy['dual'])
    cfg.work_dir = str(toy['tmp'] / 'run')
    cfg.experiment_name = 'single_to_cb_load_from'
    cfg.load_from = src
    enable_reliability(cfg)
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()  # what train() and test() do first
    plain = torch.load(src, weights_only=True)['state_dict']
    loaded = runner.model.state_dict()
    for k in range(2):
        assert torch.equal(loaded[f'backbone.branches.{k}.layer2.0.conv1.weight'],
                           plain['backbone.layer2.0.conv1.weight'])
    assert torch.equal(loaded['rpn_head.rpn_cls.weight'], plain['rpn_head.rpn_cls.weight'])
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert f"{src!r} is a plain (single-backbone) detector checkpoint: expanded for the composite backbone" in log


def test_resume_from_a_plain_checkpoint_is_refused(toy):
    plain = torch.load(_plain_checkpoint(toy), weights_only=True)
    model = MODELS.build(Config.fromfile(toy['dual']).model)
    runner = type('R', (), dict(model=model, _load_from='plain.pth', _resume=True))()
    with pytest.raises(ValueError, match='cannot be resumed by a CB detector'):
        CheckpointCompatibilityHook().after_load_checkpoint(runner, plain)


def test_expand_checkpoint_accepts_package_config_names(toy):
    src, dst = _plain_checkpoint(toy), str(toy['tmp'] / 'named.pth')
    report = expand_checkpoint(src, dst, 'cbnet::cbnet/dual_r18_faster_rcnn_toy.py')
    assert report.into_branches[0] > report.into_branches[1] > 0


def test_the_zoo_faster_rcnn_r50_expands_into_the_dual_r50_config(tmp_path):
    """The README's example: mmdet's faster-rcnn_r50_fpn_1x_coco (its architecture; an mmdet 2.x zoo file holds
    ``state_dict`` and ``meta.CLASSES``) -> configs/cbnet/dual_r50_faster_rcnn.py."""
    plain_cfg = mmdet_config('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    strip_pretrained(plain_cfg)  # no download: the architecture is what matters
    plain = MODELS.build(plain_cfg)
    src, dst = str(tmp_path / 'faster_rcnn_r50_fpn_1x_coco.pth'), str(tmp_path / 'dual_r50_faster_rcnn.pth')
    torch.save(dict(state_dict=plain.state_dict(), meta=dict(CLASSES=('person', 'bicycle'))), src)
    report = expand_checkpoint(src, dst, osp.join(REPO, 'configs', 'cbnet', 'dual_r50_faster_rcnn.py'))
    assert report.pruned[1] == ['conv1', 'bn1', 'layer1']
    assert torch.load(dst, weights_only=True)['meta']['dataset_meta'] == dict(classes=('person', 'bicycle'))
