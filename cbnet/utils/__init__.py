"""Utilities shared by cbnet's tools: checkpoint loading on torch >= 2.6, CPU-only distributed runs, configs.

Importing this package changes nothing outside cbnet; :mod:`cbnet.global_effects` (run by ``import cbnet``)
allowlists the checkpoint globals with :func:`register_mmengine_safe_globals`.
"""
from .checkpoint import mmengine_checkpoint_safe_globals, register_mmengine_safe_globals
from .launch import check_amp_supported, setup_cpu_distributed

__all__ = [
    'mmengine_checkpoint_safe_globals', 'register_mmengine_safe_globals', 'check_amp_supported', 'setup_cpu_distributed'
]
