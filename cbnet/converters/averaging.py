"""The mean of several checkpoints of one model: the weights of stochastic weight averaging (SWA).

Why: the SWA recipe for detectors ("SWA Object Detection", Zhang et al. 2020), which the released CBNetV2 SWA
models follow, trains 12 more epochs with a cyclic learning rate and takes the mean of the 12 epoch-end checkpoints
as the final model (about +1 AP). :class:`cbnet.engine.SWAHook` keeps that mean during training;
``tools/model_converters/average_checkpoints.py`` computes it afterwards from the files, with the same rule:

* every floating-point tensor of the state dict (parameters and float buffers, i.e. BatchNorm running means and
  variances as well) -> the arithmetic mean, accumulated in float64 and stored in the tensor's own dtype. BN layers
  that never update their statistics (``norm_eval=True`` backbones, the composite connections' BN, frozen stages)
  hold the same values in every checkpoint, so their mean is that value; BN layers that do update (e.g. the SyncBN
  of 4conv1fc box heads) get the mean of their epoch-end statistics, as the recipe's averaging did (it does not
  recompute BN statistics on data);
* integer and boolean tensors (``num_batches_tracked`` counters) -> the last checkpoint's value;
* meta -> the last checkpoint's, plus ``swa=dict(averaged=[...], count=N)``. Optimizer, scheduler and message-hub
  states are not kept: the average was never trained, so it cannot be resumed.

Checkpoints written with mmengine's ``EMAHook`` hold the EMA weights in ``state_dict`` (the raw ones go to
``ema_state_dict``, which is dropped): their average is the average of the EMA weights.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from .files import load_state_dict_file


def _is_averaged(tensor: Tensor) -> bool:
    return tensor.is_floating_point()


class StateDictAverager:
    """Running mean of state dicts of one architecture, added one at a time (one checkpoint in memory at once).

    ``add`` checks that every state dict has the first one's keys and shapes; ``average()`` returns the mean
    (see the module docstring for what is averaged and what is taken from the last).
    """

    def __init__(self) -> None:
        self._sums: Dict[str, Tensor] = {}
        self._last: 'OrderedDict[str, Tensor]' = OrderedDict()
        self._shapes: Dict[str, tuple] = {}
        self.count = 0

    def add(self, state_dict: Mapping[str, Tensor], name: str = '') -> None:
        what = f' ({name})' if name else ''
        tensors = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
        if self.count == 0:
            self._shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        else:
            missing = sorted(set(self._shapes) - set(tensors))
            extra = sorted(set(tensors) - set(self._shapes))
            shapes = sorted(k for k in set(tensors) & set(self._shapes) if tuple(tensors[k].shape) != self._shapes[k])
            if missing or extra or shapes:
                parts = [
                    f'{label}: {", ".join(keys[:5])}{" ..." if len(keys) > 5 else ""} ({len(keys)})'
                    for label, keys in (('missing', missing), ('not in the first', extra), ('other shapes', shapes))
                    if keys
                ]
                raise ValueError(f'Checkpoint {self.count + 1}{what} is not of the same model as the first one '
                                 f'({"; ".join(parts)}): only checkpoints of one run (one config) can be averaged.')
        for key, value in tensors.items():
            value = value.detach()
            if _is_averaged(value):
                wide = value.to(device='cpu', dtype=torch.float64)
                if key in self._sums:
                    self._sums[key] += wide
                else:
                    self._sums[key] = wide.clone()
        self._last = OrderedDict((k, v.detach().cpu()) for k, v in tensors.items())
        self.count += 1

    def average(self) -> 'OrderedDict[str, Tensor]':
        if self.count == 0:
            raise ValueError('Nothing to average: no checkpoint was added.')
        out: 'OrderedDict[str, Tensor]' = OrderedDict()
        for key, last in self._last.items():
            out[key] = (self._sums[key] / self.count).to(last.dtype) if key in self._sums else last.clone()
        return out


def average_state_dicts(state_dicts: Sequence[Mapping[str, Tensor]]) -> 'OrderedDict[str, Tensor]':
    """The mean of ``state_dicts`` (float tensors averaged, integer tensors from the last)."""
    averager = StateDictAverager()
    for i, state_dict in enumerate(state_dicts):
        averager.add(state_dict, name=f'#{i + 1}')
    return averager.average()


def average_checkpoints(paths: Sequence[str]) -> dict:
    """``dict(meta=..., state_dict=...)``: the mean of the checkpoint files ``paths`` (full mmengine files or bare
    state dicts), loaded one after the other. The meta is the last file's, with ``swa`` added."""
    if not paths:
        raise ValueError('Give at least one checkpoint to average.')
    averager = StateDictAverager()
    meta: dict = {}
    for path in paths:
        state_dict, meta = load_state_dict_file(path)
        averager.add(state_dict, name=path)
    meta = dict(meta)
    meta['swa'] = dict(averaged=[osp.basename(p) for p in paths], count=len(paths))
    return dict(meta=meta, state_dict=averager.average())


def write_average(paths: Sequence[str], out: str, config: Optional[str] = None) -> List[str]:
    """Write the mean of ``paths`` to ``out``; with ``config``, first load it strictly into that config's model
    (nothing is written if it does not fit). Returns the lines to print."""
    checkpoint = average_checkpoints(paths)
    lines = [f'averaged {len(paths)} checkpoints: {", ".join(osp.basename(p) for p in paths)}']
    state_dict = checkpoint['state_dict']
    averaged = sum(1 for v in state_dict.values() if _is_averaged(v))
    lines.append(f'{averaged} floating-point tensors averaged, {len(state_dict) - averaged} integer tensors taken '
                 'from the last checkpoint')
    if config is not None:
        from .files import build_target_model
        build_target_model(config).load_state_dict(state_dict, strict=True)
        lines.append(f'verified: loads strictly into the model of {config}')
    torch.save(checkpoint, out)
    lines.append(f'written: {out}')
    return lines
