"""Hooks that make long runs fail fast and loudly instead of training silently wrong.

* :class:`NonFiniteLossHook`: a NaN/inf loss stops the run BEFORE the optimizer step, naming the iteration
  and the loss key(s), so the weights (and the next checkpoint) are never poisoned.
* :class:`CheckpointCompatibilityHook`: expands a plain (single-backbone) detector checkpoint given as
  ``load_from`` to a CB detector (every branch starts from its backbone); refuses a ``load_from``/resume
  checkpoint that would leave the backbone or the heads mostly random (official CBNetV2 keys, another
  architecture or depth), and checks
  the neck's ``in_channels`` against a composite backbone before training or testing starts.
* :class:`AtomicCheckpointHook`: mmengine's ``CheckpointHook`` writing through the atomic file backend.

``cbnet.engine.enable_reliability(cfg)`` adds all three to a config (cbnet's tools do it by default).
"""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from ..converters.single_to_cb import (describe_expansion, expand_single_state_dict, is_composite_state_dict,
                                       is_single_backbone_state_dict)
from ..utils.compat_checks import check_checkpoint_fits_model, check_neck_matches_backbone, check_pyramid_strides


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def _detector(model: torch.nn.Module) -> torch.nn.Module:
    """The detector inside (DDP and) a test-time augmentation model: what mmengine loads checkpoints into."""
    model = _unwrap(model)
    return model.module if isinstance(model, BaseTTAModel) else model


def non_finite_losses(losses: Dict[str, Union[torch.Tensor, Sequence[torch.Tensor]]]) -> Dict[str, float]:
    """The loss terms (keys containing 'loss', those summed into the total) that are NaN or inf."""
    bad = {}
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            total = float(v.detach().float().sum()) if isinstance(v, torch.Tensor) else float(v)
            if not math.isfinite(total):
                bad[key] = total
                break
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training on a NaN or inf loss before it reaches the optimizer.

    Checked where the losses are parsed (``model.parse_losses``, inside ``train_step``), i.e. before the
    backward pass and the optimizer step: the weights stay those of the previous iteration and no later
    checkpoint holds NaNs. The error names the iteration (1-based, as in the log) and every non-finite key,
    e.g. ``assist1_loss_rpn_cls`` for the first assisting branch. In a distributed run the failing rank
    exits and torchrun stops the others. With ``--amp``, steps whose *gradients* overflow are still skipped
    by the loss scaler as usual; a non-finite *loss* is not an overflow and stops the run too.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._patched: Optional[torch.nn.Module] = None

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        original = model.parse_losses

        def parse_losses(losses):
            bad = non_finite_losses(losses)
            if bad:
                step = runner.iter + 1
                found = ', '.join(f'{k}={v}' for k, v in bad.items())
                raise FloatingPointError(
                    f'Non-finite loss at iteration {step} (epoch {runner.epoch + 1}): {found}. Training stopped '
                    f'before the optimizer step, so the weights are those after iteration {step - 1}'
                    f'{_last_checkpoint(runner)}. Usual causes: a learning rate too high for the batch size '
                    '(lower optim_wrapper.optimizer.lr, lengthen the warm-up), no gradient clipping '
                    '(optim_wrapper.clip_grad=dict(max_norm=10)), degenerate boxes in the annotations, or fp16 '
                    'overflow (keep loss_scale=\'dynamic\').')
            return original(losses)

        model.parse_losses = parse_losses
        self._patched = model

    def after_train(self, runner) -> None:
        if self._patched is not None and 'parse_losses' in vars(self._patched):
            del self._patched.parse_losses
        self._patched = None


def _last_checkpoint(runner) -> str:
    last = runner.message_hub.get_info('last_ckpt')
    return f'; the last checkpoint is {last}' if last else ''


