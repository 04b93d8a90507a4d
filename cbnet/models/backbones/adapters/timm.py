"""Any timm model, through mmpretrain's ``TIMMBackbone`` with ``features_only=True``; skipped without timm.

One adapter for every architecture: the stages come from timm's own description of the features-only model,
``feature_info`` (``module``, ``reduction``, ``num_chs`` per feature), not from per-architecture code. Nets that
run their modules in sequence are cut here (:func:`layout`); nets built around the model's
``forward_intermediates`` or hooks (ViTs, Hiera, MViTv2, ...) are cut at the blocks of their forward loop
(:mod:`.timm_units`).
"""
import functools
import importlib.util
from typing import List, NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.backbones import TIMMBackbone
from torch import Tensor

from . import timm_units
from .base import BackboneAdapter, register_adapter
from .timm_units import UnitInput

if importlib.util.find_spec('timm') is None:  # TIMMBackbone cannot be built: the family is not supported
    raise ModuleNotFoundError("No module named 'timm'", name='timm')


@functools.lru_cache(maxsize=None)
def sequential_feature_nets() -> tuple:
    """Features-only nets whose forward runs their modules one after the other (FeatureListNet is a
    FeatureDictNet); the others collect features through hooks or ``forward_intermediates``. timm is imported
    here, when a TIMMBackbone is adapted, not with cbnet (it takes a third of a second)."""
    from timm.models import FeatureDictNet
    from timm.models.efficientnet import EfficientNetFeatures
    from timm.models.mobilenetv3 import MobileNetV3Features
    return FeatureDictNet, EfficientNetFeatures, MobileNetV3Features


def _is_feature_dict_net(net: nn.Module) -> bool:
    return isinstance(net, sequential_feature_nets()[0])


#: features finer than this stride belong to the stem (the pyramid of a detector starts at stride 4)
FIRST_LEVEL_STRIDE = 4


class ChannelsLast(NamedTuple):
    """A stage input of a model whose features are NHWC (timm's Swin and friends, ``output_fmt='NHWC'``)."""

    tensor: Tensor


StageInput = Union[Tensor, ChannelsLast, UnitInput]


class Layout(NamedTuple):
    """The features-only net cut into a stem and stages (module names relative to it)."""

    stem: List[str]
    #: per stage, the modules it runs: those after the previous feature's module, up to its feature's module
    stages: List[List[str]]
    #: the timm feature index each stage outputs
    features: List[int]
    #: timm features inside the stem (finer than stride 4): not composed, not returned
    stem_features: List[int]
    #: modules after the last feature's module (EfficientNetFeatures runs them, nothing reads them): they count
    #: as the last stage's, so that a branch without it has none of them, and never run
    trailing: List[str]


def _net(backbone: TIMMBackbone) -> nn.Module:
    return backbone.timm_model


def _runs_units(net: nn.Module) -> bool:
    """A FeatureGetterNet/FeatureHookNet: the model's own forward runs, the composite cuts it at its units."""
    return not isinstance(net, sequential_feature_nets())


def _format(net: nn.Module) -> str:
    fmt = getattr(net, 'output_fmt', 'NCHW')  # timm's Format enum (a str) on FeatureDictNet, absent elsewhere
    return getattr(fmt, 'value', fmt)


def _units(net: nn.Module) -> List[str]:
    """The modules the net's forward runs, in order: FeatureDictNet's children (timm already flattened the
    model's top-level Sequentials into them, ``stages.0`` -> ``stages_0``); the EfficientNet/MobileNetV3
    feature nets' children with their ``blocks`` Sequential opened."""
    if _is_feature_dict_net(net):
        return [name for name, _ in net.named_children()]
    units = []
    for name, child in net.named_children():
        if isinstance(child, nn.Sequential):
            units += [f'{name}.{sub}' for sub, _ in child.named_children()]
        else:
            units.append(name)
    return units


def _unit_of(feature_module: str, units: Sequence[str]) -> str:
    flattened = feature_module.replace('.', '_')  # FeatureDictNet's rename of a flattened Sequential's child
    return feature_module if feature_module in units else flattened if flattened in units else ''


