"""Weight averaging with CB detectors on the toy data: the SWA stage (cyclic lr, SWAHook, average_checkpoints.py,
the SWA paper configs) and mmengine's EMAHook (every branch and connection averaged; what tools/test.py and the
converters read)."""
import math
import os
import os.path as osp
import sys
from collections import OrderedDict

import pytest
import torch
from mmdet.registry import HOOKS, MODELS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim.scheduler import CosineRestartLR
from mmengine.runner import Runner

import cbnet  # noqa: F401
from cbnet.converters.averaging import average_state_dicts
from cbnet.converters.single_to_cb import expand_checkpoint
from cbnet.engine import SWAHook
from cbnet.engine.tools_support import load_config, prepare_config
from cbnet.testing import DUAL_TOY, FASTER_TOY, REPO, load_tool, make_tiny_toy, write_tiny_config

CONFIGS = osp.join(REPO, 'configs')
SWA_TOY = osp.join(CONFIGS, 'cbnet', 'dual_r18_faster_rcnn_swa_toy.py')
SWA_CONFIGS = {
    'dual_res2net101_dcn_cascade_rcnn_swa.py': 'dual_res2net101_dcn_cascade_rcnn.py',
    'dual_res2net101_dcn_cascade_rcnn_4conv1fc_swa.py': 'dual_res2net101_dcn_cascade_rcnn_4conv1fc.py',
    'dual_swin_b_htc_swa.py': 'dual_swin_b_htc.py',
}


@HOOKS.register_module(force=True)
class WeightsRecorderHook(Hook):
    """Test helper: the model's state after every training iteration and when testing starts (after the EMA
    hook's swap, which has a higher priority)."""

    priority = 'LOWEST'
    records = {}

    def __init__(self, key: str) -> None:
        self.key = key
        self.records[key] = dict(train=[], test=None)

    @staticmethod
    def _state(runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.records[self.key]['train'].append(self._state(runner))

    def before_test_epoch(self, runner):
        self.records[self.key]['test'] = self._state(runner)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('swa_ema')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    # "the normal schedule's last checkpoint": the Dual toy detector as built (random init)
    start = str(tmp / 'start.pth')
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(DUAL_TOY).model).state_dict(), meta={}), start)
    return dict(tmp=tmp, data_root=data_root, start=start)


def _train(cfg_file: str, work_dir: str):
    """What tools/train.py does, in this process."""
    cfg = load_config(cfg_file, work_dir=work_dir)
    prepare_config(cfg, training=True)
    Runner.from_cfg(cfg).train()


def _test_tool(monkeypatch, cfg_file: str, checkpoint: str, work_dir: str) -> str:
    """tools/test.py CONFIG CHECKPOINT in this process; returns its log."""
    monkeypatch.setattr(sys, 'argv', ['test.py', cfg_file, checkpoint, '--work-dir', work_dir])
    load_tool('tools/test.py').main()
    logs = sorted(osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs if f.endswith('.log'))
    with open(logs[-1]) as f:
        return f.read()


# -- the SWA schedule and configs -------------------------------------------------------------------------------
def test_swa_schedule_cycles_from_the_base_lr_to_a_hundredth_every_epoch():
    cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'swa_12e.py'))
    assert cfg.swa_train_cfg.max_epochs == 12 and cfg.swa_checkpoint.interval == 1
    assert cfg.swa_checkpoint.max_keep_ckpts == -1  # all 12 epoch checkpoints stay for average_checkpoints.py
    assert [s['type'] for s in cfg.swa_param_scheduler] == ['CosineRestartLR']  # no warm-up
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.02)
    spec = dict(cfg.swa_param_scheduler[0])
    spec.pop('type'), spec.pop('convert_to_iter_based')
    epoch_length = 5
    scheduler = CosineRestartLR.build_iter_from_epoch(optimizer, epoch_length=epoch_length, **spec)
    lrs = []
    for _ in range(12 * epoch_length):
        lrs.append(optimizer.param_groups[0]['lr'])  # the lr this iteration trains with
        optimizer.step()
        scheduler.step()
    for epoch in range(12):
        cycle = lrs[epoch * epoch_length:(epoch + 1) * epoch_length]
        assert cycle[0] == pytest.approx(0.02)  # every epoch restarts at the base lr
        assert all(a > b for a, b in zip(cycle, cycle[1:]))  # and decreases through the epoch ...
        last = 0.0002 + (0.02 - 0.0002) * (1 + math.cos(math.pi * (epoch_length - 1) / epoch_length)) / 2
        assert cycle[-1] == pytest.approx(last)  # ... along a cosine that reaches 0.01x at the epoch's end
    assert min(lrs) > 0.0002


