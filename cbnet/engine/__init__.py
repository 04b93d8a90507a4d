"""Training-time reliability: NaN/inf loss guard, checkpoint compatibility checks, atomic checkpoints.

Importing it (``import cbnet`` does) registers the hooks and the ``atomic_local`` file backend and makes
unreadable local checkpoint files raise :class:`cbnet.utils.checkpoint_files.CheckpointReadError`, which
names the file, instead of torch's ``PytorchStreamReader failed ...``.
"""
from ..utils.checkpoint_files import install_clear_checkpoint_errors
from .hooks import (AtomicCheckpointHook, CheckpointCompatibilityHook, NonFiniteLossHook, enable_reliability,
                    non_finite_losses)

install_clear_checkpoint_errors()

__all__ = ['AtomicCheckpointHook', 'CheckpointCompatibilityHook', 'NonFiniteLossHook', 'enable_reliability',
           'non_finite_losses']

from .layer_decay import CBLearningRateDecayOptimizerConstructor  # noqa: E402

__all__ += ['CBLearningRateDecayOptimizerConstructor']