def layout(backbone: TIMMBackbone) -> Layout:
    """Stage j = the modules after the previous feature's module up to the module of the j-th feature.

    The stem holds the features finer than stride 4 (ResNet's ``act1``, EfficientNet's ``blocks.0``); where the
    first feature is already at stride 4 or coarser, the stem is what runs before its module (ConvNeXt's
    ``stem``, Swin's and PVTv2's ``patch_embed``), or that module itself if it runs first.
    """
    net = _net(backbone)
    units = _units(net)
    position = {name: p for p, name in enumerate(units)}
    boundaries = []  # (feature index, position of its module)
    for f, info in enumerate(net.feature_info.info):
        unit = _unit_of(info['module'], units)
        if unit:
            boundaries.append((f, position[unit]))
    if not boundaries:
        raise ValueError(f'timm feature modules {net.feature_info.module_name()} are not among the modules '
                         f'{units} that the features-only net runs')
    reductions = [net.feature_info.info[f]['reduction'] for f, _ in boundaries]
    num_stem = next((n for n, r in enumerate(reductions) if r >= FIRST_LEVEL_STRIDE), len(reductions))
    if num_stem == 0 and boundaries[0][1] == 0:
        num_stem = 1  # the first feature's module is the net's first module: it is the stem
    stem_end = boundaries[num_stem - 1][1] + 1 if num_stem else boundaries[0][1]
    stages, start = [], stem_end
    for _, p in boundaries[num_stem:]:
        stages.append(units[start:p + 1])
        start = p + 1
    return Layout(units[:stem_end], stages, [f for f, _ in boundaries[num_stem:]],
                  [f for f, _ in boundaries[:num_stem]], units[start:])


def _side(img_size) -> int:
    return int(img_size if isinstance(img_size, int) else img_size[-1])


def _tensor(h) -> Tensor:
    """The map of a stage input: the tensor itself, or the first of the maps that a module passes on as a list
    (SelecSLS: the block output first, then the skip it carries), which is the one timm returns as feature."""
    if isinstance(h, (list, tuple)) and h and all(isinstance(t, Tensor) for t in h):
        h = h[0]
    if not isinstance(h, Tensor):
        raise ValueError(f'a timm module passes a {type(h).__name__} between composite stages; CBNet adds its '
                         'connections to one feature map per stage input, so it cannot compose this model.')
    return h


