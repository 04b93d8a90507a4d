"""Composite connections: which stages of branch k-1 feed which stage inputs of branch k, and how.

Every composition is a set of 1x1 connections (conv, optional norm; or an identity where the official Swin
code uses one), each resized (nearest) to the target stage input and summed into it. The compositions of the
CBNet papers differ only in *which* source stages feed target stage ``l`` (0-based; the input of stage ``l``
is what stage ``l`` consumes, the source is the output feature of a stage of the previous branch):

- ``DHLC`` (CBNetV2 default, Dense Higher-Level Composition): sources ``l, l+1, ..., L-1``.
- ``AHLC`` (CBNetV1, Adjacent Higher-Level): source ``l``.
- ``SLC`` (CBNetV1, Same-Level): source ``l-1``.
- ``ALLC`` (CBNetV1, Adjacent Lower-Level): source ``l-2``.

Sources outside ``0..L-1`` are dropped. New compositions register with ``@COMPOSITIONS.register_module()``
and override the classmethod :meth:`Composition.sources` (a classmethod: the composite backbone reads it
before it builds the connections, to know how deep each branch must run).
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, constant_init
from mmengine.registry import Registry
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

COMPOSITIONS = Registry('cbnet composition')


class Connection(nn.Module):
    """1x1 conv (+ norm) or identity, then nearest resize to the target size.

    With an eval-mode (or no) norm the connection is per-pixel affine, so it commutes with nearest resizing;
    we resize first when the target is smaller, which makes downsampling connections cheaper.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: Optional[dict],
                 bias: bool,
                 identity: bool = False) -> None:
        super().__init__()
        self.identity = identity
        if identity:
            assert in_channels == out_channels
            return
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1] if norm_cfg else None

    def forward(self, x: Tensor, size: Tuple[int, int]) -> Tensor:
        if self.identity:
            return self._resize(x, size)
        shrink = x.shape[-2] * x.shape[-1] > size[0] * size[1]
        if shrink and (self.norm is None or not self.norm.training):
            x = self._resize(x, size)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return self._resize(x, size)

    @staticmethod
    def _resize(x: Tensor, size: Tuple[int, int]) -> Tensor:
        return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode='nearest')

    def zero_init_(self) -> None:
        """Make the connection output exactly zero (the norm's scale if there is one, else the conv)."""
        if self.identity:
            return
        if self.norm is not None:
            constant_init(self.norm, 0, bias=0)
        else:
            constant_init(self.conv, 0, bias=0)


