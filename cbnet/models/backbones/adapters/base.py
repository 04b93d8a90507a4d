"""Family adapters: where a backbone family keeps its stem and stages, how to run them, how to feed a stage.

The composite mechanism (:class:`~cbnet.models.backbones.CBNet`) is written once against this interface; a
new backbone family only adds a small adapter. Adapters hold no state: every method receives the branch
(a built backbone module), so one adapter serves all branches.

Terms: the *stem* turns the image into the input of stage 0. ``run_stage(i, h)`` takes stage i's input ``h``
and returns ``(input of stage i+1, output feature of stage i)``; the output feature is NCHW and already
passed through the family's output norm, exactly as the backbone itself would return it. Composite
connections are added to stage inputs, so adapters say how to read a stage input's size and width and how to
add an NCHW tensor to it.

What an adapter does NOT do: training behaviour. Every branch is the family's own module, so its own
``train()`` (``frozen_stages``, ``norm_eval``, whatever the family has) runs on every branch. That works
because pruning (:func:`prune`) leaves placeholders, not holes: a pruned module becomes a parameter-free
:class:`Pruned` module (``.eval()``, ``.parameters()`` work; calling it raises), a pruned bare parameter an
empty non-persistent buffer (``.requires_grad = False`` works). Placeholders add no parameters and no
state-dict keys.

Adding a backbone family (two new files, nothing else edited):

1. ``cbnet/models/backbones/adapters/<family>.py``: a :class:`BackboneAdapter` subclass decorated with
   ``@register_adapter(TheBackboneClass)`` (subclasses of that class use it too, unless they have their own).
   Implement ``num_stages``, ``stem_modules``, ``stage_modules``, ``run_stem`` and ``run_stage``; override
   ``input_size``/``input_channels``/``add_to_input`` when stage inputs are not NCHW tensors (Swin's tokens),
   ``out_indices`` when the family does not keep them in ``backbone.out_indices``, ``check`` to refuse options
   the composite cannot honour (say what to change), ``connection_norm_cfg`` (BN for CNNs), and
   ``total_stride``/``probe_cells`` when the defaults (32, 3) do not fit (see :meth:`probe_size`). Every
   module of this package is imported when cbnet is; import the family's package at the top: if that package
   is not installed the module is skipped and the family is simply not supported.
   ``stem_modules``/``stage_modules`` must name every parametrised module the stem/stage runs (and nothing
   else): pruning replaces exactly those, and a forgotten one would be a parameter without gradient.
2. ``cbnet/testing/backbone_cases/<family>.py`` with ``CASES = [BackboneCase(...)]``: a tiny config of the
   inner backbone (``init_cfg=None``), a writer for its checkpoint in the family's real file format, the
   training options the family has (see :class:`cbnet.testing.backbone_cases.BackboneCase`). Writers for
   torchvision, OpenMMLab-zoo, original-Swin and mmpretrain files are in :mod:`cbnet.testing.checkpoint_formats`;
   a format they do not cover is written by a function in the case module itself. The case name becomes a
   key of ``cbnet.testing.FAMILIES``. ``tests/test_backbone_families.py`` runs every check on it (zero-init
   invariant with the checkpoint in every branch, connections output zero, no dead parameters, the same
   frozen parameters and module modes as the single backbone for every option set, placeholders,
   ``with_cp``, ``share_weights``, K = 2 and 3, every composition) and fails for a registered adapter
   without a case: ``pytest tests/test_backbone_families.py -k <case name>``.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
from torch import Tensor

_ADAPTERS: Dict[type, 'BackboneAdapter'] = {}
#: backbone classes that cannot be cut into stem and stages, with the reason (see :func:`refuse_family`)
_REFUSALS: Dict[type, str] = {}


def register_adapter(*backbone_classes: type):
    """Class decorator: the adapter handles these backbone classes and their subclasses."""

    def wrap(adapter_cls: Type['BackboneAdapter']) -> Type['BackboneAdapter']:
        for cls in backbone_classes:
            _ADAPTERS[cls] = adapter_cls()
        adapter_cls.backbone_classes = backbone_classes
        return adapter_cls

    return wrap


def refuse_family(backbone_cls: type, reason: str) -> None:
    """``backbone_cls`` (and its subclasses without an adapter of their own) cannot be composed: CBNet refuses it
    with ``reason`` (a ``ValueError`` that says why and what to use instead) rather than "not supported"."""
    _REFUSALS[backbone_cls] = reason


def refusal_reason(backbone_cls: type) -> Optional[str]:
    """Why ``backbone_cls`` cannot be composed, where its most specific registered class (itself or a base) is
    refused rather than adapted (a refused subclass of an adapted family is refused); else None."""
    for cls in backbone_cls.__mro__:
        if cls in _ADAPTERS:
            return None
        if cls in _REFUSALS:
            return _REFUSALS[cls]
    return None


def registered_backbone_classes() -> Tuple[type, ...]:
    """Every backbone class an adapter was registered for (the test harness needs a case for each)."""
    return tuple(_ADAPTERS)


def _name(cls: type) -> str:
    return f'{cls.__module__.split(".")[0]}.{cls.__name__}'


def supported_backbones() -> List[str]:
    return sorted(_name(c) for c in _ADAPTERS)


def adapted_class(backbone_cls: type) -> Optional[type]:
    """The registered class whose adapter serves ``backbone_cls``: itself or its most specific base."""
    return next((cls for cls in backbone_cls.__mro__ if cls in _ADAPTERS), None)


def adapter_for_class(backbone_cls: type) -> Optional['BackboneAdapter']:
    """The adapter serving ``backbone_cls`` (before any instance is built), or None."""
    cls = adapted_class(backbone_cls)
    return None if cls is None else _ADAPTERS[cls]


def get_adapter(backbone: nn.Module) -> 'BackboneAdapter':
    """The adapter for ``backbone``'s class, or the most specific one among its base classes."""
    cls = adapted_class(type(backbone))
    reason = refusal_reason(type(backbone))
    if reason is not None:
        raise ValueError(f'CBNet cannot compose {_name(type(backbone))}: {reason}')
    if cls is None:
        raise TypeError(
            f'CBNet does not support {type(backbone).__module__}.{type(backbone).__name__} as its inner backbone. '
            f'Supported (and their subclasses): {", ".join(supported_backbones())}. A new family needs an adapter: '
            'see cbnet/models/backbones/adapters/base.py.')
    return _ADAPTERS[cls]


