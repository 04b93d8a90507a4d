"""Checks that turn silent misconfigurations into errors that say what to change.

* :func:`check_neck_matches_backbone`: the neck's ``in_channels`` against what a composite backbone returns
  (today the mismatch surfaces as a conv shape error in the first forward pass, or a bare ``AssertionError``).
* :func:`check_checkpoint_fits_model`: ``load_from`` (and ``tools/test.py CONFIG CKPT``) loads non-strictly, so
  an official CBNetV2 checkpoint (``backbone.cb_modules.*``) or one of another architecture would load a few
  matching tensors and train or evaluate a mostly random model, logging just a warning. Both become errors:
  the backbone and the neck/heads must each get most of their parameter values from the file. (A plain
  detector checkpoint of the matching architecture is expanded for the composite backbone instead:
  ``cbnet.converters.single_to_cb``.)
* :func:`registry_hint`: what to add to the config when mmengine says ``X is not in the mmdet::model registry``.
"""
import difflib
import re
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

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


#: Share of a part's parameter values a checkpoint must provide. The backbone never changes shape when a
#: detector is fine-tuned, so anything short of nearly all of it is another depth, width or family (a ResNet-50
#: file gives a ResNet-18 half its values: every block's 3x3 conv has the same shape). The heads legitimately
#: differ in their classifiers when fine-tuning to other classes, so half of their values must load.
MIN_COVERAGE = {'backbone': 0.9, 'neck and heads': 0.5}


class Misfit(NamedTuple):
    key: str
    #: None: the checkpoint lacks the key
    checkpoint_shape: Optional[Tuple[int, ...]]
    model_shape: Tuple[int, ...]


class Coverage(NamedTuple):
    """How much of one part of a model (``backbone``, ``neck and heads``) a checkpoint provides.

    Only parameters count (floating tensors that train), weighted by their number of values: buffers such as
    BN's ``num_batches_tracked`` match between any two architectures of a family and prove nothing.
    """

    part: str
    tensors: int
    values: int
    loaded_tensors: int
    loaded_values: int
    #: the parameters that do not load (missing or of another shape), in the model's order
    misfits: List[Misfit]

    @property
    def fraction(self) -> float:
        return self.loaded_values / self.values if self.values else 1.0

    @property
    def names_found(self) -> float:
        """Share of the part's parameter names the checkpoint has, whatever their shapes."""
        missing = sum(1 for m in self.misfits if m.checkpoint_shape is None)
        return 1 - missing / self.tensors if self.tensors else 1.0

    def describe(self) -> str:
        return (f'{self.loaded_tensors} of the {self.tensors} parameter tensors of the {self.part} '
                f'({100 * self.fraction:.1f}% of {self.values / 1e6:.2f}M values)')

    def listing(self, limit: int = 6) -> str:
        """The keys that do not fit, with both shapes, one per line."""
        lines = [
            f'    {m.key}: ' + ('not in the checkpoint' if m.checkpoint_shape is None else
                                f'checkpoint {m.checkpoint_shape}, model {m.model_shape}') for m in self.misfits[:limit]
        ]
        hidden = len(self.misfits) - len(lines)
        return '\n'.join(lines + ([f'    ... ({hidden} more)'] if hidden > 0 else []))


def _part(name: str) -> str:
    return 'backbone' if name.startswith('backbone.') else 'neck and heads'


def parameter_coverage(model: nn.Module, state_dict: Mapping) -> Dict[str, Coverage]:
    """Per part of ``model``, how many of its parameters ``state_dict`` provides with the right shape."""
    keys = strip_module_prefix(state_dict)
    found: Dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.is_floating_point() or param.numel() == 0:
            continue
        part = found.setdefault(_part(name), dict(tensors=0, values=0, loaded_tensors=0, loaded_values=0, misfits=[]))
        part['tensors'] += 1
        part['values'] += param.numel()
        given = keys.get(name)
        if given is None or not hasattr(given, 'shape'):
            part['misfits'].append(Misfit(name, None, tuple(param.shape)))
        elif tuple(given.shape) != tuple(param.shape):
            part['misfits'].append(Misfit(name, tuple(given.shape), tuple(param.shape)))
        else:
            part['loaded_tensors'] += 1
            part['loaded_values'] += param.numel()
    return {name: Coverage(name, **counts) for name, counts in found.items()}