@register_adapter(TIMMBackbone)
class TIMMAdapter(BackboneAdapter):
    """Stem and stages of any timm features-only net from its ``feature_info`` (see :func:`layout`).

    ``out_indices`` are timm's feature indices (``TIMMBackbone(out_indices=...)``), mapped to composite stages:
    ResNet's ``(1, 2, 3, 4)`` are stages 0-3, ConvNeXt's/Swin's ``(0, 1, 2, 3)`` too. Features that timm
    returns NHWC (``output_fmt``: Swin, ...) are composed and returned NCHW, which is what mmdet's necks read
    (the single ``TIMMBackbone`` returns them as timm does). The composite connections are 1x1 convs with bias
    (no norm: timm models mix BN, LN and GN; give ``composition=dict(type=..., norm_cfg=...)`` for one).
    Pretrained weights: timm's own state dict through ``pretrained=True,
    pretrained_cfg_overlay=dict(file=PATH)`` (timm loads it with the model's own key filter before the
    features-only wrapping), or an mmdet/mmpretrain checkpoint of ``TIMMBackbone`` through ``init_cfg``.

    Supported: nets that timm builds as FeatureListNet/FeatureDictNet (most CNNs and hierarchical
    transformers: ResNet, RegNet, ConvNeXt, Swin, PVTv2, CSPNet, DenseNet, ...; SelecSLS, whose blocks pass a
    list of maps: connections add to the first, the one timm returns), its EfficientNet and MobileNetV3 feature
    nets, and the FeatureGetterNet/FeatureHookNet of models whose forward loops over one list of blocks or
    stages (plain ViTs: ViT, DeiT, BEiT, EVA02, CaiT, XCiT, MLP-Mixer; Hiera, MViTv2, LeViT, PiT, VOLO,
    EfficientFormer, ...; see :mod:`.timm_units`). A plain ViT is cut at its ``out_indices`` blocks, all at one
    stride, and its lead shares only the embedded tokens (``del_stages`` 0 by default); its connections add to
    the patch tokens, not to class/register tokens. Not supported, with the reason from ``check``: nets whose
    features timm collects from inside modules it runs as one piece (Xception, HRNet), and models whose
    forward is not one loop over blocks (Twins, CoaT, CrossViT, TNT, ConViT; EVA with mixed RoPE).
    """

    #: 64 px for stride 32: small, and above the smallest map of timm's pooling and strided layers
    probe_cells = 2

    # -- structure ---------------------------------------------------------------------------------------
    def num_stages(self, backbone: TIMMBackbone) -> int:
        if _runs_units(_net(backbone)):
            return len(timm_units.plan(_net(backbone)).stages)
        return len(layout(backbone).stages)

    def stem_modules(self, backbone: TIMMBackbone) -> List[str]:
        if _runs_units(_net(backbone)):
            return [f'timm_model.{name}' for name in timm_units.plan(_net(backbone)).stem]
        return [f'timm_model.{name}' for name in layout(backbone).stem]

    def stage_modules(self, backbone: TIMMBackbone, i: int) -> List[str]:
        if _runs_units(_net(backbone)):
            return [f'timm_model.{name}' for name in timm_units.plan(_net(backbone)).stages[i]]
        plan = layout(backbone)
        names = plan.stages[i] + (plan.trailing if i == len(plan.stages) - 1 else [])
        return [f'timm_model.{name}' for name in names]

    def out_indices(self, backbone: TIMMBackbone) -> Tuple[int, ...]:
        if _runs_units(_net(backbone)):  # every returned feature ends a stage
            return tuple(range(self.num_stages(backbone)))
        stage_of = {f: j for j, f in enumerate(layout(backbone).features)}
        return tuple(stage_of[f] for f in _net(backbone).feature_info.out_indices)

    def del_stages_default(self, backbone: TIMMBackbone) -> int:
        """0 for a plain ViT (every returned feature at one stride: the lead shares only the embedded tokens, as
        CB-EVA02 does), else the CNN default (1)."""
        net = _net(backbone)
        strides = {net.feature_info.info[f]['reduction'] for f in net.feature_info.out_indices}
        return 0 if _runs_units(net) and len(strides) == 1 else self.default_del_stages

    def check(self, backbone: TIMMBackbone) -> None:
        net = _net(backbone)
        name = type(net).__name__
        if _runs_units(net):
            if isinstance(getattr(net, 'feature_info', None), list):
                raise ValueError('mmpretrain.TIMMBackbone inside CBNet must be built with features_only=True (and '
                                 'the out_indices of the features to return, e.g. (1, 2, 3, 4) for a ResNet).')
            self._check_units(net)
            return
        if getattr(net, 'feature_hooks', None) is not None:
            raise ValueError(
                f'CBNet cannot cut this timm model into stages: timm builds its features-only net as {name} with '
                'hooks inside the modules it runs; use the default feature_location=\'bottleneck\'.')
        fmt = _format(net)
        if fmt not in ('NCHW', 'NHWC'):
            raise ValueError(f'timm features-only net {name} returns {fmt} features; CBNet composes maps (NCHW or '
                             'NHWC).')
        plan = layout(backbone)
        info = net.feature_info.info
        for f in net.feature_info.out_indices:
            where = f'timm feature {f} ({info[f]["module"]}, stride {info[f]["reduction"]})'
            if f in plan.stem_features:
                raise ValueError(
                    f'TIMMBackbone inside CBNet: out_indices {tuple(net.feature_info.out_indices)} include {where}, '
                    f'which lies in the stem (features finer than stride {FIRST_LEVEL_STRIDE} are part of it). '
                    f'Composite stages return features {plan.features}: drop {f} from out_indices.')
            if f not in plan.features:
                raise ValueError(f'{where} is computed inside a module that timm runs as one piece; CBNet cannot '
                                 'return it.')

    @staticmethod
    def _check_units(net: nn.Module) -> None:
        _, model = timm_units.model_of(net)  # refuses a FeatureHookNet that rewrote the model into pieces
        reason = timm_units.refusal(model)
        if reason:
            raise ValueError(reason)
        if getattr(net, 'norm', False) is True:
            raise ValueError(f'CBNet composes timm {type(model).__name__} without the final norm on its features: '
                             "leave timm's feature_cfg norm=False (its default).")
        fmt = _format(net)
        if fmt not in ('NCHW', 'NHWC'):
            raise ValueError(f'timm features-only net {type(net).__name__} returns {fmt} features; CBNet composes '
                             "maps: use output_fmt='NCHW' (the default).")
        timm_units.plan(net)  # refuses features that are not the outputs of one list of blocks

    def total_stride(self, backbone: TIMMBackbone) -> int:
        net = _net(backbone)
        if _runs_units(net):
            return net.feature_info.info[max(net.feature_info.out_indices)]['reduction']
        return net.feature_info.info[layout(backbone).features[-1]]['reduction']

    def probe_size(self, backbone: TIMMBackbone) -> int:
        """timm's fixed input size where the model has one (Swin with ``strict_img_size=True``), or the
        ``img_size`` it was built with (also when no module holds it, as in Hiera); else the smallest of 2, 4, 8
        cells of the total stride at which the net runs: models with unpadded convs (Inception) need more than
        64 px, halo attention maps divisible by its block size. Trying costs a forward of the net at that size
        (no gradient, eval mode, the modes restored)."""
        net = _net(backbone)
        cfg = getattr(net, 'pretrained_cfg', None) or {}
        sizes = [cells * self.total_stride(backbone) for cells in (self.probe_cells, 4, 8)]
        if cfg.get('fixed_input_size'):
            built = [m.img_size for m in net.modules() if isinstance(getattr(m, 'img_size', None), (int, tuple, list))]
            sizes = [int(cfg['input_size'][-1])] + [_side(s) for s in built[:1]] + sizes
        modes = [m.training for m in net.modules()]
        net.eval()
        try:
            param = next(net.parameters())
            for size in sizes[:-1]:
                try:
                    with torch.no_grad():
                        net(torch.zeros(1, 3, size, size, dtype=param.dtype, device=param.device))
                    return size
                except (RuntimeError, AssertionError, IndexError):  # a kernel larger than a map; shape asserts
                    continue
            return sizes[-1]
        finally:
            for m, mode in zip(net.modules(), modes):
                m.training = mode

    # -- computation -------------------------------------------------------------------------------------
    @staticmethod
    def _channels_last(backbone: TIMMBackbone) -> bool:
        return _format(_net(backbone)) == 'NHWC'

    @staticmethod
    def _run(backbone: TIMMBackbone, names: Sequence[str], x):
        net = _net(backbone)
        for k, name in enumerate(names):
            module = net.get_submodule(name)
            if k == 0 and getattr(module, 'inplace', False) is True:
                x = x.clone()  # a stage input is shared with the other branches: an in-place op must not touch it
            x = module(x)
        return x

    def run_stem(self, backbone: TIMMBackbone, x: Tensor) -> StageInput:
        if _runs_units(_net(backbone)):
            return timm_units.run_stem(_net(backbone), x)
        x = self._run(backbone, layout(backbone).stem, x)
        return ChannelsLast(x) if self._channels_last(backbone) else x

    def run_stage(self, backbone: TIMMBackbone, i: int, h: StageInput) -> Tuple[StageInput, Tensor]:
        if isinstance(h, UnitInput):
            return timm_units.run_units(_net(backbone), i, h)
        x = self._run(backbone, layout(backbone).stages[i], h.tensor if isinstance(h, ChannelsLast) else h)
        out = x
        if isinstance(out, (tuple, list)):  # what FeatureDictNet returns for a module's tuple output
            out = torch.cat(out, 1) if getattr(_net(backbone), 'concat', False) else out[0]
        if self._channels_last(backbone):
            return ChannelsLast(x), out.permute(0, 3, 1, 2)
        return x, out

    def input_size(self, h: StageInput) -> Tuple[int, int]:
        if isinstance(h, UnitInput):
            return timm_units.input_size(h)
        return tuple(h.tensor.shape[1:3]) if isinstance(h, ChannelsLast) else tuple(_tensor(h).shape[-2:])

    def input_channels(self, h: StageInput) -> int:
        if isinstance(h, UnitInput):
            return timm_units.input_channels(h)
        return h.tensor.shape[-1] if isinstance(h, ChannelsLast) else _tensor(h).shape[1]

    def add_to_input(self, h: StageInput, delta: Tensor) -> StageInput:
        if isinstance(h, UnitInput):
            return timm_units.add_to_input(h, delta)
        if isinstance(h, ChannelsLast):
            return ChannelsLast(h.tensor + delta.permute(0, 2, 3, 1))
        if isinstance(h, (list, tuple)):
            return type(h)([_tensor(h) + delta, *h[1:]])
        return h + delta