@pytest.mark.parametrize('name', sorted(SWA_CONFIGS))
def test_swa_config_is_the_normal_model_with_the_swa_stage(name):
    swa = Config.fromfile(osp.join(CONFIGS, 'cbnet', name))
    base_name = SWA_CONFIGS[name]
    base = Config.fromfile(osp.join(CONFIGS, 'cbnet', base_name))
    # same model, data, optimizer (its lr is the top of every cycle) and evaluation as the normal config
    for key in ('model', 'optim_wrapper', 'train_dataloader', 'test_dataloader', 'val_evaluator'):
        assert swa[key] == base[key], f'{name}: {key} differs from {base_name}'
    assert swa.train_cfg.type == 'EpochBasedTrainLoop' and swa.train_cfg.max_epochs == 12
    assert [s['type'] for s in swa.param_scheduler] == ['CosineRestartLR']
    assert swa.default_hooks.checkpoint.interval == 1 and swa.default_hooks.checkpoint.max_keep_ckpts == -1
    assert [h['type'] for h in swa.custom_hooks] == ['SWAHook']
    # starts from the normal schedule's last checkpoint in its default work dir
    stem = osp.splitext(base_name)[0]
    assert swa.load_from == f'work_dirs/{stem}/epoch_{base.train_cfg.max_epochs}.pth'


# -- the SWA stage on the toy data ------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def swa_run(toy):
    extra = f'''
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=3, val_interval=3)
default_hooks = dict(checkpoint=dict(_delete_=True, type='CheckpointHook', interval=1, max_keep_ckpts=-1))
log_processor = dict(window_size=1, by_epoch=True)
load_from = {toy['start']!r}
'''
    cfg_file = write_tiny_config(str(toy['tmp'] / 'swa.py'), toy['data_root'], base=SWA_TOY, extra=extra)
    work_dir = str(toy['tmp'] / 'swa_work')
    _train(cfg_file, work_dir)
    return dict(cfg=cfg_file, work_dir=work_dir, epochs=[osp.join(work_dir, f'epoch_{e}.pth') for e in (1, 2, 3)])


