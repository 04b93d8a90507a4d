"""Utilities shared by cbnet's tools.

Importing this package (``import cbnet`` does) allowlists the globals of full mmengine checkpoints for
``torch.load(weights_only=True)``, so ``--resume``, ``load_from`` and ``tools/test.py CONFIG CKPT`` work on
torch >= 2.6 without disabling ``weights_only``.
"""
from .checkpoint import mmengine_checkpoint_safe_globals, register_mmengine_safe_globals
from .launch import check_amp_supported, setup_cpu_distributed

register_mmengine_safe_globals()

__all__ = [
    'mmengine_checkpoint_safe_globals', 'register_mmengine_safe_globals', 'check_amp_supported',
    'setup_cpu_distributed'
]
