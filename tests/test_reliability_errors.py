"""Misconfigurations fail fast with a message that says what to change (reliability, part 1: bad input).

Errors already raised by the composite backbone and detectors (num_backbones < 2, unsupported family,
unknown composition, cb_inplanes, CB detector/plain backbone and vice versa) are tested next to them in
test_cbnet_backbones.py and test_cb_detectors.py; this file covers the rest.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

import cbnet  # noqa: F401
from cbnet.engine import CheckpointCompatibilityHook, enable_reliability
from cbnet.testing import FASTER_TOY, REPO, make_tiny_toy, write_tiny_config
from cbnet.testing.detectors import mmdet_config
from cbnet.utils.checkpoint_files import CheckpointReadError, checkpoint_problem
from cbnet.utils.compat_checks import check_neck_matches_backbone, parameter_coverage, registry_hint

DUAL_TOY = osp.join(REPO, 'configs', 'cbnet', 'dual_r18_faster_rcnn_toy.py')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('errors')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    return dict(
        tmp=tmp,
        data_root=data_root,
        dual=write_tiny_config(str(tmp / 'dual.py'), data_root, base=DUAL_TOY, max_iters=1),
        plain=write_tiny_config(str(tmp / 'plain.py'), data_root, base=FASTER_TOY, max_iters=1))


def _model(cfg_file: str, **model_changes):
    cfg = Config.fromfile(cfg_file)
    cfg.merge_from_dict({f'model.{k}': v for k, v in model_changes.items()})
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def dual_model(tiny):
    return _model(tiny['dual'])


# -- neck in_channels vs the composite backbone's outputs -------------------------------------------------
def test_matching_neck_passes(dual_model):
    check_neck_matches_backbone(dual_model.backbone, dual_model.neck)


def test_neck_channels_mismatch_says_the_right_numbers(tiny):
    with pytest.raises(ValueError) as e:  # the CB detector checks when it is built
        _model(tiny['dual'], **{'neck.in_channels': [64, 128, 256, 512]})  # ResNet-18 at full width
    msg = str(e.value)
    assert 'in_channels=[64, 128, 256, 512]' in msg and 'in_channels=[32, 64, 128, 256]' in msg
    assert 'out_indices=(0, 1, 2, 3)' in msg


def test_out_indices_fewer_than_neck_inputs(tiny):
    model = _model(tiny['dual'])
    model.backbone.out_indices = (1, 2, 3)
    with pytest.raises(ValueError) as e:
        check_neck_matches_backbone(model.backbone, model.neck)
    msg = str(e.value)
    assert '4 inputs but the backbone returns 3 feature maps' in msg
    assert 'in_channels=[64, 128, 256]' in msg  # the neck that would fit these out_indices


def test_hook_checks_the_neck_before_the_run(tiny):
    model = _model(tiny['dual'])
    model.neck.in_channels = [32, 64, 128]  # e.g. a model built outside the CB detectors' own check
    with pytest.raises(ValueError, match=r'in_channels=\[32, 64, 128, 256\]'):
        CheckpointCompatibilityHook().before_run(SimpleNamespace(model=model))


# -- checkpoints that would leave the backbone random under load_from (non-strict) ------------------------
def _after_load(model, state_dict, source='ckpt.pth'):
    runner = SimpleNamespace(model=model, _load_from=source)
    CheckpointCompatibilityHook().after_load_checkpoint(runner, dict(state_dict=state_dict, meta={}))


def test_own_checkpoint_passes(dual_model):
    _after_load(dual_model, {f'module.{k}': v for k, v in dual_model.state_dict().items()})


def test_official_cbnetv2_checkpoint_points_to_the_converter(dual_model):
    official = {
        'backbone.cb_modules.0.conv1.weight': torch.zeros(32, 3, 7, 7),
        'backbone.cb_linears.0.0.0.weight': torch.zeros(64, 128, 1, 1),
        'neck.lateral_convs.0.conv.weight': torch.zeros(64, 32, 1, 1)
    }
    with pytest.raises(ValueError) as e:
        _after_load(dual_model, official, source='cbnetv2_official.pth')
    msg = str(e.value)
    assert "'cbnetv2_official.pth'" in msg and 'official CBNetV2' in msg
    assert 'tools/model_converters/cbnetv2_to_cbnet.py' in msg


def test_single_backbone_checkpoint_is_expanded_in_place(tiny, dual_model):
    plain = _model(tiny['plain']).state_dict()
    checkpoint = dict(state_dict=plain, meta={})
    CheckpointCompatibilityHook().after_load_checkpoint(
        SimpleNamespace(model=dual_model, _load_from='p.pth'), checkpoint)
    assert list(checkpoint['state_dict']) == list(dual_model.state_dict())  # what mmengine then loads
    assert torch.equal(checkpoint['state_dict']['backbone.branches.1.layer3.0.conv1.weight'],
                       plain['backbone.layer3.0.conv1.weight'])


def test_single_backbone_checkpoint_of_another_architecture_is_refused(tiny, dual_model):
    wider = _model(tiny['plain'], **{'roi_head.bbox_head.num_classes': 7}).state_dict()
    with pytest.raises(ValueError) as e:
        _after_load(dual_model, wider)
    msg = str(e.value)
    assert 'another architecture' in msg and 'roi_head.bbox_head.fc_cls.weight' in msg


def test_heads_only_loading_can_be_allowed_explicitly(tiny, dual_model):
    plain = _model(tiny['plain']).state_dict()
    runner = SimpleNamespace(model=dual_model, _load_from='heads.pth')
    checkpoint = dict(state_dict=plain)
    CheckpointCompatibilityHook(require_backbone=False).after_load_checkpoint(runner, checkpoint)
    assert checkpoint['state_dict'] is plain  # not expanded: the backbone comes from its init_cfg


def test_enable_reliability_keeps_user_choices():
    cfg = Config(
        dict(
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5)),
            custom_hooks=[dict(type='CheckpointCompatibilityHook', require_backbone=False)]))
    assert enable_reliability(cfg) == ['AtomicCheckpointHook', 'NonFiniteLossHook']
    assert cfg.default_hooks.checkpoint == dict(type='AtomicCheckpointHook', interval=5)
    assert cfg.custom_hooks[0].require_backbone is False and len(cfg.custom_hooks) == 2
    assert enable_reliability(cfg) == []  # idempotent
    s3 = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', backend_args=dict(backend='petrel')))))
    assert enable_reliability(s3) == ['CheckpointCompatibilityHook', 'NonFiniteLossHook']
    assert s3.default_hooks.checkpoint.type == 'CheckpointHook'  # another storage backend stays as given
    evaluation = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook'))))
    assert enable_reliability(evaluation, training=False) == ['CheckpointCompatibilityHook']


def test_backbone_only_checkpoint_under_load_from(dual_model):
    imagenet_like = {'conv1.weight': torch.zeros(32, 3, 7, 7), 'fc.weight': torch.zeros(10, 256)}
    with pytest.raises(ValueError, match='not a detector checkpoint'):
        _after_load(dual_model, imagenet_like)


# -- checkpoints of another family or depth: a few tensors match by name and shape, most do not ---------------
def _yolox_dual_state() -> dict:
    """A Dual CSPDarknet YOLOX (another backbone family, neck and head than the toy Faster R-CNN)."""
    cfg = mmdet_config('yolox/yolox_tiny_8xb8-300e_coco.py').model.to_dict()
    inner = dict(cfg['backbone'], widen_factor=0.125, init_cfg=None)
    cfg.update(type='CBYOLOX', backbone=dict(type='CBNet', backbone=inner, num_backbones=2))
    cfg['neck'].update(in_channels=[32, 64, 128], out_channels=32)
    cfg['bbox_head'].update(in_channels=32, feat_channels=32)
    return MODELS.build(cfg).state_dict()


@pytest.fixture(scope='module')
def wrong_checkpoints(tiny):
    """The two wrong files a new user gives the Dual toy detector: another family, another depth."""
    deeper = _model(tiny['dual'], **{'backbone.backbone.depth': 50, 'neck.in_channels': [128, 256, 512, 1024]})
    states = dict(family=_yolox_dual_state(), depth=deeper.state_dict())
    paths = {}
    for name, state in states.items():
        paths[name] = str(tiny['tmp'] / f'{name}.pth')
        torch.save(dict(state_dict=state, meta=dict()), paths[name])
    return states, paths


def test_matching_buffers_do_not_make_a_checkpoint_fit(dual_model, wrong_checkpoints):
    """Scalar BN buffers (num_batches_tracked) match between any two families; only parameters count."""
    states, _ = wrong_checkpoints
    model_buffers = {k for k, _ in dual_model.named_buffers()}
    shared = [
        k for k, v in states['family'].items() if k in model_buffers and v.shape == dual_model.state_dict()[k].shape
    ]
    assert shared, 'the case needs buffers that match by name and shape'
    coverage = parameter_coverage(dual_model, states['family'])
    assert coverage['backbone'].loaded_tensors == 0 and coverage['neck and heads'].fraction < 0.2


def test_checkpoint_of_another_family_is_refused(dual_model, wrong_checkpoints):
    states, _ = wrong_checkpoints
    with pytest.raises(ValueError) as e:
        _after_load(dual_model, states['family'], source='yolox.pth')
    msg = str(e.value)
    assert "'yolox.pth' provides only 0 of the" in msg and 'composite backbone' in msg
    assert 'another architecture' in msg and 'not in the checkpoint' in msg


def test_checkpoint_of_another_depth_is_refused_with_the_shapes(dual_model, wrong_checkpoints):
    states, _ = wrong_checkpoints
    with pytest.raises(ValueError) as e:
        _after_load(dual_model, states['depth'], source='r50.pth')
    msg = str(e.value)
    assert 'another depth or width' in msg
    # one line per key that does not fit, with both shapes
    assert 'backbone.branches.0.layer1.0.conv1.weight: checkpoint (32, 32, 1, 1), model (32, 32, 3, 3)' in msg


def test_checkpoint_with_other_heads_is_refused_unless_asked(dual_model, wrong_checkpoints):
    """The backbone of the file fits, the neck and heads do not: refused, or only the backbone taken."""
    states, _ = wrong_checkpoints
    own = dual_model.state_dict()
    mixed = {k: v for k, v in own.items() if k.startswith('backbone.')}
    mixed.update({k: v for k, v in states['family'].items() if not k.startswith('backbone.')})
    with pytest.raises(ValueError, match=r'random heads(.|\n)*require_heads=False'):
        _after_load(dual_model, mixed)
    runner = SimpleNamespace(model=dual_model, _load_from='backbone_only.pth')
    CheckpointCompatibilityHook(require_heads=False).after_load_checkpoint(runner, dict(state_dict=mixed))


def test_fine_tuning_from_another_number_of_classes_is_accepted(tiny, dual_model):
    """Only the classifier differs: most of the heads' values still load, as mmdet users fine-tune."""
    other_classes = _model(tiny['dual'], **{'roi_head.bbox_head.num_classes': 7}).state_dict()
    _after_load(dual_model, other_classes)


