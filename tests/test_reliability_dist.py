"""Distributed CPU runs (gloo) of the Dual and Triple toy configs through tools/dist_train.sh: no unused-parameter
errors, ranks in sync; a rank that dies stops the whole job with a non-zero exit (reliability, part 3)."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import cbnet  # noqa: F401  (full checkpoints load with weights_only=True)
from cbnet.testing import REPO, make_tiny_toy, write_tiny_config

HOOKS = '''
import os
import os.path as osp
import signal

import torch
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class RankParamsDumpHook(Hook):
    """Each rank saves its parameters after training (ranks in sync = identical files)."""

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(dict(params={k: v.detach().clone() for k, v in model.named_parameters()},
                        world_size=runner.world_size, wrapper=type(runner.model).__name__,
                        iters=runner.iter),
                   osp.join(runner.work_dir, f'params_rank{runner.rank}.pth'))


@HOOKS.register_module()
class HangRankHook(Hook):
    """One rank stops answering without dying (a stuck file system, a deadlocked data worker)."""

    def __init__(self, rank, iteration):
        self.rank, self.iteration = rank, iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.rank == self.rank and runner.iter + 1 == self.iteration:
            import time
            time.sleep(3600)


@HOOKS.register_module()
class KillRankHook(Hook):
    """SIGKILL one rank after an iteration: a node lost, the OOM killer."""

    def __init__(self, rank, iteration):
        self.rank, self.iteration = rank, iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.rank == self.rank and runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dist')
    (tmp / 'reliability_dist_hooks.py').write_text(HOOKS)
    return dict(tmp=tmp, data_root=make_tiny_toy(str(tmp / 'toy')))


def _config(tiny, name: str, base: str, hooks: str) -> str:
    return write_tiny_config(
        str(tiny['tmp'] / f'{name}.py'),
        tiny['data_root'],
        base=osp.join(REPO, 'configs', 'cbnet', base),
        max_iters=2,
        extra="custom_imports = dict(imports=['cbnet', 'reliability_dist_hooks'], allow_failed_imports=False)\n"
        f'custom_hooks = {hooks}\n'
        # training only: no validation, no checkpoint (a second assignment replaces the whole dict)
        'train_cfg = dict(max_iters=2, val_interval=1000)\n'
        'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000, save_last=False))\n')


def _dist_train(tiny, cfg: str, work_dir: str, timeout: int = 400):
    """Run tools/dist_train.sh with 2 processes; on timeout kill the whole process group (never leak ranks)."""
    env = dict(
        os.environ,
        PYTHONWARNINGS='ignore',
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        PYTHONPATH=str(tiny['tmp']) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.monotonic()
    proc = subprocess.Popen(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir', work_dir],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            cwd=REPO,
                            env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # torchrun forwards it to the ranks (they run in their own groups)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f'dist_train.sh still running after {timeout} s:\n{out[-3000:]}')
    return proc.returncode, out, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize('base', ['dual_r18_faster_rcnn_toy.py', 'triple_r18_faster_rcnn_toy.py'])
def test_two_process_gloo_run_keeps_ranks_in_sync(tiny, base):
    name = base.split('_')[0]
    cfg = _config(tiny, name, base, "[dict(type='RankParamsDumpHook')]")
    work_dir = str(tiny['tmp'] / name)
    rc, out, _ = _dist_train(tiny, cfg, work_dir)
    # DDP without find_unused_parameters raises from the 2nd iteration on if any parameter got no gradient
    assert rc == 0, out[-4000:]
    assert 'find_unused_parameters=False' in out  # the strict DDP setting is the one in use
    assert 'Expected to have finished reduction' not in out and 'not used in producing loss' not in out
    dumps = [torch.load(osp.join(work_dir, f'params_rank{r}.pth')) for r in (0, 1)]
    assert all(d['world_size'] == 2 and d['wrapper'] == 'MMDistributedDataParallel' and d['iters'] == 2 for d in dumps)
    params0, params1 = dumps[0]['params'], dumps[1]['params']
    assert params0.keys() == params1.keys()
    branches = {k.split('.')[2] for k in params0 if k.startswith('backbone.branches.')}
    assert len(branches) == (3 if name == 'triple' else 2)
    for key in params0:
        assert torch.equal(params0[key], params1[key]), f'ranks disagree on {key}'


@pytest.mark.slow
def test_killed_rank_stops_the_job(tiny):
    cfg = _config(tiny, 'kill_rank', 'dual_r18_faster_rcnn_toy.py', "[dict(type='KillRankHook', rank=1, iteration=1)]")
    rc, out, seconds = _dist_train(tiny, cfg, str(tiny['tmp'] / 'kill_rank'), timeout=300)
    # rank 0 waits in the gradient all-reduce of iteration 2; torchrun sees rank 1 die and stops rank 0
    assert rc != 0, out[-4000:]
    assert 'Signal 9 (SIGKILL)' in out or 'SIGKILL' in out, out[-4000:]
    print(f'job stopped {seconds:.1f} s after start, exit code {rc}')


@pytest.mark.slow
def test_hung_rank_fails_after_the_collective_timeout(tiny):
    """A rank that hangs without dying is caught by the collective timeout (env_cfg.dist_cfg.timeout)."""
    cfg = _config(tiny, 'hang_rank', 'dual_r18_faster_rcnn_toy.py', "[dict(type='HangRankHook', rank=1, iteration=1)]\n"
                  'env_cfg = dict(dist_cfg=dict(timeout=15))')
    rc, out, seconds = _dist_train(tiny, cfg, str(tiny['tmp'] / 'hang_rank'), timeout=300)
    assert rc != 0, out[-4000:]
    assert 'Timed out waiting 15000ms' in out, out[-4000:]  # gloo's error on the rank left waiting
    assert 'ChildFailedError' in out  # ... after which torchrun stops the hung rank too
    print(f'job stopped {seconds:.1f} s after start, exit code {rc}')
