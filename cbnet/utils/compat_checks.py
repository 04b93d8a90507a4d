"""Checks that turn silent misconfigurations into errors that say what to change.

* :func:`check_neck_matches_backbone`: the neck's ``in_channels`` against what a composite backbone returns
  (today the mismatch surfaces as a conv shape error in the first forward pass, or a bare ``AssertionError``).
* :func:`check_checkpoint_fits_model`: ``load_from`` loads non-strictly, so an official CBNetV2 checkpoint
  (``backbone.cb_modules.*``) or one of another architecture would load only the heads and train with a random
  backbone, logging just a warning. Both become errors. (A plain detector checkpoint of the matching
  architecture is expanded for the composite backbone instead: ``cbnet.converters.single_to_cb``.)
* :func:`registry_hint`: what to add to the config when mmengine says ``X is not in the mmdet::model registry``.
"""
import difflib
import re
from typing import Iterable, List, Mapping, Optional, Sequence

import torch.nn as nn

CONVERTER = 'tools/model_converters/cbnetv2_to_cbnet.py'
CUSTOM_IMPORTS = "custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)"
OFFICIAL_MARKERS = ('backbone.cb_modules.', 'backbone.cb_linears.')
SINGLE_TO_CB = 'tools/model_converters/single_to_cb.py'
_NOT_REGISTERED = re.compile(r'`?(?P<name>[\w.]+)`? is not in the (?P<registry>[\w.]+::[\w.]+|[\w.]+) registry')


def backbone_out_channels(backbone: nn.Module) -> Optional[List[int]]:
    """Channels of the feature maps a composite backbone returns, or None if unknown (plain backbones)."""
    widths = getattr(backbone, 'stage_out_channels', None)
    out_indices = getattr(backbone, 'out_indices', None)
    if widths is None or out_indices is None:
        return None
    return [int(widths[i]) for i in out_indices]


def check_neck_matches_backbone(backbone: nn.Module, neck: Optional[nn.Module]) -> None:
    """Raise ``ValueError`` if ``neck.in_channels`` differs from the backbone's output channels.

    Only composite backbones know their widths without a forward pass (CBNet measures them when built); for
    other backbones, or necks without a list ``in_channels``, this does nothing. A neck that reads only the last
    map (``backbone_channel``, ViTDet's simple pyramid: its ``in_channels`` are its own levels) is checked there.
    """
    expected = backbone_out_channels(backbone)
    last_only = getattr(neck, 'backbone_channel', None) if neck is not None else None
    if expected is not None and isinstance(last_only, int):  # reads the last map only (ViTDet's pyramid)
        if last_only != expected[-1]:
            raise ValueError(f'The neck ({type(neck).__name__}) reads the backbone\'s last map with '
                             f'backbone_channel={last_only}, but the backbone returns {expected[-1]} channels there: '
                             f'set backbone_channel={expected[-1]}.')
        return
    given = getattr(neck, 'in_channels', None) if neck is not None else None
    if expected is None or not isinstance(given, (list, tuple)):
        return
    given = [int(c) for c in given]
    if given == expected:
        return
    inner = type(backbone.branches[0]).__name__ if hasattr(backbone, 'branches') else type(backbone).__name__
    widths = list(backbone.stage_out_channels)
    out_indices = tuple(backbone.out_indices)
    what = (f'{len(given)} inputs but the backbone returns {len(expected)} feature maps'
            if len(given) != len(expected) else 'different channels')
    raise ValueError(
        f'The neck ({type(neck).__name__}) expects in_channels={given}: {what}. The backbone '
        f'({type(backbone).__name__} of {inner}, out_indices={out_indices}) returns channels {expected} '
        f'(its stages have {widths}). Set neck in_channels={expected}, or change the backbone out_indices so '
        'that they select the stages the neck expects.')


def _strip(key: str, prefixes: Iterable[str] = ('module.', )) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def strip_module_prefix(state_dict: Mapping) -> dict:
    """The state dict without the ``module.`` prefix of (DDP-)wrapped models, as mmengine loads it."""
    return {_strip(k): v for k, v in state_dict.items()}


def _summary(names: Sequence[str], limit: int = 4) -> str:
    return ', '.join(names[:limit]) + (f', ... ({len(names) - limit} more)' if len(names) > limit else '')


