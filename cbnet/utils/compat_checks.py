"""Checks that turn silent misconfigurations into errors that say what to change.

* :func:`check_neck_matches_backbone`: the neck's ``in_channels`` against what a composite backbone returns
  (today the mismatch surfaces as a conv shape error in the first forward pass, or a bare ``AssertionError``).
* :func:`check_pyramid_strides`: the strides of the feature maps the neck outputs (backbone strides of the
  ``out_indices``, the neck's ``start_level``, ``num_outs`` and extra levels) against the strides the heads
  declare (anchor/point generators, RoI extractors' ``featmap_strides``). A mismatch trains without any error:
  anchors of the wrong size, RoIs pooled from the wrong level.
* :func:`check_checkpoint_fits_model`: ``load_from`` (and ``tools/test.py CONFIG CKPT``) loads non-strictly, so
  an official CBNetV2 checkpoint (``backbone.cb_modules.*``) or one of another architecture would load a few
  matching tensors and train or evaluate a mostly random model, logging just a warning. Both become errors:
  the backbone and the neck/heads must each get most of their parameter values from the file. (A plain
  detector checkpoint of the matching architecture is expanded for the composite backbone instead:
  ``cbnet.converters.single_to_cb``.)
* :func:`registry_hint`: what to add to the config when mmengine says ``X is not in the mmdet::model registry``.
"""
import difflib
import inspect
import re
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch.nn as nn

CONVERTER = 'tools/model_converters/cbnetv2_to_cbnet.py'
CUSTOM_IMPORTS = "custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)"
OFFICIAL_MARKERS = ('backbone.cb_modules.', 'backbone.cb_linears.')
SINGLE_TO_CB = 'tools/model_converters/single_to_cb.py'
CBNET_MARKER_TYPE = 'CBNet'  # in the model registry once cbnet is imported
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


def backbone_out_strides(backbone: nn.Module) -> Optional[List[int]]:
    """Strides of the feature maps a composite backbone returns (measured when it is built), or None."""
    strides = getattr(backbone, 'stage_strides', None)
    out_indices = getattr(backbone, 'out_indices', None)
    if strides is None or out_indices is None:
        return None
    return [int(strides[i]) for i in out_indices]


def _fpn_strides(in_strides: Sequence[int], start_level: int, end_level: int, num_outs: int) -> List[int]:
    """mmdet's FPN: inputs ``start_level..end_level-1``, then ``num_outs - used`` extra levels of stride 2."""
    used = list(in_strides[start_level:end_level])
    return used + [used[-1] * 2**(k + 1) for k in range(num_outs - len(used))] if used else []


def neck_output_strides(neck: Optional[nn.Module], in_strides: Sequence[int]) -> Optional[List[int]]:
    """The strides of the maps ``neck`` outputs for inputs at ``in_strides``; None for necks without a rule.

    Rules: FPN and its subclasses (PAFPN, ...), ChannelMapper (its extra convs have stride 2), and the PAFPNs
    of YOLOX/RTMDet (one output per input). No neck: the heads read the backbone.
    """
    from mmdet.models.necks import FPN, YOLOXPAFPN, ChannelMapper, CSPNeXtPAFPN
    in_strides = list(in_strides)
    if neck is None:
        return in_strides
    if isinstance(neck, FPN):
        return _fpn_strides(in_strides, neck.start_level, neck.backbone_end_level, neck.num_outs)
    if isinstance(neck, ChannelMapper):
        extra = len(neck.extra_convs) if neck.extra_convs is not None else 0
        return in_strides + [in_strides[-1] * 2**(k + 1) for k in range(extra)]
    if isinstance(neck, (YOLOXPAFPN, CSPNeXtPAFPN)):
        return in_strides
    return None


def _generator_strides(head: nn.Module) -> Optional[List[int]]:
    generator = getattr(head, 'prior_generator', None)
    strides = getattr(generator, 'strides', None)
    if not strides:
        return None
    return [_number(s[0] if isinstance(s, (tuple, list)) else s) for s in strides]


def _number(stride) -> float:
    """A stride as declared: YOLACT's anchor strides are fractions (550 / 69 = 7.97...)."""
    value = float(stride)
    return int(value) if value.is_integer() else round(value, 2)


def _head_stride_key(head: nn.Module, prefix: str) -> str:
    """The config key that sets a dense head's strides (anchor heads: anchor_generator; point heads: strides)."""
    params = set()
    for cls in type(head).__mro__:  # subclasses pass most arguments on through **kwargs (RPNHead)
        if '__init__' in vars(cls):
            params.update(inspect.signature(cls.__init__).parameters)
    if 'anchor_generator' in params:
        return f'{prefix}.anchor_generator.strides'
    if 'prior_generator' in params:
        return f'{prefix}.prior_generator.strides'
    return f'{prefix}.strides'


def declared_strides(detector: nn.Module) -> List[Tuple[str, str, List[int], bool]]:
    """What the heads assume: ``(what, config key, strides, whole)``; ``whole``: the head reads every level
    (dense heads), else only the first ``len(strides)`` (RoI extractors)."""
    found = []
    for name in ('rpn_head', 'bbox_head'):
        head = getattr(detector, name, None)
        strides = _generator_strides(head) if head is not None else None
        if strides:
            found.append(
                (f"{name}'s {type(head.prior_generator).__name__}", _head_stride_key(head,
                                                                                     f'model.{name}'), strides, True))
    roi_head = getattr(detector, 'roi_head', None)
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractor = getattr(roi_head, name, None) if roi_head is not None else None
        stages = list(extractor) if isinstance(extractor, nn.ModuleList) else [extractor]
        for i, stage in enumerate(stages):
            strides = getattr(stage, 'featmap_strides', None)
            if strides:
                suffix = f'[{i}]' if isinstance(extractor, nn.ModuleList) else ''
                found.append(
                    (f'roi_head.{name}{suffix}', f'model.roi_head.{name}.featmap_strides', [int(s)
                                                                                            for s in strides], False))
    return found


