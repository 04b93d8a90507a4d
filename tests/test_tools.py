"""tools/train.py, tools/test.py and tools/dist_train.sh on tiny toy data, as a user runs them."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

import cbnet  # noqa: F401  (full checkpoints load with weights_only=True)
from cbnet.testing import DUAL_TOY, REPO, make_tiny_toy, write_tiny_config

TOOLS = osp.join(REPO, 'tools')


def _run(args, env_extra=None, timeout=300):
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    env.update(env_extra or {})
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tools')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    return dict(tmp=tmp, data_root=data_root, cfg=write_tiny_config(str(tmp / 'tiny.py'), data_root))


@pytest.mark.slow
def test_train_test_and_resume(tiny):
    work_dir = str(tiny['tmp'] / 'train')
    rc, out = _run([sys.executable, f'{TOOLS}/train.py', tiny['cfg'], '--work-dir', work_dir])
    assert rc == 0, out[-3000:]
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)

    # test.py CONFIG CKPT: loads the full checkpoint (torch >= 2.6) and prints COCO metrics
    rc, out = _run([
        sys.executable, f'{TOOLS}/test.py', tiny['cfg'], ckpt, '--work-dir',
        str(tiny['tmp'] / 'test'), '--out',
        str(tiny['tmp'] / 'preds.pkl')
    ])
    assert rc == 0, out[-3000:]
    assert 'coco/bbox_mAP:' in out and 'coco/bbox_mAP_50:' in out
    assert osp.isfile(tiny['tmp'] / 'preds.pkl')

    # --resume continues from iteration 2 to 3 instead of starting over
    rc, out = _run([
        sys.executable, f'{TOOLS}/train.py', tiny['cfg'], '--work-dir', work_dir, '--resume', '--cfg-options',
        'train_cfg.max_iters=3', 'train_cfg.val_interval=3'
    ])
    assert rc == 0, out[-3000:]
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'Iter(train) [1/3]' not in out and 'Iter(train) [3/3]' in out
    assert torch.load(osp.join(work_dir, 'iter_3.pth'))['meta']['iter'] == 3


@pytest.mark.slow
def test_test_time_augmentation_uses_config_tta(tiny):
    work_dir = str(tiny['tmp'] / 'tta_train')
    rc, out = _run([
        sys.executable, f'{TOOLS}/train.py', tiny['cfg'], '--work-dir', work_dir, '--cfg-options',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=100'
    ])
    assert rc == 0, out[-3000:]
    rc, out = _run([
        sys.executable, f'{TOOLS}/test.py', tiny['cfg'],
        osp.join(work_dir, 'iter_1.pth'), '--tta', '--work-dir',
        str(tiny['tmp'] / 'tta_test')
    ])
    assert rc == 0, out[-3000:]
    assert 'Cannot find ``tta_model``' not in out  # the toy config's own TTA model and pipeline are used
    assert 'DetTTAModelWithMasks' in out  # the config's DetTTAModel, made mask-capable, wraps the model
    assert 'coco/bbox_mAP:' in out  # and the augmented predictions were evaluated
    assert 'coco/bbox_mAP:' in out


def test_amp_without_gpu_explains(tiny):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: --amp is supported here')
    rc, out = _run([sys.executable, f'{TOOLS}/train.py', tiny['cfg'], '--amp', '--work-dir', str(tiny['tmp'] / 'amp')])
    assert rc != 0
    assert '--amp' in out and 'GPU' in out and 'Traceback' not in out


RANK_DUMP_HOOK = '''
import os.path as osp
import torch
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Each rank saves its own parameters and buffers before and after training."""

    def before_train(self, runner):
        self._dump(runner, 'before')

    def after_train(self, runner):
        self._dump(runner, 'after')

    def _dump(self, runner, tag):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(dict(params={k: v.detach().clone() for k, v in model.named_parameters()},
                        buffers={k: v.detach().clone() for k, v in model.named_buffers()},
                        world_size=runner.world_size, wrapper=type(runner.model).__name__),
                   osp.join(runner.work_dir, f'{tag}_rank{runner.rank}.pth'))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dist_train_two_processes_keep_identical_weights(tiny):
    # the Dual-backbone demo model: composite backbone, shared neck/heads and assistant losses under DDP
    tmp = tiny['tmp']
    (tmp / 'rank_dump_hook.py').write_text(RANK_DUMP_HOOK)
    cfg = write_tiny_config(
        str(tmp / 'tiny_dist.py'),
        tiny['data_root'],
        base=DUAL_TOY,
        max_iters=3,
        extra="custom_imports = dict(imports=['cbnet', 'rank_dump_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RankStateDumpHook')]\n")
    work_dir = str(tmp / 'dist')
    rc, out = _run(['bash', f'{TOOLS}/dist_train.sh', cfg, '2', '--work-dir', work_dir],
                   env_extra=dict(
                       PYTHON=sys.executable,
                       PORT=str(_free_port()),
                       PYTHONPATH=str(tmp) + os.pathsep + os.environ.get('PYTHONPATH', '')),
                   timeout=400)
    assert rc == 0, out[-4000:]
    before = [torch.load(osp.join(work_dir, f'before_rank{r}.pth')) for r in (0, 1)]
    after = [torch.load(osp.join(work_dir, f'after_rank{r}.pth')) for r in (0, 1)]
    assert all(s['world_size'] == 2 and s['wrapper'] == 'MMDistributedDataParallel' for s in after)
    params0, params1 = after[0]['params'], after[1]['params']
    assert params0.keys() == params1.keys()
    for key in params0:
        assert torch.equal(params0[key], params1[key]), f'ranks disagree on {key}'
    # training did change the weights ...
    assert any(not torch.equal(before[0]['params'][k], params0[k]) for k in params0)
    # ... from data that differed between the ranks: BN running statistics are not synchronised
    # (broadcast_buffers=False), so they differ only if the ranks saw different images
    stats = [k for k in after[0]['buffers'] if k.endswith('running_mean')]
    assert any(not torch.equal(after[0]['buffers'][k], after[1]['buffers'][k]) for k in stats)
    # rank 0's checkpoint holds the common weights
    ckpt = torch.load(osp.join(work_dir, 'iter_3.pth'))['state_dict']
    for key in params0:
        assert torch.equal(ckpt[key], params0[key]), key
