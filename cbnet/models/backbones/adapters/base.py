"""Family adapters: where a backbone family keeps its stem, its stages, each stage's input and output norm.

The composite mechanism (:class:`~cbnet.models.backbones.CBNet`) is written once against this interface; a
new backbone family only adds a small adapter. Adapters hold no state: every method receives the branch
(a built backbone module), so one adapter serves all branches.

Terms: the *stem* turns the image into the input of stage 0. ``run_stage(i, h)`` takes stage i's input ``h``
and returns ``(input of stage i+1, output feature of stage i)``; the output feature is NCHW and already
passed through the family's output norm, exactly as the backbone itself would return it. Composite
connections are added to stage inputs, so adapters say how to read a stage input's size and add an NCHW
tensor to it.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import torch.nn as nn
from torch import Tensor

_ADAPTERS: Dict[type, 'BackboneAdapter'] = {}


def register_adapter(*backbone_classes: type):
    """Class decorator: the adapter handles these backbone classes and their subclasses."""

    def wrap(adapter_cls: Type['BackboneAdapter']) -> Type['BackboneAdapter']:
        for cls in backbone_classes:
            _ADAPTERS[cls] = adapter_cls()
        adapter_cls.backbone_classes = backbone_classes
        return adapter_cls

    return wrap


def supported_backbones() -> List[str]:
    return sorted(f'{c.__module__.split(".")[0]}.{c.__name__}' for c in _ADAPTERS)


def get_adapter(backbone: nn.Module) -> 'BackboneAdapter':
    """The adapter for ``backbone``'s class, or the most specific one among its base classes."""
    for cls in type(backbone).__mro__:
        if cls in _ADAPTERS:
            return _ADAPTERS[cls]
    raise TypeError(
        f'CBNet does not support {type(backbone).__module__}.{type(backbone).__name__} as its inner backbone. '
        f'Supported (and their subclasses): {", ".join(supported_backbones())}. A new family needs an adapter: '
        'see cbnet/models/backbones/adapters/base.py.')


def get_submodule_or_param(root: nn.Module, name: str) -> Optional[Any]:
    """The module or parameter at dotted ``name`` (``stages.0``, ``absolute_pos_embed``), None if pruned."""
    obj = root
    for part in name.split('.'):
        if part.isdigit() and isinstance(obj, (nn.ModuleList, nn.Sequential)):
            obj = obj[int(part)] if int(part) < len(obj) else None
        else:
            obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def remove(root: nn.Module, name: str) -> None:
    """Delete a module or parameter so that it is not part of the model (no dead parameters)."""
    parent_name, _, leaf = name.rpartition('.')
    parent = get_submodule_or_param(root, parent_name) if parent_name else root
    if parent is None:
        return
    if leaf.isdigit():  # an entry of a ModuleList: keep the indices of the others
        parent[int(leaf)] = nn.Identity()
    elif hasattr(parent, leaf):
        delattr(parent, leaf)


class BackboneAdapter:
    """Describes one backbone family to the composite mechanism (see the module docstring)."""

    backbone_classes: Tuple[type, ...] = ()
    #: Norm of the 1x1 composite connections when the config does not say: BN for CNN families (kept in eval
    #: mode, as the official CBNetV2 does), none (conv with bias) for transformer-style families.
    connection_norm_cfg: Optional[dict] = None

    # -- structure ---------------------------------------------------------------------------------------
    def num_stages(self, backbone: nn.Module) -> int:
        raise NotImplementedError

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        """Names of the parametrised stem modules/parameters (removed from non-first branches)."""
        raise NotImplementedError

    def stage_modules(self, backbone: nn.Module, i: int) -> List[str]:
        """Names of stage i's modules, its output norm included."""
        raise NotImplementedError

    def out_indices(self, backbone: nn.Module) -> Sequence[int]:
        return tuple(backbone.out_indices)

    def check(self, backbone: nn.Module) -> None:
        """Refuse inner-backbone options the composite cannot honour."""

    def probe_size(self, backbone: nn.Module) -> int:
        """Image side of the dry run that measures stage widths when the composite is built."""
        return 32

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

    # -- training behaviour ------------------------------------------------------------------------------
    def frozen_modules(self, backbone: nn.Module) -> List[str]:
        """mmdet semantics of ``frozen_stages``: -1 nothing, 0 the stem, k the stem and the first k stages."""
        frozen = getattr(backbone, 'frozen_stages', -1)
        if frozen < 0:
            return []
        names = list(self.stem_modules(backbone))
        for i in range(min(frozen, self.num_stages(backbone))):
            names += self.stage_modules(backbone, i)
        return names

    def norm_eval(self, backbone: nn.Module) -> bool:
        return bool(getattr(backbone, 'norm_eval', False))