def _fits(output: Sequence[int], strides: Sequence[float], whole: bool) -> bool:
    """Same number of levels (dense heads) and each stride within 25% (approximate declarations like YOLACT's
    pass; reading from a neighbouring level is off by a factor of 2)."""
    if (len(output) != len(strides)) if whole else len(output) < len(strides):
        return False
    return all(0.75 <= s / o <= 1.34 for o, s in zip(output, strides))


def _neck_fix(neck: nn.Module, in_strides: Sequence[int], declared) -> Optional[Dict[str, int]]:
    """FPN ``start_level``/``num_outs`` under which the neck outputs what every head declares, if any."""
    from mmdet.models.necks import FPN
    if not isinstance(neck, FPN):
        return None
    wanted = [len(s) for _, _, s, whole in declared if whole] or [neck.num_outs]
    end = neck.backbone_end_level
    for start in range(end):
        for num_outs in sorted(set(wanted + [neck.num_outs])):
            out = _fpn_strides(in_strides, start, end, num_outs)
            if num_outs >= end - start and all(_fits(out, s, whole) for _, _, s, whole in declared):
                return dict(start_level=start, num_outs=num_outs)
    return None


def check_pyramid_strides(detector: nn.Module) -> None:
    """Raise ``ValueError`` if the neck's output strides differ from those the heads declare.

    The backbone strides are known for composite backbones (measured when built); necks without a rule in
    :func:`neck_output_strides` and heads without declared strides are not checked.
    """
    backbone = getattr(detector, 'backbone', None)
    in_strides = backbone_out_strides(backbone) if backbone is not None else None
    neck = getattr(detector, 'neck', None) if getattr(detector, 'with_neck', False) else None
    if in_strides is None or isinstance(neck, nn.ModuleList):
        return
    output = neck_output_strides(neck, in_strides)
    declared = declared_strides(detector)
    if not output or not declared:
        return
    wrong = [d for d in declared if not _fits(output, d[2], d[3])]
    if not wrong:
        return
    inner = type(backbone.branches[0]).__name__ if hasattr(backbone, 'branches') else type(backbone).__name__
    if neck is None:
        neck_text = 'there is no neck, so the heads read them directly'
    else:
        levels = ', '.join(f'{k}={getattr(neck, k)}' for k in ('start_level', 'num_outs', 'add_extra_convs')
                           if hasattr(neck, k))
        neck_text = f'the neck ({type(neck).__name__}{", " + levels if levels else ""}) outputs strides {output}'
    claims = '; '.join(f'{what} declares {strides}' for what, _, strides, _ in wrong)
    fixes = []
    neck_fix = _neck_fix(neck, in_strides, declared) if neck is not None else None
    if neck_fix:
        changes = {k: v for k, v in neck_fix.items() if getattr(neck, k) != v}
        fixes.append("make the neck output the heads' strides: --cfg-options " + ' '.join(f'model.neck.{k}={v}'
                                                                                          for k, v in changes.items()))
    keys = {}
    for what, key, strides, whole in declared:
        keys.setdefault(key, output if whole else output[:len(strides)])
    fixes.append("make the heads declare the neck's strides: --cfg-options " + ' '.join(f'"{k}={_list_text(v)}"'
                                                                                        for k, v in keys.items()))
    raise ValueError(
        f'The feature pyramid does not have the strides the heads assume: the backbone ({type(backbone).__name__} '
        f'of {inner}, out_indices={tuple(backbone.out_indices)}) returns strides {in_strides}, {neck_text}, but '
        f'{claims}. Anchors would have the wrong sizes and RoIs would be pooled from the wrong levels. Either ' +
        ', or '.join(fixes) + ' (the same keys in the config).')


def _list_text(values: Sequence[int]) -> str:
    return '[' + ','.join(str(v) for v in values) + ']'


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
    """The fix for mmengine's ``X is not in the mmdet::model registry`` KeyError, or None for other errors.

    Close matches come first (a typo is the usual cause once cbnet is imported); the custom_imports advice only
    when cbnet's types are really missing from ``registry_names`` (or the names are not known).
    """
    match = _NOT_REGISTERED.search(str(error))
    if match is None:
        return None
    name = match.group('name')
    names = list(registry_names) if registry_names is not None else None
    lines = []
    if names is not None:
        close = difflib.get_close_matches(name.rpartition('.')[2], names, n=3, cutoff=0.75)
        if close and name not in close:
            lines.append(f'Did you mean: {", ".join(close)}?')
    cbnet_missing = names is None or CBNET_MARKER_TYPE not in names
    if name.rpartition('.')[2].startswith('CB') and cbnet_missing:
        lines.append(f'{name} is a cbnet type: cbnet registers its modules when it is imported. Add\n    '
                     f'{CUSTOM_IMPORTS}\nto the config (mmdet\'s own tools and scripts that build models from '
                     'configs need it; cbnet\'s tools/train.py and tools/test.py import cbnet themselves), and '
                     'check that `python -c "import cbnet"` works (pip install -e . in the cbnet repo).')
    return '\n'.join(lines) or None


def config_imports_cbnet(cfg: Mapping) -> bool:
    """Whether the config imports cbnet itself (so that mmdet's tools can build it too)."""
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    return any(i == 'cbnet' or str(i).startswith('cbnet.') for i in imports)