def test_test_time_augmentation_model_is_checked_as_its_detector(dual_model, wrong_checkpoints):
    """``tools/test.py --tta`` wraps the detector; mmengine loads the checkpoint into the detector inside."""
    tta = MODELS.build(
        dict(type='DetTTAModelWithMasks', module=dual_model, tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5))))
    _after_load(tta, dual_model.state_dict())
    with pytest.raises(ValueError, match='another depth or width'):
        _after_load(tta, wrong_checkpoints[0]['depth'])


@pytest.mark.slow
@pytest.mark.parametrize('tool, case', [('test.py', 'family'), ('train.py', 'depth')])
def test_tools_refuse_wrong_checkpoints_before_running(tiny, wrong_checkpoints, tool, case):
    """``tools/test.py CONFIG CKPT`` and ``tools/train.py`` with ``load_from`` stop before any step."""
    _, paths = wrong_checkpoints
    work_dir = str(tiny['tmp'] / f'wrong_{tool}_{case}')
    args = [sys.executable, osp.join(REPO, 'tools', tool), tiny['dual']]
    args += [paths[case]] if tool == 'test.py' else ['--cfg-options', f'load_from={paths[case]}']
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        args + ['--work-dir', work_dir], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"{paths[case]!r} provides only" in out and 'Use the checkpoint trained with this config' in out
    assert 'bbox_mAP' not in out and 'Epoch(train)' not in out and 'Iter(train)' not in out