@pytest.mark.slow
def test_swa_stage_saves_the_mean_of_the_epoch_weights_and_test_py_evaluates_it(swa_run, monkeypatch):
    epochs = [torch.load(p) for p in swa_run['epochs']]
    swa = torch.load(osp.join(swa_run['work_dir'], 'swa_model.pth'))
    assert swa['meta']['swa'] == dict(epochs=[1, 2, 3], count=3)
    assert swa['meta']['dataset_meta']['classes'] == ('rectangle', 'ellipse', 'triangle')
    states = [c['state_dict'] for c in epochs]
    assert swa['state_dict'].keys() == states[0].keys()
    changed = 0
    for key, value in swa['state_dict'].items():
        if value.is_floating_point():
            expected = torch.stack([s[key].double() for s in states]).mean(0).to(value.dtype)
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=key)
            changed += not torch.equal(states[0][key], states[-1][key])
        else:
            assert torch.equal(value, states[-1][key]), key  # num_batches_tracked: the last epoch's
    # the epochs differ in every part (so the mean is not trivially one of them): both branches, the composite
    # connections, the BN statistics of the from-scratch backbone, the shared neck and heads
    for part in ('backbone.branches.0.', 'backbone.branches.1.', 'backbone.composition.', 'running_mean', 'neck.',
                 'roi_head.'):
        assert any(part in k and not torch.equal(states[0][k], states[-1][k]) for k in states[0]), part
    assert changed > 100

    # the file average of the epoch checkpoints is the same mean, with the last checkpoint's meta
    out = str(swa_run['work_dir'] + '/averaged.pth')
    assert load_tool('tools/model_converters/average_checkpoints.py').main([*swa_run['epochs'], '-o', out]) == 0
    averaged = torch.load(out)
    assert averaged['meta']['swa']['averaged'] == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']
    assert averaged['meta']['epoch'] == 3 and set(averaged) == {'meta', 'state_dict'}
    for key, value in swa['state_dict'].items():
        torch.testing.assert_close(averaged['state_dict'][key], value, rtol=1e-5, atol=1e-6, msg=key)

    # the validation after the last epoch evaluated the mean, and tools/test.py evaluates the saved mean
    logs = [osp.join(r, f) for r, _, fs in os.walk(swa_run['work_dir']) for f in fs if f.endswith('.log')]
    assert 'SWA: validating the mean of 3 epochs' in open(logs[0]).read()
    log = _test_tool(monkeypatch, swa_run['cfg'], osp.join(swa_run['work_dir'], 'swa_model.pth'),
                     swa_run['work_dir'] + '/test')
    assert 'swa_model.pth' in log and 'coco/bbox_mAP:' in log


@pytest.mark.slow
def test_swa_checkpoints_carry_the_running_mean_for_resume(swa_run):
    second = torch.load(swa_run['epochs'][1])
    assert second['meta']['swa_epochs'] == [1, 2] and int(second['swa_state_dict']['steps']) == 2
    cfg = Config.fromfile(swa_run['cfg'])
    model = MODELS.build(cfg.model)

    class Resuming:  # what SWAHook reads from the runner when --resume loads a checkpoint
        _resume = True

    Resuming.model = model
    hook = SWAHook()
    hook.after_load_checkpoint(Resuming(), second)
    assert hook.epochs == [1, 2] and int(hook.average.steps) == 2
    mean = average_state_dicts([torch.load(p)['state_dict'] for p in swa_run['epochs'][:2]])
    for key, value in hook.average.module.state_dict().items():
        torch.testing.assert_close(value, mean[key], rtol=1e-5, atol=1e-6, msg=key)