def check_checkpoint_fits_model(model: nn.Module,
                                state_dict: Mapping,
                                source: Optional[str] = None,
                                require_backbone: bool = True) -> None:
    """Raise ``ValueError`` if ``state_dict`` would leave the model's backbone entirely untouched.

    Args:
        model: the (unwrapped) detector the checkpoint is about to be loaded into, non-strictly.
        state_dict: the checkpoint's ``state_dict`` (``module.`` prefixes are ignored).
        source: the file name, for the message.
        require_backbone: also refuse checkpoints without any backbone weight of the model (official CBNetV2
            checkpoints are refused either way).
    """
    what = f'The checkpoint {source!r}' if source else 'The checkpoint'
    keys = strip_module_prefix(state_dict)
    if any(k.startswith(OFFICIAL_MARKERS) for k in keys):
        raise ValueError(
            f'{what} is an official CBNetV2 (mmdet 2.x) checkpoint: its backbone keys (backbone.cb_modules.*, '
            'backbone.cb_linears.*) exist in no cbnet model, and load_from would load only the neck and heads '
            f'and train or test with a random backbone. Convert it first: `python {CONVERTER} SRC DST '
            '--config YOUR_CONFIG`, then use load_from=DST (or `tools/test.py CONFIG DST`).')
    model_keys = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    if not model_keys or not require_backbone:
        return
    loaded = [
        k for k, v in model_keys.items()
        if k in keys and hasattr(keys[k], 'shape') and tuple(keys[k].shape) == tuple(v.shape)
    ]
    if loaded:
        return
    composite = any(k.startswith('backbone.branches.') for k in model_keys)
    ckpt_backbone = [k for k in keys if k.startswith('backbone.')]
    target = 'any branch of the composite backbone (backbone.branches.*)' if composite else 'the backbone'
    message = (f'{what} provides none of the {len(model_keys)} weights of {target}: load_from would train or '
               'test with a random backbone. ')
    if composite and ckpt_backbone and not any(k.startswith('backbone.branches.') for k in ckpt_backbone):
        message += ('Its backbone keys look like a single-backbone model '
                    f'({_summary(ckpt_backbone)}). To start every branch from that detector, expand it: '
                    f'`python {SINGLE_TO_CB} SRC DST --config YOUR_CONFIG` (cbnet\'s CheckpointCompatibilityHook, '
                    'which cbnet\'s tools add, does this in memory for load_from).')
    elif ckpt_backbone:
        mismatched = [k for k in ckpt_backbone if k in model_keys]
        message += (f'Its backbone weights have other shapes ({_summary(mismatched)}): it is for another depth '
                    'or width.'
                    if mismatched else f'Its backbone keys ({_summary(ckpt_backbone)}) belong to another architecture.')
    else:
        message += (f'It has no backbone.* keys at all (keys look like {_summary(sorted(keys))}): it is not a '
                    'detector checkpoint. A backbone-only (ImageNet) checkpoint goes into the backbone init_cfg '
                    "(dict(type='Pretrained', checkpoint=...)), not load_from.")
    raise ValueError(message + ' (If you do mean to keep the backbone of its init_cfg and take only the neck and '
                     "heads from this file: custom_hooks=[dict(type='CheckpointCompatibilityHook', "
                     'require_backbone=False)].)')


def registry_hint(error: BaseException, registry_names: Optional[Iterable[str]] = None) -> Optional[str]:
    """The fix for mmengine's ``X is not in the mmdet::model registry`` KeyError, or None for other errors."""
    match = _NOT_REGISTERED.search(str(error))
    if match is None:
        return None
    name = match.group('name')
    lines = []
    if name.startswith('CB'):
        lines.append(f'{name} is a cbnet type: cbnet registers its modules when it is imported. Add\n    '
                     f'{CUSTOM_IMPORTS}\nto the config (mmdet\'s own tools and scripts that build models from '
                     'configs need it; cbnet\'s tools/train.py and tools/test.py import cbnet themselves), and '
                     'check that `python -c "import cbnet"` works (pip install -e . in the cbnet repo).')
    if registry_names is not None:
        close = difflib.get_close_matches(name, list(registry_names), n=3, cutoff=0.75)
        if close and name not in close:
            lines.append(f'Did you mean: {", ".join(close)}?')
    return '\n'.join(lines) or None


def config_imports_cbnet(cfg: Mapping) -> bool:
    """Whether the config imports cbnet itself (so that mmdet's tools can build it too)."""
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    return any(i == 'cbnet' or str(i).startswith('cbnet.') for i in imports)
