"""Official CBNetV2 checkpoints (VDIGPKU/CBNetV2, mmdet 2.14) -> this repo's CB models (mmdet 3.x).

Why a converter: the released CBNetV2 detectors are the only way to reproduce the paper's numbers without
weeks of training, and their keys follow the official code's module layout, not ours.

Key mapping (official -> here; ``K = 2`` in every official file, ``k`` = branch, 0 = assisting, 1 = lead):

- ``backbone.cb_modules.{k}.<inner>`` -> ``backbone.branches.{k}.<inner>``.
  ResNet family (ResNet/ResNeXt/Res2Net): mmdet ResNet keys, unchanged. The lead's stem keys (the official
  lead keeps an unused ``bn1``; ``conv1``/``stem`` if present) are dropped: our lead has no stem, it starts from
  the assisting branch's features.
  Swin: the original Swin layout is turned into mmdet's with mmdet's own ``swin_converter`` (renames and the
  patch-merging channel re-ordering), per branch. The lead has no ``patch_embed``; a lead
  ``absolute_pos_embed`` (``ape=True``, not used by any released model) and ``attn_mask`` buffers are dropped.
- ``backbone.cb_linears.{i}.{j}`` (feeds the input of lead stage ``i`` from the assisting output of stage
  ``i + j``, 0-based stages) -> ``backbone.composition.connections.0.into{i}_from{i+j}``:
  ResNet ``.0.weight`` (1x1 conv, no bias) -> ``.conv.weight`` and ``.1.*`` (BN) -> ``.norm.*``;
  Swin ``.{weight,bias}`` -> ``.conv.{weight,bias}`` (identity connections have no keys on either side).
- ``neck.*``, ``rpn_head.*``, ``roi_head.*`` (incl. ``roi_head.semantic_head.*``): unchanged. mmdet 2.14 and
  3.3 use the same parameter names for FPN, RPNHead, Shared2FC/Shared4Conv1FC (ConvFC) bbox heads,
  FCNMaskHead, HTCMaskHead (``conv_res``) and FusedSemanticHead; their losses (``loss_*``/``criterion``) have
  no parameters in either version. mmdet 3's ``TwoStageDetector._load_from_state_dict`` only renames
  ``bbox_head.*`` to ``rpn_head.*`` when a checkpoint has no ``rpn_head`` keys (RPN-only files); the released
  two-stage files have ``rpn_head`` keys, so it does nothing here.

Given the target model (``convert_checkpoint(..., config=...)``), stages the model does not build in a
non-first branch (a lead that stops at its last ``out_indices`` stage) and connections into them are dropped
too; then the weights must load with no missing and no unexpected key. Everything dropped is reported.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .files import build_target_model, load_state_dict_file

RESNET = 'resnet'
SWIN = 'swin'
FAMILIES = (RESNET, SWIN)

_MODULE_KEY = re.compile(r'^backbone\.cb_modules\.(\d+)\.(.+)$')
_LINEAR_KEY = re.compile(r'^backbone\.cb_linears\.(\d+)\.(\d+)\.(.+)$')
_RESNET_LINEAR_PART = re.compile(r'^([01])\.(.+)$')
_SWIN_LINEAR_PART = re.compile(r'^(weight|bias)$')
_RESNET_STEM = ('conv1.', 'bn1.', 'stem.')
_SWIN_STEM = ('patch_embed.', 'absolute_pos_embed')

#: what mmdet 2.14 -> 3.3 changes in the detector heads of the released models (see the module docstring)
HEAD_NOTE = ('heads/neck: mmdet 2.14 and 3.3 use the same parameter names for FPN, RPNHead, ConvFC bbox heads '
             '(Shared2FC, Shared4Conv1FC), FCNMaskHead, HTCMaskHead and FusedSemanticHead: copied unchanged')


@dataclass
class ConversionReport:
    """What the conversion did: the family found, how many keys were renamed or kept, what was dropped."""

    family: str
    num_branches: int
    renamed: int = 0
    unchanged: int = 0
    dropped: List[Tuple[str, str]] = field(default_factory=list)  # (official key, why)
    notes: List[str] = field(default_factory=list)

    def drop(self, key: str, why: str) -> None:
        self.dropped.append((key, why))

    def summary(self) -> str:
        lines = [
            f'official CBNetV2 {self.family} checkpoint, {self.num_branches} branches: '
            f'{self.renamed} keys renamed, {self.unchanged} kept, {len(self.dropped)} dropped'
        ]
        lines += [f'  dropped {key}: {why}' for key, why in self.dropped]
        lines += [f'  note: {note}' for note in self.notes]
        return '\n'.join(lines)


# -- detection -------------------------------------------------------------------------------------------------
def detect_family(state_dict: Dict[str, Tensor]) -> str:
    """``'resnet'`` (ResNet/ResNeXt/Res2Net) or ``'swin'``, from the keys; refuses other files clearly."""
    module_keys = [m.group(2) for m in map(_MODULE_KEY.match, state_dict) if m]
    if not module_keys:
        if any(k.startswith(('backbone.branches.', 'backbone.composition.')) for k in state_dict):
            raise ValueError('This checkpoint is already in cbnet format (backbone.branches.* / '
                             'backbone.composition.* keys): load it directly with load_from, no conversion needed.')
        backbone_keys = sorted(k for k in state_dict if k.startswith('backbone.'))[:3]
        raise ValueError('Not an official CBNetV2 checkpoint: it has no backbone.cb_modules.* keys '
                         f'(first backbone keys: {backbone_keys or "none"}). A plain (single-backbone) mmdet detector '
                         'checkpoint is expanded for a CB detector by tools/model_converters/single_to_cb.py (or '
                         "as load_from); ImageNet weights go into the inner backbone's init_cfg.")
    is_swin = any(k.startswith(('layers.', 'patch_embed.')) for k in module_keys)
    is_resnet = any(re.match(r'^(layer\d+|conv1|stem)\.', k) for k in module_keys)
    if is_swin == is_resnet:
        raise ValueError('Cannot tell the backbone family of this CBNetV2 checkpoint: expected ResNet-style '
                         'cb_modules keys (layer1..4, conv1/stem) or original-Swin ones (layers.N, patch_embed), '
                         f'found e.g. {module_keys[:3]}.')
    return SWIN if is_swin else RESNET


# -- conversion ------------------------------------------------------------------------------------------------
def convert_cbnetv2_state_dict(state_dict: Dict[str, Tensor],
                               family: Optional[str] = None) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Convert an official CBNetV2 detector state dict; returns ``(new_state_dict, report)``.

    Args:
        state_dict: the ``state_dict`` of an official checkpoint (``backbone.cb_modules.*`` keys).
        family: ``'resnet'`` or ``'swin'``; detected from the keys when None (given, it is checked).
    """
    detected = detect_family(state_dict)
    if family is not None and family != detected:
        raise ValueError(f'family={family!r} was requested but the checkpoint is a {detected} CBNetV2 checkpoint.')
    branches: Dict[int, 'OrderedDict[str, Tensor]'] = {}
    for key, value in state_dict.items():
        m = _MODULE_KEY.match(key)
        if m:
            branches.setdefault(int(m.group(1)), OrderedDict())[m.group(2)] = value
    report = ConversionReport(family=detected, num_branches=len(branches))
    if sorted(branches) != [0, 1]:
        raise ValueError(f'Official CBNetV2 checkpoints have backbone.cb_modules.0 (assisting) and .1 (lead); '
                         f'this one has cb_modules {sorted(branches)}: it is incomplete or not an official file.')

    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for k, branch in branches.items():
        convert_branch = _convert_swin_branch if detected == SWIN else _convert_resnet_branch
        for name, value in convert_branch(k, branch, report).items():
            out[f'backbone.branches.{k}.{name}'] = value

    linear_keys = [key for key in state_dict if key.startswith('backbone.cb_linears.')]
    for key in linear_keys:
        out[_convert_linear_key(key, detected)] = state_dict[key]
        report.renamed += 1

    for key, value in state_dict.items():
        if _MODULE_KEY.match(key) or key.startswith('backbone.cb_linears.'):
            continue
        if key.startswith('backbone.'):
            raise ValueError(f'Unknown backbone key {key!r} in an official CBNetV2 checkpoint (expected only '
                             'backbone.cb_modules.* and backbone.cb_linears.*): this file is not in the layout '
                             'the converter knows.')
        out[key] = value
        report.unchanged += 1
    report.notes.append(HEAD_NOTE)
    return out, report


