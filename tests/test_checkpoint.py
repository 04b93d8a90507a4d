"""Full mmengine checkpoints load under torch's ``weights_only=True`` default once cbnet is imported, and
nothing else gets through: resume, ``load_from`` and plain ``torch.load`` work, malicious pickles do not."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

import cbnet  # noqa: F401
from cbnet.testing import make_tiny_toy, write_tiny_config
from cbnet.utils import register_mmengine_safe_globals
from cbnet.utils.checkpoint import history_buffer_getattr

# Deterministic run for the resume comparison: mmengine does not checkpoint torch's RNG state, so random
# proposal sampling (RandomSampler) and random flips after a resume differ from a straight run. With
# PseudoSampler (all anchors/proposals) and no flip, every source of randomness is checkpointed or
# re-seeded, and resuming must reproduce the straight run bit for bit.
DETERMINISTIC = '''
randomness = dict(seed=0)
model = dict(train_cfg=dict(rpn=dict(sampler=dict(_delete_=True, type='PseudoSampler')),
                            rcnn=dict(sampler=dict(_delete_=True, type='PseudoSampler'))))
default_hooks = dict(checkpoint=dict(interval=2))
'''


def _run(cfg_file: str, work_dir: str, name: str, **overrides) -> Runner:
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = work_dir
    cfg.experiment_name = name  # distinct loggers for runners in one process
    cfg.merge_from_dict(overrides)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """A straight 4-iteration run (checkpoints at 2 and 4) and a run resumed from its iteration 2."""
    tmp = tmp_path_factory.mktemp('ckpt')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    cfg_file = write_tiny_config(str(tmp / 'tiny.py'), data_root, max_iters=4, flip_prob=0.0, extra=DETERMINISTIC)
    straight = str(tmp / 'straight')
    _run(cfg_file, straight, 'ckpt_straight')
    resumed = str(tmp / 'resumed')
    _run(cfg_file, resumed, 'ckpt_resumed', resume=True, load_from=osp.join(straight, 'iter_2.pth'))
    return dict(cfg=cfg_file, straight=straight, resumed=resumed)


@pytest.mark.slow
def test_plain_torch_load_of_full_checkpoint(runs):
    ckpt_file = osp.join(runs['straight'], 'iter_4.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt_file) == []
    ckpt = torch.load(ckpt_file)  # default weights_only=True on torch >= 2.6
    assert {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'} <= set(ckpt)
    assert ckpt['meta']['iter'] == 4
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() > 0


TORCH_WEIGHTS_ONLY_DEFAULT = tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]) >= (2, 6)


@pytest.mark.slow
@pytest.mark.skipif(not TORCH_WEIGHTS_ONLY_DEFAULT, reason='torch < 2.6 loads full pickles by default')
def test_without_cbnet_the_same_checkpoint_is_refused(runs):
    # proves the registration is what makes it load (torch >= 2.6 refuses mmengine checkpoints by default)
    ckpt_file = osp.join(runs['straight'], 'iter_4.pth')
    code = f'import torch; torch.load({ckpt_file!r})'
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0 and 'Unsupported global' in proc.stderr


@pytest.mark.slow
def test_load_from_entry_point(runs):
    # what `load_from` and `tools/test.py CONFIG CKPT` use
    cfg = Config.fromfile(runs['cfg'])
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, osp.join(runs['straight'], 'iter_4.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    saved = torch.load(osp.join(runs['straight'], 'iter_4.pth'))['state_dict']
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


@pytest.mark.slow
def test_resume_reproduces_straight_run(runs):
    straight = torch.load(osp.join(runs['straight'], 'iter_4.pth'))
    resumed = torch.load(osp.join(runs['resumed'], 'iter_4.pth'))
    assert resumed['meta']['iter'] == 4
    assert not osp.exists(osp.join(runs['resumed'], 'iter_2.pth'))  # it did not retrain iterations 1-2
    start = torch.load(osp.join(runs['straight'], 'iter_2.pth'))['state_dict']
    assert any(not torch.equal(start[k], straight['state_dict'][k]) for k in start)  # iterations 3-4 trained
    for key, value in straight['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    for hub in (straight, resumed):
        assert len(hub['message_hub']['log_scalars']['train/loss'].data[0]) >= 2
    # the losses logged at iterations 3 and 4 are the same
    loss_straight = straight['message_hub']['log_scalars']['train/loss'].data[0][-2:]
    loss_resumed = resumed['message_hub']['log_scalars']['train/loss'].data[0][-2:]
    assert loss_straight.tolist() == loss_resumed.tolist()
    # optimizer moments and lr schedule continue rather than restart
    for a, b in zip(straight['optimizer']['state'].values(), resumed['optimizer']['state'].values()):
        assert torch.equal(a['exp_avg'], b['exp_avg']) and a['step'] == b['step']
    assert straight['param_schedulers'] == resumed['param_schedulers']


class _RunsCode:
    """Pickles to a call of ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('func', [os.system, eval, getattr])
def test_malicious_globals_are_still_refused(tmp_path, func):
    marker = tmp_path / 'pwned'
    payload = {
        os.system: (f'touch {marker}', ),
        eval: (f'open({str(marker)!r}, "w")', ),
        # `builtins.getattr` is allowlisted only as a stand-in that reaches HistoryBuffer's methods: other
        # attributes of allowlisted objects (gadgets for an exploit) stay out of reach
        getattr: (np.ndarray, 'tofile'),
    }[func]
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': _RunsCode(func, *payload)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(torch.nn.Linear(1, 1), path)
    assert not marker.exists()


def test_history_buffer_getattr_only_reaches_history_buffer_methods():
    from mmengine.logging import HistoryBuffer
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in [(HistoryBuffer, '__init__'), (HistoryBuffer, '_statistics_methods'), (os, 'system'),
                      (HistoryBuffer, 'max_length')]:
        with pytest.raises(pickle.UnpicklingError):
            history_buffer_getattr(obj, name)


def test_registration_is_idempotent_and_names_what_checkpoints_contain():
    names = register_mmengine_safe_globals()
    assert names == register_mmengine_safe_globals()
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in names
    assert {
        'numpy._core.multiarray._reconstruct', 'numpy.core.multiarray._reconstruct', 'numpy.ndarray', 'numpy.dtype',
        'builtins.getattr'
    } <= set(names)
    assert 'builtins.eval' not in names and 'posix.system' not in names