class Pruned(nn.Module):
    """Stands where a pruned module was. No parameters, so DDP sees none unused and state-dict keys do not
    change; the family's own ``train()``/``_freeze_stages()`` may still call ``.eval()`` or ``.parameters()``
    on it. Running it is a bug in the adapter, so it raises."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.pruned_name = name

    def forward(self, *args, **kwargs):
        raise RuntimeError(f'{self.pruned_name!r} was pruned in this branch of the composite backbone (this branch '
                           'takes that part from the first branch); the adapter must not run it here.')

    def extra_repr(self) -> str:
        return self.pruned_name


def _resolve(root: nn.Module, name: str) -> Any:
    obj = root
    for part in name.split('.'):
        obj = obj[int(part)] if part.isdigit() and isinstance(obj,
                                                              (nn.ModuleList, nn.Sequential)) else getattr(obj, part)
    return obj


def prune(root: nn.Module, name: str) -> None:
    """Replace the module or parameter at dotted ``name`` by a placeholder without parameters."""
    parent_name, _, leaf = name.rpartition('.')
    parent = _resolve(root, parent_name) if parent_name else root
    target = _resolve(parent, leaf)
    if isinstance(target, Pruned):
        return
    if isinstance(target, nn.Parameter):
        delattr(parent, leaf)
        parent.register_buffer(leaf, torch.empty(0, dtype=target.dtype, device=target.device), persistent=False)
    elif isinstance(target, nn.Module):
        setattr(parent, leaf, Pruned(name))
    else:
        raise TypeError(f'cannot prune {name!r}: it is a {type(target).__name__}, not a module or parameter')


class BackboneAdapter:
    """Describes one backbone family to the composite mechanism (see the module docstring)."""

    backbone_classes: Tuple[type, ...] = ()
    #: Norm of the 1x1 composite connections when the config does not say: BN for CNN families (kept in eval
    #: mode, as the official CBNetV2 does), none (conv with bias) for transformer-style families.
    connection_norm_cfg: Optional[dict] = None
    #: Side, in cells of the total stride, of the deepest map the width probe must reach. 3: a 3x3 deformable
    #: conv (mmcv refuses maps smaller than its kernel) and SAC's reflect padding need at least 3x3.
    probe_cells: int = 3
    #: ``del_stages`` when the config does not say: CNNs share the stem and the first stage (the official
    #: ResNet models); a plain ViT shares only its patch and position embedding (0), as CB-EVA02 does.
    default_del_stages: int = 1
    #: The family's forward keeps state that depends on the input size (EVA-02's RoPE tables): the width probe
    #: then runs on a copy, so that it leaves the backbone exactly as built.
    probe_on_copy: bool = False

    def del_stages_default(self, backbone: nn.Module) -> int:
        """``del_stages`` for this built backbone when the config does not say: ``default_del_stages``, unless
        one adapter serves CNNs and plain ViTs alike (timm) and decides per model."""
        return self.default_del_stages

    # -- structure ---------------------------------------------------------------------------------------
    def num_stages(self, backbone: nn.Module) -> int:
        raise NotImplementedError

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        """Names of the parametrised stem modules/parameters (pruned in branches after the first)."""
        raise NotImplementedError

    def stage_modules(self, backbone: nn.Module, i: int) -> List[str]:
        """Names of stage i's modules, its output norm included."""
        raise NotImplementedError

    def out_indices(self, backbone: nn.Module) -> Sequence[int]:
        return tuple(backbone.out_indices)

    def check(self, backbone: nn.Module) -> None:
        """Refuse inner-backbone options the composite cannot honour."""

    def total_stride(self, backbone: nn.Module) -> int:
        """Downsampling from the image to the last stage's output."""
        return 32

    def probe_size(self, backbone: nn.Module) -> int:
        """Image side of the dry run that measures stage widths when the composite is built.

        It runs on the full-width model, so it is as small as the family allows: ``probe_cells`` cells of the
        total stride at the deepest stage.
        """
        return self.probe_cells * self.total_stride(backbone)

    # -- computation -------------------------------------------------------------------------------------
    def run_stem(self, backbone: nn.Module, x: Tensor) -> Any:
        raise NotImplementedError

    def run_stage(self, backbone: nn.Module, i: int, h: Any) -> Tuple[Any, Tensor]:
        raise NotImplementedError

    def input_size(self, h: Any) -> Tuple[int, int]:
        return tuple(h.shape[-2:])

    def input_channels(self, h: Any) -> int:
        return h.shape[1]

    def add_to_input(self, h: Any, delta: Tensor) -> Any:
        return h + delta