def _convert_resnet_branch(k: int, branch: Dict[str, Tensor], report: ConversionReport) -> Dict[str, Tensor]:
    out = OrderedDict()
    for name, value in branch.items():
        if k > 0 and name.startswith(_RESNET_STEM):
            report.drop(
                f'backbone.cb_modules.{k}.{name}',
                'stem of a non-first branch: it starts from the assisting branch features (the official '
                'lead keeps an unused bn1)')
            continue
        out[name] = value
        report.renamed += 1
    return out


def _convert_swin_branch(k: int, branch: Dict[str, Tensor], report: ConversionReport) -> Dict[str, Tensor]:
    from mmdet.models.backbones.swin import swin_converter

    kept = OrderedDict()
    for name, value in branch.items():
        full = f'backbone.cb_modules.{k}.{name}'
        if name.startswith('head.'):
            report.drop(full, 'classification head of the original Swin, not part of a detection backbone')
        elif name.endswith('attn_mask'):
            report.drop(full, 'attention mask buffer, recomputed from the input size by mmdet Swin')
        elif k > 0 and name.startswith(_SWIN_STEM):
            report.drop(full, 'stem of a non-first branch: it starts from the assisting patch embedding')
        else:
            kept[name] = value
    converted = swin_converter(kept)  # mmdet's own renames + patch-merging re-ordering; adds 'backbone.'
    report.renamed += len(converted)
    return OrderedDict((key[len('backbone.'):], value) for key, value in converted.items())