def check_checkpoint_fits_model(model: nn.Module,
                                state_dict: Mapping,
                                source: Optional[str] = None,
                                require_backbone: bool = True,
                                require_heads: bool = True) -> None:
    """Raise ``ValueError`` if ``state_dict`` would leave the backbone, or the neck and heads, mostly random.

    A part counts as provided when the checkpoint has at least its :data:`MIN_COVERAGE` share of the part's
    parameter values under the same names and shapes (fine-tuning from a detector with another number of
    classes still passes: only the classifiers differ). The message lists the keys and shapes that do not fit
    and the fix.

    Args:
        model: the (unwrapped) detector the checkpoint is about to be loaded into, non-strictly.
        state_dict: the checkpoint's ``state_dict`` (``module.`` prefixes are ignored).
        source: the file name, for the message.
        require_backbone: refuse a checkpoint that does not provide the backbone (official CBNetV2 checkpoints
            are refused either way). False: the backbone comes from its ``init_cfg``.
        require_heads: refuse a checkpoint that does not provide the neck and heads. False: only the backbone
            is taken from it.
    """
    what = f'The checkpoint {source!r}' if source else 'The checkpoint'
    keys = strip_module_prefix(state_dict)
    if any(k.startswith(OFFICIAL_MARKERS) for k in keys):
        raise ValueError(
            f'{what} is an official CBNetV2 (mmdet 2.x) checkpoint: its backbone keys (backbone.cb_modules.*, '
            'backbone.cb_linears.*) exist in no cbnet model, and load_from would load only the neck and heads '
            f'and train or test with a random backbone. Convert it first: `python {CONVERTER} SRC DST '
            '--config YOUR_CONFIG`, then use load_from=DST (or `tools/test.py CONFIG DST`).')
    coverage = parameter_coverage(model, keys)
    backbone = coverage.get('backbone')
    if require_backbone and backbone is not None and backbone.fraction < MIN_COVERAGE['backbone']:
        raise ValueError(_backbone_refusal(what, model, keys, backbone))
    rest = coverage.get('neck and heads')
    if require_heads and rest is not None and rest.fraction < MIN_COVERAGE['neck and heads']:
        raise ValueError(
            f'{what} provides only {rest.describe()}: the model would train or test with random heads. It is a '
            'checkpoint of another detector (another neck, head or detector type). Keys and shapes that do not '
            f'fit:\n{rest.listing()}\nUse the checkpoint trained with this config (or the config it was trained '
            'with). To take only its backbone and train the neck and heads from scratch: custom_hooks=['
            "dict(type='CheckpointCompatibilityHook', require_heads=False)].")


def _backbone_refusal(what: str, model: nn.Module, keys: Mapping, backbone: Coverage) -> str:
    composite = any(k.startswith('backbone.branches.') for k in model.state_dict())
    ckpt_backbone = [k for k in keys if k.startswith('backbone.')]
    target = 'the composite backbone (backbone.branches.*)' if composite else 'the backbone'
    message = (f'{what} provides only {backbone.describe()}: load_from would train or test {target} from mostly random '
               'weights. ')
    if composite and ckpt_backbone and not any(k.startswith('backbone.branches.') for k in ckpt_backbone):
        message += ('Its backbone keys look like a single-backbone model '
                    f'({_summary(ckpt_backbone)}). To start every branch from that detector, expand it: '
                    f'`python {SINGLE_TO_CB} SRC DST --config YOUR_CONFIG` (cbnet\'s CheckpointCompatibilityHook, '
                    'which cbnet\'s tools add, does this in memory for load_from).')
    elif ckpt_backbone:
        kind = 'another depth or width of this family' if backbone.names_found >= 0.5 else 'another architecture'
        message += (f'It is for {kind}. Keys and shapes that do not fit:\n{backbone.listing()}\nUse the '
                    'checkpoint trained with this config, or the config that matches the checkpoint (the backbone '
                    'type, depth and width it was trained with).')
    else:
        message += (f'It has no backbone.* keys at all (keys look like {_summary(sorted(keys))}): it is not a '
                    'detector checkpoint. A backbone-only (ImageNet) checkpoint goes into the backbone init_cfg '
                    "(dict(type='Pretrained', checkpoint=...)), not load_from.")
    return message + (' (If you do mean to keep the backbone of its init_cfg and take only the neck and heads '
                      "from this file: custom_hooks=[dict(type='CheckpointCompatibilityHook', "
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
