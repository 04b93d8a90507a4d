"""A trained plain (single-backbone) mmdet detector -> the matching CB detector, as its starting point.

Why: a composite detector whose every branch holds the plain detector's backbone, with composite connections
at zero (what the CB model's zero init gives them) and the plain neck and heads, computes exactly the plain
detector's predictions. Fine-tuning from there starts at the plain detector's accuracy instead of from
ImageNet weights.

The key mapping is read from the CB model's own state dict, so it holds for any backbone family, any K and
any pruning: every ``backbone.branches.{k}.<name>`` takes the plain ``backbone.<name>``; the other backbone
keys (the composite connections) take the model's zero-initialised values; every other key (neck, heads)
is copied unchanged. What a pruned branch does not build (the stem and first stages of branches after the
first, the lead's stages after its last output) is dropped and reported. A key of the CB model that the plain
checkpoint lacks, a plain key the CB model has no place for, or a shape that differs means the checkpoint is
of another architecture: that is an error naming the keys, never a partial load.
"""
import copy
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from ..utils.compat_checks import OFFICIAL_MARKERS, strip_module_prefix
from .files import build_target_model, load_state_dict_file

_BRANCH_KEY = re.compile(r'^backbone\.branches\.(\d+)\.(.+)$')
_COMPOSITE_MARKERS = ('backbone.branches.', 'backbone.composition.')
#: mmcv 1.x's EMAHook (and mmdet 2.x's ExpMomentumEMAHook, e.g. in the YOLOX files mmdet 3 still links) kept the
#: average as buffers of the model, ``ema_<parameter name with '.' as '_'>``, swapped with the parameters at each
#: epoch end; the mmdet 2.x configs ran it before the checkpoint hook, so the parameters of their files are the EMA
#: weights and these buffers the raw ones. They have no place in an mmdet 3 model (mmengine keeps its EMA apart,
#: under ``ema_state_dict``) and are dropped.
_MMCV1_EMA_BUFFER = re.compile(r'^ema_[^.]+$')


@dataclass
class ExpansionReport:
    """What :func:`expand_single_state_dict` did."""

    num_branches: int
    into_branches: Dict[int, int] = field(default_factory=dict)  # branch -> backbone keys copied into it
    pruned: Dict[int, List[str]] = field(default_factory=dict)  # branch -> plain modules it does not build
    zero_keys: List[str] = field(default_factory=list)  # keys new in the CB model (composite connections)
    copied: int = 0  # neck, heads and any other key copied unchanged
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f'plain detector -> composite backbone with {self.num_branches} branches: backbone copied into '
            f'every branch ({", ".join(f"branch {k}: {n} keys" for k, n in sorted(self.into_branches.items()))}'
            f'), {len(self.zero_keys)} composite-connection keys set to their zero init, {self.copied} neck/'
            'head keys copied unchanged'
        ]
        for k, modules in sorted(self.pruned.items()):
            lines.append(f'  dropped for branch {k} (pruned, the branch does not build them): {", ".join(modules)}')
        lines += [f'  note: {note}' for note in self.notes]
        return '\n'.join(lines)


def is_composite_state_dict(keys) -> bool:
    return any(str(k).startswith(_COMPOSITE_MARKERS) for k in keys)


def is_single_backbone_state_dict(state_dict: Mapping) -> bool:
    """A plain mmdet detector's state dict: ``backbone.*`` keys, none of a composite or an official CBNetV2 one."""
    keys = list(strip_module_prefix(state_dict))
    return (any(k.startswith('backbone.') for k in keys) and not is_composite_state_dict(keys)
            and not any(k.startswith(OFFICIAL_MARKERS) for k in keys))


def _module_group(name: str) -> str:
    """The module that pruning removes a key with: ``layer1.0.conv1.weight`` -> ``layer1``,
    ``stages.2.blocks.0.w`` -> ``stages.2``, ``patch_embed.proj.weight`` -> ``patch_embed``."""
    parts = name.split('.')
    if len(parts) > 2 and parts[1].isdigit() and not parts[0][-1:].isdigit():
        return f'{parts[0]}.{parts[1]}'
    return parts[0]