class Composition(BaseModule):
    """The connections between consecutive branches (``num_links`` = K - 1 of them).

    Args:
        num_links: number of branch pairs (K - 1); each has its own connections.
        source_channels: output width of every stage of a branch.
        target_channels: input width of every stage of a branch.
        target_stages: per link, the stages of the receiving branch that run (pruned ones receive nothing).
        norm_cfg: norm after each conv; None for conv only.
        conv_bias: conv bias; defaults to ``norm_cfg is None``.
        identity_if_same_channels: identity (no conv) where widths match, as the official Swin code does.
        norm_eval: keep the connection norms in eval mode (official CBNetV2 behaviour for its BNs).
    """

    def __init__(self,
                 num_links: int,
                 source_channels: Sequence[int],
                 target_channels: Sequence[int],
                 target_stages: Sequence[Sequence[int]],
                 norm_cfg: Optional[dict] = None,
                 conv_bias: Optional[bool] = None,
                 identity_if_same_channels: bool = False,
                 norm_eval: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.norm_eval = norm_eval
        num_stages = len(source_channels)
        bias = norm_cfg is None if conv_bias is None else conv_bias
        if len(target_stages) != num_links:
            raise ValueError(f'target_stages needs one list per link ({num_links}), got {len(target_stages)}')
        #: per link and target stage, the (connection key, source stage) pairs that feed it
        self.plan: List[Dict[int, List[Tuple[str, int]]]] = []
        self.connections = nn.ModuleList()
        for targets in target_stages:
            plan, link = {}, nn.ModuleDict()
            for target in targets:
                sources = [s for s in self.sources(target, num_stages) if 0 <= s < num_stages]
                if sources:
                    plan[target] = [(f'into{target}_from{s}', s) for s in sources]
            self.plan.append(plan)
            for target, pairs in plan.items():
                for key, source in pairs:
                    cin, cout = source_channels[source], target_channels[target]
                    link[key] = Connection(cin, cout, norm_cfg, bias, identity_if_same_channels and cin == cout)
            self.connections.append(link)

    @classmethod
    def sources(cls, target: int, num_stages: int) -> List[int]:
        """Stages of the previous branch whose outputs feed the input of ``target``."""
        raise NotImplementedError

    def forward(self, link: int, target: int, h: Any, source_outs: Sequence[Tensor],
                size_of: Callable[[Any], Tuple[int, int]], add: Callable[[Any, Tensor], Any]) -> Any:
        """Add the connections into stage ``target`` of branch ``link + 1`` to its input ``h``."""
        pairs = self.plan[link].get(target)
        if not pairs:
            return h
        size = size_of(h)
        connections = self.connections[link]
        delta = None
        for key, source in pairs:
            y = connections[key](source_outs[source], size)
            delta = y if delta is None else delta + y
        return add(h, delta)

    def zero_init_(self) -> None:
        for link in self.connections:
            for connection in link.values():
                connection.zero_init_()

    def train(self, mode: bool = True) -> 'Composition':
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@COMPOSITIONS.register_module()
class DHLC(Composition):
    """Dense Higher-Level Composition (CBNetV2): the same and every higher level."""

    @classmethod
    def sources(cls, target: int, num_stages: int) -> List[int]:
        return list(range(target, num_stages))


@COMPOSITIONS.register_module()
class AHLC(Composition):
    """Adjacent Higher-Level Composition (CBNetV1 default)."""

    @classmethod
    def sources(cls, target: int, num_stages: int) -> List[int]:
        return [target]


@COMPOSITIONS.register_module()
class SLC(Composition):
    """Same-Level Composition (CBNetV1 ablation): the level of the target's input."""

    @classmethod
    def sources(cls, target: int, num_stages: int) -> List[int]:
        return [target - 1]


@COMPOSITIONS.register_module()
class ALLC(Composition):
    """Adjacent Lower-Level Composition (CBNetV1 ablation)."""

    @classmethod
    def sources(cls, target: int, num_stages: int) -> List[int]:
        return [target - 2]


def composition_name(name: str) -> str:
    """The registered spelling of a composition name, case-insensitively (``'dhlc'`` -> ``'DHLC'``)."""
    if name in COMPOSITIONS.module_dict:
        return name
    matches = [n for n in COMPOSITIONS.module_dict if isinstance(name, str) and n.lower() == name.lower()]
    if len(matches) != 1:
        raise KeyError(f'Unknown composition {name!r}; registered: '
                       f'{", ".join(sorted(COMPOSITIONS.module_dict))}. Register new ones in '
                       'cbnet.models.backbones.COMPOSITIONS.')
    return matches[0]


def composition_class(cfg) -> type:
    """The registered class a composition name (``'DHLC'``, any case) or config dict names."""
    name = cfg if isinstance(cfg, str) else dict(cfg).get('type')
    return COMPOSITIONS.module_dict[composition_name(name)]


def build_composition(cfg, **kwargs) -> Composition:
    """Build from a name (``'DHLC'``) or a dict; the composite fills in the widths and stages."""
    cls = composition_class(cfg)
    cfg = {} if isinstance(cfg, str) else {k: v for k, v in dict(cfg).items() if k != 'type'}
    for key, value in kwargs.items():
        cfg.setdefault(key, value)
    return cls(**cfg)
