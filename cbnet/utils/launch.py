"""What ``tools/train.py`` and ``tools/test.py`` need beyond mmdet's tools: CPU-only distributed runs, clear
errors for options a machine cannot honour.

Why: mmengine assumes a GPU per process in distributed runs. ``init_dist`` calls ``torch.cuda.set_device``
(which raises on a machine without an NVIDIA driver) and the default ``nccl`` backend needs CUDA; the
runner then wraps the model in DDP with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module.
On such a machine we initialise the process group with ``gloo`` ourselves and build DDP without device ids,
so ``tools/dist_train.sh CONFIG 2`` really trains with 2 CPU processes.
"""
import contextlib
from typing import Iterator

import torch
from mmengine.config import Config
from mmengine.dist import init_dist, is_distributed
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


def cuda_available() -> bool:
    return torch.cuda.is_available()


@contextlib.contextmanager
def _without_cuda_set_device() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block (only used when there is no CUDA)."""
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a distributed run on a machine without CUDA; returns whether it did anything.

    Does nothing for ``launcher='none'`` or when CUDA is available (the usual GPU path stays mmengine's).
    Otherwise: initialises the default process group with the ``gloo`` backend (keeping the other
    ``env_cfg.dist_cfg`` arguments, e.g. ``timeout``) and makes the DDP wrapper take no ``device_ids``.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or cuda_available():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    dist_cfg['backend'] = 'gloo'
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not is_distributed():
        with _without_cuda_set_device():
            init_dist(launcher, **dist_cfg)

    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        # what Runner.wrap_model builds by default, minus the device ids
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
    else:
        wrapper_type = MODEL_WRAPPERS.get(wrapper_cfg.get('type', 'MMDistributedDataParallel'))
        if isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel):
            wrapper_cfg.setdefault('device_ids', None)
    return True


def check_amp_supported() -> None:
    """``--amp`` uses mmengine's ``AmpOptimWrapper``, which asserts a CUDA (or NPU/MLU/MUSA) device."""
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    if not (cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()):
        raise SystemExit(
            'error: --amp (automatic mixed precision) needs a CUDA GPU: mmengine\'s AmpOptimWrapper refuses '
            'to run on the CPU. Drop --amp on this machine.')
