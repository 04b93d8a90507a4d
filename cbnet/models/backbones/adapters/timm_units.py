"""timm models whose features-only net calls ``forward_intermediates`` (FeatureGetterNet) or hooks the model's
own forward (FeatureHookNet): plain ViTs (ViT, DeiT, BEiT, EVA, CaiT, XCiT, MLP-Mixer) and hierarchical ones
(Hiera, MViTv2, LeViT, PiT, EfficientFormer, ...); used by :class:`~.timm.TIMMAdapter`.

Every such model runs the same way: a stem (patch embedding, prefix tokens, position embedding, RoPE or shared
relative-position tables), then a loop over one container of *units* (``blocks`` or ``stages``) that all take
the token tensor (plus the same extra arguments), and a feature is a unit's output reshaped to a map. So the
composite cuts the model there, with one mechanism for all of them:

- stem = the model's own forward up to its first unit (the forward is stopped there; what the first unit
  receives, the token tensor and the extra arguments, is the stage-0 input);
- stage j = the units after the previous feature's unit up to the unit of the j-th returned feature
  (``out_indices``: a plain ViT is cut at its ``out_indices`` blocks);
- stage output = exactly what timm returns for that feature: prefix (class, register, distillation) tokens
  dropped, tokens reshaped to NCHW (NHWC maps permuted, Hiera's unrolled tokens rerolled);
- connections are added to the spatial tokens of a stage input; prefix tokens are left as they are.

The extra arguments (RoPE, a shared relative-position bias, XCiT's grid size) come from the first branch's stem
and are passed to every branch's units. Where a layout differs, small per-class tables say how:
:data:`CHANNELS_LAST` (NHWC units), :data:`FEATURE_FIRST` (units returning their feature and the next input),
:data:`BETWEEN_UNITS` (what the forward runs between units: VOLO's position embedding, Visformer's patch
embeddings). Models with no single unit loop (Twins, CoaT, CrossViT, TNT, ConViT) are refused with the reason
(:data:`REFUSED`, or that their features are not the outputs of one list of units).
"""
import importlib.util
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

if importlib.util.find_spec('timm') is None:  # nothing to adapt without timm
    raise ModuleNotFoundError("No module named 'timm'", name='timm')

#: containers a model's forward loops over, tried when the ``feature_info`` module names are not theirs
#: (MViTv2 and Twins name their features ``block.i`` while the modules are ``stages.i``/``blocks.i``)
UNIT_CONTAINERS = ('blocks', 'stages', 'layers', 'transformers', 'network')

#: timm model classes the composite cannot cut, and why
REFUSED = {
    'Twins': 'each stage runs its own patch embedding, position block and blocks outside one module container',
    'CrossVit': 'it runs two token streams of different patch sizes that exchange class tokens',
    'TNT': 'it runs a pixel-token and a patch-token stream side by side',
    'ConVit': 'it inserts its class token between blocks and returns no spatial feature maps',
}


class Between(NamedTuple):
    """What a model's forward does before unit ``u`` outside any unit: ``run(model, u, tokens)``, with the
    modules/parameters ``modules(model, u)`` (they belong to the stage of unit ``u``, not to the stem)."""

    modules: Callable[[nn.Module, int], List[str]]
    run: Callable[[nn.Module, int, Tensor], Tensor]


def _volo_modules(model: nn.Module, u: int) -> List[str]:
    return ['pos_embed'] if u == 2 else []


def _volo_run(model: nn.Module, u: int, x: Tensor) -> Tensor:
    return model.pos_drop(x + model.pos_embed) if u == 2 else x  # VOLO.forward_intermediates, before network.2


def _visformer_modules(model: nn.Module, u: int) -> List[str]:
    return [n for n in (f'patch_embed{u + 1}', f'pos_embed{u + 1}') if getattr(model, n, None) is not None] if u else []


def _visformer_run(model: nn.Module, u: int, x: Tensor) -> Tensor:
    if not u:  # stage1's patch embedding and position embedding run in the stem
        return x
    patch_embed, pos_embed = getattr(model, f'patch_embed{u + 1}'), getattr(model, f'pos_embed{u + 1}')
    x = patch_embed(x) if patch_embed is not None else x
    return model.pos_drop(x + pos_embed) if pos_embed is not None else x