def test_runner_refuses_official_checkpoint_before_training(tiny):
    """Wired through a real Runner: load_from an official checkpoint stops before the first iteration."""
    model = _model(tiny['dual'])
    official = {k.replace('backbone.branches.', 'backbone.cb_modules.'): v for k, v in model.state_dict().items()}
    ckpt = str(tiny['tmp'] / 'official.pth')
    torch.save(dict(state_dict=official, meta=dict()), ckpt)
    cfg = Config.fromfile(tiny['dual'])
    cfg.work_dir = str(tiny['tmp'] / 'official_run')
    cfg.experiment_name = 'reliability_official'
    cfg.load_from = ckpt
    enable_reliability(cfg)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='cbnetv2_to_cbnet.py'):
        runner.train()
    assert runner.iter == 0


# -- unreadable checkpoint files -----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def checkpoint_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'good.pth')
    torch.save(dict(state_dict={'w': torch.randn(64, 64)}, meta=dict(iter=2)), path)
    return path


def _truncate(src: str, dst: str, fraction: float = 0.5) -> str:
    data = open(src, 'rb').read()
    with open(dst, 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    return dst


def test_complete_checkpoint_is_readable(checkpoint_file):
    assert checkpoint_problem(checkpoint_file) is None
    assert CheckpointLoader.load_checkpoint(checkpoint_file)['meta']['iter'] == 2


@pytest.mark.parametrize('fraction', [0.1, 0.5, 0.99])
def test_truncated_checkpoint_names_the_file(checkpoint_file, tmp_path, fraction):
    bad = _truncate(checkpoint_file, str(tmp_path / 'iter_4.pth'), fraction)
    with pytest.raises(CheckpointReadError) as e:
        CheckpointLoader.load_checkpoint(bad)
    msg = str(e.value)
    assert bad in msg and 'truncated' in msg and '--resume' in msg


@pytest.mark.parametrize('content, reason', [(b'', 'empty'), (b'<html>404</html>', 'not a PyTorch checkpoint')])
def test_corrupt_checkpoint_names_the_file(tmp_path, content, reason):
    bad = str(tmp_path / 'model.pth')
    open(bad, 'wb').write(content)
    with pytest.raises(CheckpointReadError) as e:
        CheckpointLoader.load_checkpoint(bad)
    assert bad in str(e.value) and reason in str(e.value)


def test_tools_test_with_truncated_checkpoint(tiny, checkpoint_file):
    """``tools/test.py CONFIG CKPT`` path (Runner.test -> load_from) gives the same clear error."""
    bad = _truncate(checkpoint_file, str(tiny['tmp'] / 'truncated.pth'))
    cfg = Config.fromfile(tiny['dual'])
    cfg.work_dir = str(tiny['tmp'] / 'test_truncated')
    cfg.experiment_name = 'reliability_truncated'
    cfg.load_from = bad
    enable_reliability(cfg, training=False)
    with pytest.raises(CheckpointReadError, match='truncated'):
        Runner.from_cfg(cfg).test()


# -- "X is not in the mmdet::model registry" ----------------------------------------------------------------
def test_registry_keyerror_gets_the_custom_imports_hint():
    with pytest.raises(KeyError) as e:  # the message users see when cbnet is not imported
        MODELS.build(dict(type='CBFasterRCNNN'))
    without_cbnet = [name for name in MODELS.module_dict if name != 'CBNet']
    hint = registry_hint(e.value, registry_names=without_cbnet)
    assert "custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)" in hint
    assert hint.startswith('Did you mean: CBFasterRCNN')
    assert registry_hint(KeyError('img_path')) is None  # other KeyErrors are left alone


@pytest.mark.slow
def test_tools_train_explains_registry_errors(tiny):
    """A config without custom_imports and with a misspelled type: a warning, then an exit with the fix."""
    cfg = str(tiny['tmp'] / 'typo.py')
    with open(cfg, 'w') as f:
        f.write(f"_base_ = {tiny['dual']!r}\ncustom_imports = dict(_delete_=True, imports=[])\n"
                "model = dict(type='CBFasterRCN')\n")
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable,
         osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir',
         str(tiny['tmp'] / 'typo_run')],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert 'CBFasterRCN is not in the mmdet::model registry' in out
    assert 'Did you mean: CBFasterRCNN' in out and "imports=['cbnet']" in out
    assert 'This config has no custom_imports of cbnet' in out
    assert 'Traceback' not in out