def _zero_init_state(model: nn.Module, keys: List[str]) -> Dict[str, Tensor]:
    """The values of the CB model's own backbone keys outside the branches, as its zero init sets them.

    Each backbone submodule holding such keys is copied and, if it has ``zero_init_`` (the compositions do),
    zero-initialised; the model itself is not changed.
    """
    backbone = model.backbone
    owners = sorted({k[len('backbone.'):].split('.')[0] for k in keys})
    values: Dict[str, Tensor] = {}
    for owner in owners:
        module = copy.deepcopy(getattr(backbone, owner))
        if hasattr(module, 'zero_init_'):
            module.zero_init_()
        for name, value in module.state_dict().items():
            values[f'backbone.{owner}.{name}'] = value
    return values


def _identity_connections(model: nn.Module) -> int:
    composition = getattr(model.backbone, 'composition', None)
    if composition is None:
        return 0
    return sum(1 for m in composition.modules() if getattr(m, 'identity', False) is True)


def _architecture_error(missing: List[str], unexpected: List[str], mismatched: List[str]) -> str:

    def part(key: str) -> str:
        return key.split('.')[0]

    def listing(keys: List[str]) -> str:
        shown = ', '.join(keys[:6]) + (f', ... ({len(keys) - 6} more)' if len(keys) > 6 else '')
        return f'{len(keys)} in {", ".join(sorted({part(k) for k in keys}))}: {shown}'

    lines = [
        'The plain detector checkpoint does not fit this CB detector: it is of another architecture '
        '(backbone depth/width/stages, neck or heads, number of classes).'
    ]
    if mismatched:
        lines.append(f'  different shapes ({listing(mismatched)})')
    if missing:
        lines.append(f'  missing in the checkpoint ({listing(missing)})')
    if unexpected:
        lines.append(f'  no place in the CB detector ({listing(unexpected)})')
    lines.append('Use the CB config made from the same plain config (same backbone, neck and heads; only the '
                 'backbone wrapped in CBNet and the detector type prefixed with CB).')
    return '\n'.join(lines)


def expand_single_state_dict(model: nn.Module,
                             state_dict: Mapping[str, Tensor]) -> Tuple['OrderedDict[str, Tensor]', ExpansionReport]:
    """Expand a plain detector's ``state_dict`` for ``model``, a CB detector; returns ``(state_dict, report)``.

    The result has exactly ``model.state_dict()``'s keys (it loads strictly). Raises ``ValueError`` when the
    checkpoint is not a plain detector's or is of another architecture (the message names the keys).
    """
    source = strip_module_prefix(state_dict)
    if any(k.startswith(OFFICIAL_MARKERS) for k in source):
        raise ValueError('This is an official CBNetV2 checkpoint (backbone.cb_modules.*), not a plain detector: '
                         'convert it with tools/model_converters/cbnetv2_to_cbnet.py.')
    if is_composite_state_dict(source):
        raise ValueError('This checkpoint is already of a composite detector (backbone.branches.* keys): load it '
                         'directly, no expansion needed.')
    if not any(k.startswith('backbone.') for k in source):
        raise ValueError('This checkpoint has no backbone.* keys: it is not a detector checkpoint (a backbone-only '
                         "ImageNet file goes into the inner backbone's init_cfg instead).")
    target = model.state_dict()
    ema_buffers = [k for k in source if _MMCV1_EMA_BUFFER.match(k) and k not in target]
    if ema_buffers:
        source = {k: v for k, v in source.items() if k not in set(ema_buffers)}
    if not is_composite_state_dict(target):
        raise ValueError(f'The model ({type(model).__name__}) has no composite backbone (no backbone.branches.* '
                         'keys): a plain checkpoint loads into it as it is.')

    branch_of = {key: _BRANCH_KEY.match(key) for key in target}
    num_branches = 1 + max(int(m.group(1)) for m in branch_of.values() if m)
    report = ExpansionReport(num_branches=num_branches)
    zero_keys = [k for k in target if k.startswith('backbone.') and not branch_of[k]]
    zero_values = _zero_init_state(model, zero_keys)

    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    used, missing, mismatched = set(), [], []
    for key, value in target.items():
        match = branch_of[key]
        if match:
            src = f'backbone.{match.group(2)}'
        elif key in zero_values:
            out[key] = zero_values[key]
            report.zero_keys.append(key)
            continue
        else:
            src = key
        if src not in source:
            missing.append(key)
            continue
        if tuple(source[src].shape) != tuple(value.shape):
            mismatched.append(f'{src} {tuple(source[src].shape)} vs {key} {tuple(value.shape)}')
            continue
        out[key] = source[src]
        used.add(src)
        if match:
            k = int(match.group(1))
            report.into_branches[k] = report.into_branches.get(k, 0) + 1
        else:
            report.copied += 1
    unexpected = [k for k in source if k not in used]
    if missing or unexpected or mismatched:
        raise ValueError(_architecture_error(missing, unexpected, mismatched))

    plain_backbone = [k[len('backbone.'):] for k in source if k.startswith('backbone.')]
    for k in range(num_branches):
        absent = [name for name in plain_backbone if f'backbone.branches.{k}.{name}' not in target]
        if absent:
            report.pruned[k] = list(dict.fromkeys(map(_module_group, absent)))
    if ema_buffers:
        report.notes.append(f'dropped {len(ema_buffers)} mmcv 1.x EMA buffers (ema_*); the parameters were expanded '
                            '(the EMA weights, in files of mmdet 2.x configs with an EMA hook)')
    identities = _identity_connections(model)
    if identities:
        report.notes.append(f'{identities} composite connections are identities (no weights: the official Swin '
                            'layout, where widths match): the expanded detector adds those stage outputs and does '
                            'NOT start with the plain detector\'s predictions.')
    out._metadata = getattr(target, '_metadata', OrderedDict())  # module versions of the CB model
    return out, report