#: per timm model class, what its forward runs between units (VOLO: the position embedding after the outlooker
#: stage; Visformer: the patch and position embedding before stages 2 and 3, which are its units)
BETWEEN_UNITS = {
    'VOLO': Between(_volo_modules, _volo_run),
    'Visformer': Between(_visformer_modules, _visformer_run),
}

#: timm model classes whose units pass NHWC maps (their features are permuted to NCHW)
CHANNELS_LAST = ('HieraDet', 'VOLO')

#: timm model classes whose units return ``(feature map, next unit's input, ...)`` (a stage that downsamples
#: after its feature, like Swin's)
FEATURE_FIRST = ('EfficientViM', )


class _StemDone(Exception):
    """Stops the model's forward at its first unit, carrying that unit's arguments."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.args, self.kwargs = args, kwargs


class TokenLayout(NamedTuple):
    """How a stage input holds its map: NCHW, NHWC, or tokens (prefix tokens first; ``reroll``: Hiera's
    unrolled order, undone by the model's own ``reroll`` module)."""

    prefix: int = 0
    channels_last: bool = False
    reroll: Optional[nn.Module] = None
    #: the units return their feature first (:data:`FEATURE_FIRST`)
    feature_first: bool = False


class UnitInput(NamedTuple):
    """The input of a composite stage of a FeatureGetterNet/FeatureHookNet model."""

    #: positional arguments of the next unit: the token tensor first (PiT: a (map, class tokens) pair;
    #: MViTv2: followed by the grid size that its stages return updated)
    args: tuple
    #: keyword arguments every unit receives (EVA's ``rope``, BEiT's shared relative-position bias)
    kwargs: Dict[str, Any]
    #: the image size (the grid of token tensors follows from it)
    image_size: Tuple[int, int]
    #: index of the last unit run (-1: the stem)
    unit: int
    layout: TokenLayout

    @property
    def tokens(self) -> Tensor:
        value = self.args[0]
        return value[0] if isinstance(value, (tuple, list)) else value

    def with_tokens(self, tokens: Tensor) -> 'UnitInput':
        value = self.args[0]
        value = (tokens, ) + tuple(value[1:]) if isinstance(value, (tuple, list)) else tokens
        return self._replace(args=(value, ) + tuple(self.args[1:]))


class UnitPlan(NamedTuple):
    """A FeatureGetterNet/FeatureHookNet cut into a stem and stages (module names relative to the features-only
    net)."""

    #: the model inside the features-only net (``model`` of FeatureGetterNet, ``body`` of FeatureHookNet)
    model: str
    #: its parametrised modules and parameters outside the unit container (patch embedding, position
    #: embedding, class token; also any the model runs only after its units, which no stage needs)
    stem: List[str]
    #: per stage, the units it runs and the modules/parameters used between them (:data:`BETWEEN_UNITS`)
    stages: List[List[str]]
    #: the unit index ending each stage
    ends: List[int]
    #: the units, relative to the model
    units: List[str]


def model_of(net: nn.Module) -> Tuple[str, nn.Module]:
    """The timm model inside a FeatureGetterNet (``model``) or a FeatureHookNet that wraps it whole (``body``)."""
    for name in ('model', 'body'):
        if isinstance(getattr(net, name, None), nn.Module) and hasattr(getattr(net, name), 'feature_info'):
            return name, getattr(net, name)
    raise ValueError(f'CBNet cannot cut this timm model into stages: timm builds its features-only net as '
                     f'{type(net).__name__}, which collects features through hooks inside modules it runs as one piece '
                     '(not one loop over blocks or stages).')


def refusal(model: nn.Module) -> Optional[str]:
    """Why the composite cannot cut ``model`` (None: it can)."""
    name = type(model).__name__
    for cls in type(model).__mro__:
        if cls.__name__ in REFUSED:
            return f'CBNet cannot cut timm {name} into stages: {REFUSED[cls.__name__]}.'
    if getattr(model, 'rope_mixed', False):
        return f'CBNet cannot cut timm {name} with rope_mixed=True into stages: every block takes its own RoPE table.'
    return None


def _units(model: nn.Module, modules: Sequence[str], num_features: int) -> Tuple[List[str], List[int]]:
    """The units the forward loops over (names relative to the model) and the unit index of every returned
    feature (``modules``, of ``num_features`` features in all): the children of one module list, or, for a model
    that says what it runs between them (:data:`BETWEEN_UNITS`), its feature modules themselves."""
    parents = {m.rpartition('.')[0] for m in modules}
    digits = all(m.rpartition('.')[2].isdigit() for m in modules)
    candidates = list(parents) if len(parents) == 1 else []
    candidates += [p for p in UNIT_CONTAINERS if p not in candidates]  # MViTv2 names its stages ``block.i``
    for parent in candidates if digits else []:
        units = getattr(model, parent, None) if parent and '.' not in parent else None
        if isinstance(units, (nn.ModuleList, nn.Sequential)) and (parent in parents or len(units) <= num_features):
            return [f'{parent}.{u}' for u in range(len(units))], [int(m.rpartition('.')[2]) for m in modules]
    if type(model).__name__ in BETWEEN_UNITS and all(isinstance(getattr(model, m, None), nn.Module) for m in modules):
        return list(modules), list(range(len(modules)))
    raise ValueError(f'CBNet cannot cut timm {type(model).__name__} into stages: its features ({", ".join(modules)}) '
                     'are not the outputs of the blocks or stages of one module list.')


def plan(net: nn.Module) -> UnitPlan:
    """Stage j = the units after the previous returned feature's unit, up to the j-th returned feature's unit."""
    prefix, model = model_of(net)
    info = net.feature_info
    out = list(info.out_indices)  # the features it returns: CSPNeXt's stem feature need not be one of them
    units, unit_of = _units(model, [info.info[f]['module'] for f in out], len(info.info))
    ends = sorted(unit_of)
    if any(e >= len(units) for e in ends) or len(set(ends)) != len(ends):
        raise ValueError(f'CBNet cannot cut timm {type(model).__name__} into stages: its features {out} are not '
                         f'at distinct units ({", ".join(units)}).')
    between = BETWEEN_UNITS.get(type(model).__name__)
    stages, start, owned = [], 0, set(units)
    for end in ends:
        names = []
        for u in range(start, end + 1):
            used = between.modules(model, u) if between else []
            names += [m for m in used if m not in owned] + [units[u]]
            owned.update(used)
        stages.append([f'{prefix}.{n}' for n in names])
        start = end + 1
    top = {u.partition('.')[0] for u in owned}
    stem = [f'{prefix}.{n}' for n, _ in model.named_parameters(recurse=False) if n not in top]
    stem += [
        f'{prefix}.{n}' for n, child in model.named_children() if n not in top and any(True for _ in child.parameters())
    ]
    return UnitPlan(prefix, stem, stages, ends, units)


def layout_of(model: nn.Module) -> TokenLayout:
    reroll = getattr(model, 'reroll', None)
    return TokenLayout(
        prefix=int(getattr(model, 'num_prefix_tokens', 0) or 0),
        channels_last=type(model).__name__ in CHANNELS_LAST,
        feature_first=type(model).__name__ in FEATURE_FIRST,
        reroll=reroll if isinstance(reroll, nn.Module) else None)


def run_stem(net: nn.Module, x: Tensor) -> UnitInput:
    """The features-only net's own forward, stopped when its first unit is called."""
    units = plan(net)
    model = net.get_submodule(units.model)
    first = model.get_submodule(units.units[0])

    def stop(module: nn.Module, args: tuple, kwargs: dict):
        raise _StemDone(args, kwargs)

    handle = first.register_forward_pre_hook(stop, with_kwargs=True)
    try:
        net(x)
    except _StemDone as done:
        return UnitInput(done.args, dict(done.kwargs), tuple(x.shape[-2:]), -1, layout_of(model))
    finally:
        handle.remove()
        _discard_hooked_features(net, x.device)
    raise RuntimeError(f'the forward of timm {type(model).__name__} never called {units.units[0]}')


def _discard_hooked_features(net: nn.Module, device: torch.device) -> None:
    """FeatureHookNet keeps what its hooks saw until its forward collects it: drop it (no tensors kept alive)."""
    hooks = getattr(net, 'hooks', None)
    if hooks is not None and hasattr(hooks, '_feature_outputs'):
        hooks._feature_outputs.pop(device, None)


def run_units(net: nn.Module, stage: int, h: UnitInput) -> Tuple[UnitInput, Tensor]:
    """Run stage ``stage``'s units; a unit that returns all its positional arguments updated (MViTv2's
    ``(tokens, grid)``) passes them all on, any other passes its output as the next tokens."""
    units = plan(net)
    model = net.get_submodule(units.model)
    between = BETWEEN_UNITS.get(type(model).__name__)
    first = units.ends[stage - 1] + 1 if stage else 0
    args, feature = h.args, None
    for u in range(first, units.ends[stage] + 1):
        if between is not None:
            args = (between.run(model, u, args[0]), ) + tuple(args[1:])
        out = model.get_submodule(units.units[u])(*args, **h.kwargs)
        if h.layout.feature_first:
            feature, out = out[0], out[1]
        args = out if isinstance(out, tuple) and 1 < len(args) == len(out) else (out, ) + tuple(args[1:])
    _discard_hooked_features(net, h.tokens.device)
    h = h._replace(args=args, unit=units.ends[stage])
    return h, feature_map(h) if feature is None else feature


def token_grid(num_tokens: int, image_size: Tuple[int, int]) -> Tuple[int, int]:
    """The (H, W) of ``num_tokens`` spatial tokens of an image: the image divided by some stride, rounded down
    (unpadded patch embedding) or up (padded convolutions)."""
    h, w = image_size
    for stride in range(1, max(h, w) + 1):
        for grid in ((h // stride, w // stride), (-(-h // stride), -(-w // stride))):
            if grid[0] * grid[1] == num_tokens:
                return grid
    raise ValueError(f'{num_tokens} tokens are no grid of a {h}x{w} image')


def _reroll_index(h: UnitInput) -> Tensor:
    """Hiera: the token index of every position of the map (H, W) after unit ``h.unit``."""
    tokens = h.tokens
    order = torch.arange(tokens.shape[1], device=tokens.device, dtype=torch.float64).view(1, -1, 1)
    return h.layout.reroll(order, max(h.unit, 0))[0, ..., 0].long()


def feature_map(h: UnitInput) -> Tensor:
    """The stage input's map as timm returns it as a feature: NCHW, prefix tokens dropped."""
    tokens, layout = h.tokens, h.layout
    if layout.reroll is not None:
        return layout.reroll(tokens, max(h.unit, 0)).permute(0, 3, 1, 2)
    if tokens.dim() == 4:
        return tokens.permute(0, 3, 1, 2) if layout.channels_last else tokens
    spatial = tokens[:, layout.prefix:]
    grid = token_grid(spatial.shape[1], h.image_size)
    return spatial.reshape(tokens.shape[0], *grid, -1).permute(0, 3, 1, 2).contiguous()


def input_size(h: UnitInput) -> Tuple[int, int]:
    tokens, layout = h.tokens, h.layout
    if layout.reroll is not None:
        return tuple(_reroll_index(h).shape)
    if tokens.dim() == 4:
        return tuple(tokens.shape[1:3]) if layout.channels_last else tuple(tokens.shape[-2:])
    return token_grid(tokens.shape[1] - layout.prefix, h.image_size)


def input_channels(h: UnitInput) -> int:
    tokens = h.tokens
    return tokens.shape[1] if tokens.dim() == 4 and not h.layout.channels_last else tokens.shape[-1]


def add_to_input(h: UnitInput, delta: Tensor) -> UnitInput:
    """Add an NCHW ``delta`` to the spatial tokens of ``h`` (prefix tokens untouched)."""
    tokens, layout = h.tokens, h.layout
    if tokens.dim() == 4:
        return h.with_tokens(tokens + (delta.permute(0, 2, 3, 1) if layout.channels_last else delta))
    flat = delta.flatten(2).transpose(1, 2)  # B, HW, C in raster order
    if layout.reroll is not None:
        index = _reroll_index(h).flatten()
        return h.with_tokens(tokens + torch.zeros_like(tokens).index_copy(1, index, flat.to(tokens.dtype)))
    if layout.prefix:
        flat = torch.cat([flat.new_zeros(flat.shape[0], layout.prefix, flat.shape[2]), flat], 1)
    return h.with_tokens(tokens + flat)