def _convert_linear_key(key: str, family: str) -> str:
    """Official Dual models: every connection belongs to the only link (assisting -> lead), link 0."""
    m = _LINEAR_KEY.match(key)
    if not m:
        raise ValueError(f'Unexpected composite-connection key {key!r}: official keys are '
                         'backbone.cb_linears.{i}.{j}.<param>.')
    target, offset, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    prefix = f'backbone.composition.connections.0.into{target}_from{target + offset}'
    if family == RESNET:
        part = _RESNET_LINEAR_PART.match(rest)
        if part is None:
            raise ValueError(f'{key!r}: a ResNet-family CBNetV2 checkpoint has conv+BN connections '
                             '(cb_linears.{i}.{j}.0.weight and .1.<BN param>); this one looks like a Swin '
                             'connection. The backbone (cb_modules) and cb_linears layouts do not match.')
        return f'{prefix}.{"conv" if part.group(1) == "0" else "norm"}.{part.group(2)}'
    if _SWIN_LINEAR_PART.match(rest) is None:
        raise ValueError(f'{key!r}: a Swin CBNetV2 checkpoint has 1x1 conv connections with bias '
                         '(cb_linears.{i}.{j}.weight/.bias) and no norm; this one looks like a ResNet-family '
                         'conv+BN connection. The backbone (cb_modules) and cb_linears layouts do not match.')
    return f'{prefix}.conv.{rest}'


# -- files and verification -------------------------------------------------------------------------------------
#: an official file is read like any checkpoint (a dict with ``state_dict``, or a bare state dict)
load_official_checkpoint = load_state_dict_file


def converted_meta(src: str, meta: dict, report: ConversionReport) -> dict:
    """Plain-type meta for the converted file: where it comes from, what was dropped, the classes."""
    new = dict(
        converted_from=str(src),
        converter='cbnet.converters.cbnetv2',
        family=report.family,
        dropped=[f'{key}: {why}' for key, why in report.dropped])
    for name in ('mmdet_version', 'mmcv_version', 'epoch', 'iter'):
        if isinstance(meta.get(name), (str, int)):
            new[f'official_{name}'] = meta[name]
    classes = meta.get('CLASSES')
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        new['dataset_meta'] = dict(classes=tuple(classes))
    return new


def verify_against_model(state_dict: Dict[str, Tensor], model: torch.nn.Module) -> Tuple[List[str], List[str]]:
    """Load ``state_dict`` strictly into ``model``; returns ``(missing, unexpected)`` (both empty on success).

    Shape mismatches raise a ValueError naming the parameters.
    """
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:
        raise ValueError(f'The converted weights do not fit the model ({e}). Check that the config is the one of '
                         'this checkpoint (family, depth, widths, heads).') from e
    return list(result.missing_keys), list(result.unexpected_keys)


def drop_pruned_stages(state_dict: Dict[str, Tensor], model: torch.nn.Module,
                       report: ConversionReport) -> 'OrderedDict[str, Tensor]':
    """Drop what the target model pruned: stages of non-first branches it does not build (e.g. a lead that
    stops at its last ``out_indices`` stage) and the connections into them. Keys of modules the model does
    build are kept, so that strict loading still reports real mismatches."""
    model_keys = list(model.state_dict())
    patterns = (
        (re.compile(r'^(backbone\.branches\.([1-9]\d*)\.(stages\.\d+|[^.]+))\.'),
         'the target model does not build {2} in branch {1}'),
        (re.compile(r'^(backbone\.composition\.connections\.(\d+)\.into(\d+))_from\d+\.'),
         'stage {2} of branch {1}+1 is pruned in the target model: nothing to feed'),
    )
    out = OrderedDict()
    for key, value in state_dict.items():
        if key not in model_keys:
            for pattern, why in patterns:
                m = pattern.match(key)
                if m and not any(k.startswith(m.group(1) + ('.' if 'branches' in key else '_')) for k in model_keys):
                    report.drop(key, why.format(*m.groups()))
                    report.renamed -= 1
                    break
            else:
                out[key] = value
            continue
        out[key] = value
    return out


def convert_checkpoint(src: str, dst: str, config=None) -> ConversionReport:
    """Convert the official file ``src`` into ``dst`` (``{'state_dict', 'meta'}``, loadable by ``load_from``).

    With ``config`` (path or Config of the matching cbnet config) the result is loaded into that model first
    and any missing or unexpected key is an error (nothing is written then).
    """
    state_dict, meta = load_official_checkpoint(src)
    new_state, report = convert_cbnetv2_state_dict(state_dict)
    if config is not None:
        model = build_target_model(config)
        new_state = drop_pruned_stages(new_state, model, report)
        missing, unexpected = verify_against_model(new_state, model)
        if missing or unexpected:
            raise ValueError(f'The converted checkpoint does not match {config}:\n  missing keys ({len(missing)}): '
                             f'{missing}\n  unexpected keys ({len(unexpected)}): {unexpected}\n'
                             'Check that the config is the one of this checkpoint (family, depth, widths, '
                             'heads, out_indices).')
        report.notes.append(f'verified: loads into {config} with no missing and no unexpected keys')
    torch.save(dict(state_dict=new_state, meta=converted_meta(src, meta, report)), dst)
    return report