def test_average_checkpoints_refuses_checkpoints_of_different_models(tmp_path):
    a = OrderedDict(w=torch.ones(2, 2), n=torch.tensor(3))
    b = OrderedDict(w=torch.ones(3, 2), n=torch.tensor(5))
    with pytest.raises(ValueError, match='not of the same model.*other shapes: w'):
        average_state_dicts([a, b])
    mean = average_state_dicts([a, OrderedDict(w=torch.zeros(2, 2), n=torch.tensor(5))])
    assert torch.equal(mean['w'], torch.full((2, 2), 0.5)) and int(mean['n']) == 5
    torch.save(dict(state_dict=a, meta={}), tmp_path / 'a.pth')
    torch.save(dict(state_dict=b, meta={}), tmp_path / 'b.pth')
    tool = load_tool('tools/model_converters/average_checkpoints.py')
    assert tool.main([str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth'), '-o', str(tmp_path / 'out.pth')]) == 1
    assert not osp.exists(tmp_path / 'out.pth')


# -- EMA ----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ema_hook_averages_every_branch_and_test_py_evaluates_the_ema_weights(toy, monkeypatch):
    momentum = 0.25
    hooks = f"custom_hooks = [dict(type='EMAHook', momentum={momentum}), dict(type='WeightsRecorderHook', key={{}})]\n"
    cfg_file = write_tiny_config(
        str(toy['tmp'] / 'ema.py'),
        toy['data_root'],
        base=DUAL_TOY,
        max_iters=3,
        # no validation during training: tools/test.py evaluates the checkpoint below
        extra=hooks.format("'train'") + 'train_cfg = dict(max_iters=3, val_interval=100)\n')
    work_dir = str(toy['tmp'] / 'ema_work')
    _train(cfg_file, work_dir)
    raw = WeightsRecorderHook.records['train']['train']  # the trained weights after each iteration
    ema = dict(raw[0])  # mmengine: the first update copies, the next ones move by `momentum`
    for state in raw[1:]:
        ema = {k: ema[k] + momentum * (v - ema[k]) if v.is_floating_point() else v for k, v in state.items()}
    ckpt = torch.load(osp.join(work_dir, 'iter_3.pth'))
    params = dict(MODELS.build(Config.fromfile(cfg_file).model).named_parameters())
    # the checkpoint's state_dict holds the EMA of every parameter (both branches, the composite connections,
    # neck and heads); mmengine keeps the trained ones under ema_state_dict, as 'module.<key>'
    for key in params:
        torch.testing.assert_close(ckpt['state_dict'][key], ema[key], rtol=1e-5, atol=1e-6, msg=key)
        assert torch.equal(ckpt['ema_state_dict'][f'module.{key}'], raw[-1][key]), key
    for part in ('backbone.branches.0.', 'backbone.branches.1.', 'backbone.composition.', 'neck.', 'roi_head.'):
        assert any(k.startswith(part) and not torch.equal(ema[k], raw[-1][k]) for k in params), part

    # tools/test.py with the training config: the EMA hook swaps in the weights it loaded from the checkpoint's
    # state_dict, i.e. the EMA weights are evaluated (a config without the hook loads the same state_dict)
    test_cfg = write_tiny_config(
        str(toy['tmp'] / 'ema_test.py'), toy['data_root'], base=DUAL_TOY, extra=hooks.format("'test'"))
    log = _test_tool(monkeypatch, test_cfg, osp.join(work_dir, 'iter_3.pth'), str(toy['tmp'] / 'ema_test'))
    assert 'coco/bbox_mAP:' in log
    tested = WeightsRecorderHook.records['test']['test']
    for name in params:
        assert torch.equal(tested[name], ckpt['state_dict'][name]), name


def test_single_to_cb_expands_the_ema_weights_of_a_plain_checkpoint(tmp_path):
    plain = MODELS.build(Config.fromfile(FASTER_TOY).model).state_dict()
    raw = OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in plain.items())
    src = str(tmp_path / 'plain_ema.pth')
    # mmengine's EMAHook: EMA weights in state_dict, the trained ones in ema_state_dict ('module.' + key) ...
    state_dict = OrderedDict(plain)
    # ... and mmcv 1.x's EMA buffers (ema_<name with '_' for '.'>) inside the state dict of mmdet 2.x files
    state_dict['ema_backbone_conv1_weight'] = raw['backbone.conv1.weight']
    torch.save(dict(state_dict=state_dict, ema_state_dict={f'module.{k}': v for k, v in raw.items()}, meta={}), src)
    dst = str(tmp_path / 'dual.pth')
    report = expand_checkpoint(src, dst, config=DUAL_TOY)
    assert any('1 mmcv 1.x EMA buffers' in note for note in report.notes)
    expanded = torch.load(dst)
    assert set(expanded) == {'state_dict', 'meta'}  # no ema_state_dict: the result starts a new run
    assert torch.equal(expanded['state_dict']['backbone.branches.0.conv1.weight'], plain['backbone.conv1.weight'])
    assert torch.equal(expanded['state_dict']['backbone.branches.1.layer4.0.conv1.weight'],
                       plain['backbone.layer4.0.conv1.weight'])
    assert torch.equal(expanded['state_dict']['roi_head.bbox_head.fc_cls.weight'],
                       plain['roi_head.bbox_head.fc_cls.weight'])
