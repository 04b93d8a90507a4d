"""Training-time reliability (NaN/inf loss guard, checkpoint compatibility checks, atomic checkpoints) and the
stochastic weight averaging of an SWA stage (:class:`SWAHook`).

The hooks register in mmdet's ``HOOKS`` when this package is imported. The ``atomic_local`` file backend and
the clear errors for unreadable local checkpoints (``CheckpointReadError`` naming the file, instead of torch's
``PytorchStreamReader failed ...``) are installed by :mod:`cbnet.global_effects`.
"""
from .hooks import (AtomicCheckpointHook, CheckpointCompatibilityHook, NonFiniteLossHook, enable_reliability,
                    non_finite_losses)
from .layer_decay import CBLearningRateDecayOptimizerConstructor
from .swa import SWAHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointCompatibilityHook', 'NonFiniteLossHook', 'enable_reliability',
    'non_finite_losses', 'CBLearningRateDecayOptimizerConstructor', 'SWAHook'
]

try:  # plain-ViT layer decay builds on mmpretrain's constructor; without mmpretrain there are no such ViTs
    from .vit_layer_decay import CBLearningRateDecayOptimWrapperConstructor  # noqa: F401
    __all__.append('CBLearningRateDecayOptimWrapperConstructor')
except ModuleNotFoundError as error:
    if not (error.name or '').startswith('mmpretrain'):
        raise