@HOOKS.register_module()
class CheckpointCompatibilityHook(Hook):
    """Expand plain detector checkpoints for CB detectors; refuse checkpoints that would leave the backbone
    untouched; check the neck against the backbone.

    ``after_load_checkpoint`` runs after mmengine reads a ``load_from``/resume checkpoint and before it copies
    it (non-strictly) into the model, so a wrong checkpoint stops the run before any step, and a plain
    detector checkpoint given to a CB detector can be replaced, in memory, by its expansion
    (:func:`cbnet.converters.single_to_cb.expand_single_state_dict`: the backbone in every branch, composite
    connections at zero, neck and heads unchanged), which then loads with no missing or unexpected key. A
    plain checkpoint of another architecture is refused with the keys that differ.

    A checkpoint must provide most of the backbone's and most of the neck and heads' parameter values (see
    :func:`cbnet.utils.compat_checks.check_checkpoint_fits_model`), so neither training nor ``tools/test.py``
    runs a mostly random model because a few tensors happened to match.

    Args:
        require_backbone: refuse a checkpoint that does not provide the backbone. Set False only if you mean to
            take the backbone from its ``init_cfg`` and just the neck/heads from ``load_from`` (a plain
            checkpoint is then not expanded either: its backbone keys are ignored).
        require_heads: refuse a checkpoint that does not provide the neck and heads. Set False only if you mean
            to take just the backbone from ``load_from`` and train the neck and heads from scratch.
    """

    priority = 'VERY_HIGH'

    def __init__(self, require_backbone: bool = True, require_heads: bool = True) -> None:
        self.require_backbone = require_backbone
        self.require_heads = require_heads

    def before_run(self, runner) -> None:
        model = _detector(runner.model)
        if hasattr(model, 'backbone'):
            check_neck_matches_backbone(model.backbone, getattr(model, 'neck', None))
            check_pyramid_strides(model)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not isinstance(checkpoint, dict):
            return
        nested = isinstance(checkpoint.get('state_dict'), dict)
        state_dict = checkpoint['state_dict'] if nested else checkpoint
        model = _detector(runner.model)
        source = getattr(runner, '_load_from', None)
        if (self.require_backbone and is_single_backbone_state_dict(state_dict)
                and is_composite_state_dict(model.state_dict())):
            if getattr(runner, '_resume', False):
                raise ValueError(f'--resume {source!r}: a plain detector checkpoint cannot be resumed by a CB '
                                 'detector (its optimizer state is for other parameters). Start from it with '
                                 'load_from (without --resume): its backbone then goes into every branch.')
            expanded, report = expand_single_state_dict(model, state_dict)
            if nested:
                checkpoint['state_dict'] = expanded
            else:
                checkpoint.clear()
                checkpoint.update(expanded)
                if hasattr(checkpoint, '_metadata'):
                    checkpoint._metadata = expanded._metadata
            print_log(describe_expansion(report, source), logger='current')
            return
        check_checkpoint_fits_model(
            model, state_dict, source=source, require_backbone=self.require_backbone, require_heads=self.require_heads)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose local checkpoint files are written atomically (temporary file + rename).

    A run killed while saving leaves the previous checkpoint intact and no partial file under a checkpoint
    name. Takes exactly ``CheckpointHook``'s arguments; ``backend_args`` naming another backend (e.g. petrel)
    is kept as given.
    """

    def __init__(self, *args, backend_args: Optional[dict] = None, **kwargs) -> None:
        out_dir = kwargs.get('out_dir')
        local = out_dir is None or '://' not in str(out_dir)
        if backend_args is None and kwargs.get('file_client_args') is None and local:
            backend_args = dict(backend='atomic_local')
        super().__init__(*args, backend_args=backend_args, **kwargs)


def enable_reliability(cfg, training: bool = True) -> List[str]:
    """Turn on cbnet's reliability hooks in an mmengine config (in place); returns what it changed.

    * ``default_hooks.checkpoint``: ``CheckpointHook`` becomes :class:`AtomicCheckpointHook` (same args);
    * ``custom_hooks``: :class:`CheckpointCompatibilityHook`, and for training :class:`NonFiniteLossHook`,
      unless the config already lists them.
    """
    changed = []
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if training and checkpoint is not None and checkpoint.get('type') in ('CheckpointHook', CheckpointHook) \
            and checkpoint.get('backend_args') is None:
        checkpoint['type'] = 'AtomicCheckpointHook'
        changed.append('AtomicCheckpointHook')
    custom_hooks = list(cfg.get('custom_hooks') or [])
    present = {h.get('type') for h in custom_hooks}
    wanted = ['CheckpointCompatibilityHook'] + (['NonFiniteLossHook'] if training else [])
    for name in wanted:
        if name not in present:
            custom_hooks.append(dict(type=name))
            changed.append(name)
    cfg.custom_hooks = custom_hooks
    return changed