def expanded_meta(src: str, meta: dict, report: ExpansionReport) -> dict:
    """Plain-type meta for the expanded file: its origin, what was dropped, and the source's dataset_meta
    (class names and palette, which ``DetInferencer`` and the visualiser read; ``CLASSES`` of mmdet 2.x)."""
    new = dict(
        expanded_from=str(src),
        converter='cbnet.converters.single_to_cb',
        dropped={
            str(k): list(v)
            for k, v in report.pruned.items()
        })
    dataset_meta = meta.get('dataset_meta')
    classes = meta.get('CLASSES')  # mmdet 2.x files (the 2.x model zoo that mmdet 3 still links)
    if isinstance(dataset_meta, dict):
        new['dataset_meta'] = dataset_meta
    elif isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        new['dataset_meta'] = dict(classes=tuple(classes))
    for name in ('mmdet_version', 'epoch', 'iter'):
        if isinstance(meta.get(name), (str, int)):
            new[f'source_{name}'] = meta[name]
    return new


def expand_checkpoint(src: str, dst: str, config) -> ExpansionReport:
    """Write ``dst``: the plain detector checkpoint ``src`` expanded for ``config``'s CB detector.

    The result is loaded strictly into the model of ``config`` (built without pretrained weights) before it is
    written; nothing is written on any error.
    """
    state_dict, meta = load_state_dict_file(src)
    model = build_target_model(config)
    expanded, report = expand_single_state_dict(model, state_dict)
    model.load_state_dict(expanded, strict=True)
    report.notes.append(f'verified: loads strictly into the model of {config}')
    torch.save(dict(state_dict=expanded, meta=expanded_meta(src, meta, report)), dst)
    return report


def describe_expansion(report: ExpansionReport, source: Optional[str] = None) -> str:
    """One log line for ``load_from``: what was expanded."""
    what = f'{source!r} is' if source else 'The checkpoint is'
    pruned = sum(len(v) for v in report.pruned.values())
    return (f'{what} a plain (single-backbone) detector checkpoint: expanded for the composite backbone '
            f'(backbone copied into all {report.num_branches} branches, {len(report.zero_keys)} composite-'
            f'connection keys at zero, {report.copied} neck/head keys unchanged, {pruned} pruned module(s) '
            'dropped). To keep a file of it: tools/model_converters/single_to_cb.py.')