# -- images that fail to decode (mmdet/mmcv behaviour, documented in README.md, "When things go wrong") ----------
def _toy_copy(tiny, tmp_path):
    root = str(tmp_path / 'toy')
    shutil.copytree(tiny['data_root'], root)
    return root + '/', sorted(os.listdir(osp.join(root, 'train')))


def _train_dataset(cfg_file, data_root, **load_args):
    cfg = Config.fromfile(cfg_file).train_dataloader.dataset
    cfg.data_root = data_root
    cfg.pipeline[0].update(load_args)
    return DATASETS.build(cfg)


def _index_of(dataset, image):
    return next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'].endswith(image))


def test_undecodable_image_stops_with_its_path(tiny, tmp_path):
    root, images = _toy_copy(tiny, tmp_path)
    with open(osp.join(root, 'train', images[0]), 'wb') as f:
        f.write(b'\xff\xd8 not really a jpeg')
    for load_args in ({}, dict(ignore_empty=True)):  # ignore_empty does not cover undecodable files
        dataset = _train_dataset(tiny['dual'], root, **load_args)
        with pytest.raises(AssertionError, match=f'failed to load image: .*{images[0]}'):
            dataset[_index_of(dataset, images[0])]


def test_missing_image_skipped_only_with_ignore_empty(tiny, tmp_path):
    root, images = _toy_copy(tiny, tmp_path)
    os.remove(osp.join(root, 'train', images[0]))
    dataset = _train_dataset(tiny['dual'], root)
    with pytest.raises(FileNotFoundError):
        dataset[_index_of(dataset, images[0])]
    dataset = _train_dataset(tiny['dual'], root, ignore_empty=True)
    sample = dataset[_index_of(dataset, images[0])]  # training: another image is fetched instead
    assert not sample['data_samples'].img_path.endswith(images[0])
