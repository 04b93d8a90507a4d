"""Pretrained weights for a composite backbone: load once into the first branch, copy into the others.

The inner backbone's own ``init_weights`` does the loading, so every family keeps the conversions mmdet and
mmpretrain apply to its checkpoints (torchvision ResNet keys, original Swin layout, ``prefix='backbone.'``).
Family code loads non-strictly and may only log what it skipped; we check what was actually written and make
a checkpoint that loads nothing an error and one that loads only part of the backbone a loud warning.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import CheckpointLoader

from ...utils.remote_weights import PretrainedUnavailableError, network_error_in_chain, unavailable_pretrained_message

CONVERTER = 'tools/model_converters/cbnetv2_to_cbnet.py'
#: where the inner backbone's init_cfg sits in a CB detector config (for the messages)
INNER_INIT_CFG = 'model.backbone.backbone.init_cfg'


def find_pretrained(init_cfg) -> Optional[dict]:
    """The ``Pretrained`` entry of an ``init_cfg`` (a dict or a list of them), if any."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return next((c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained'), None)


def _versions(module: nn.Module) -> Dict[str, int]:
    return {name: t._version for name, t in module.state_dict(keep_vars=True).items()}


def _learnable_or_statistics(module: nn.Module) -> List[str]:
    """Tensors a checkpoint must provide: floating point ones (not index tables or counters)."""
    return [name for name, t in module.state_dict(keep_vars=True).items() if t.is_floating_point()]


def _summarise(names: Sequence[str], limit: int = 12) -> str:
    shown = ', '.join(names[:limit])
    return shown + (f', ... ({len(names) - limit} more)' if len(names) > limit else '')


def _diagnose_nothing_loaded(checkpoint: str, backbone: nn.Module) -> str:
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
        keys = list((ckpt.get('state_dict') or ckpt.get('model') or ckpt) if isinstance(ckpt, dict) else [])
    except Exception as e:  # an unreadable file gets its own message
        return f'It could not be read: {e}'
    if any('cb_modules' in k or 'cb_linears' in k for k in keys):
        return ('It is an official CBNetV2 (mmdet 2.x) detector checkpoint. Convert it with '
                f'`python {CONVERTER} SRC DST` and load the result with `load_from=DST` (whole detector), '
                'not as the backbone init_cfg.')
    return (f'Its keys look like {_summarise(keys, 5)}; {type(backbone).__name__} expects keys like '
            f'{_summarise(list(backbone.state_dict()), 5)}. Check that the checkpoint is for this backbone and '
            "set init_cfg's `prefix` (e.g. prefix='backbone.' for mmdet/mmpretrain model checkpoints).")


def load_pretrained_into_branches(branches: Sequence[nn.Module], composition: Optional[nn.Module] = None) -> None:
    """Initialise ``branches[0]`` through its own ``init_weights`` and copy its weights into the others.

    Raises if a ``Pretrained`` checkpoint wrote none of the first branch's tensors; warns, listing them, if it
    left some of them at their random initialisation.
    """
    logger = MMLogger.get_current_instance()
    first = branches[0]
    checkpoint = (find_pretrained(first.init_cfg) or {}).get('checkpoint')
    before = _versions(first) if checkpoint else None
    try:
        first.init_weights()
    except Exception as e:
        network_error = network_error_in_chain(e)
        if checkpoint is None or (network_error is None and not isinstance(e, FileNotFoundError)):
            raise
        raise PretrainedUnavailableError(
            unavailable_pretrained_message(checkpoint, INNER_INIT_CFG, network_error or e)) from e
    if checkpoint:
        after = _versions(first)
        expected = _learnable_or_statistics(first)
        missing = [n for n in expected if after[n] == before[n]]
        if len(missing) == len(expected):
            raise ValueError(f'The pretrained checkpoint {checkpoint!r} loaded none of the {len(expected)} '
                             f'weights of {type(first).__name__}. ' + _diagnose_nothing_loaded(checkpoint, first))
        if missing:
            logger.warning(f'CBNet: the pretrained checkpoint {checkpoint!r} did not provide {len(missing)} of '
                           f'the {len(expected)} weights of {type(first).__name__}; they keep their random '
                           f'initialisation in every branch: {_summarise(missing)}')
        new = sum(p.numel() for p in composition.parameters()) if composition is not None else 0
        logger.info(f'CBNet: loaded {checkpoint!r} into {len(expected) - len(missing)}/{len(expected)} weights of '
                    f'{type(first).__name__} and copied them into {len(branches) - 1} more branch(es); the '
                    f'composite connections ({new} parameters) are new by design.')
    # tensor by tensor, not load_state_dict: families' load hooks convert checkpoint layouts or drop tables they
    # rebuild (mmpretrain's Swin v2 drops its position index tables), which a copy between equal modules must skip
    source = first.state_dict()
    with torch.no_grad():
        for branch in branches[1:]:
            for name, tensor in branch.state_dict(keep_vars=True).items():
                tensor.copy_(source[name])
