"""Backbones that run a list of named units one after the other and return some of them by position.

Most backbones of mmdet and mmpretrain share that shape: a stem, then units (layers, blocks, stages), each taking
the previous one's output, ``out_indices`` that pick units by position, and, in many transformer-era families, an
output norm ``norm{j}`` for each returned unit. One adapter serves them all; a family is a small descriptor that
says where its stem and units are (:meth:`LayerSequenceAdapter.layer_names`), whether its ``out_indices`` count
the stem, which units end a resolution level (:meth:`LayerSequenceAdapter.stage_ends`) and, where its units are
not plain ``module(x)`` calls on NCHW maps, how to run one (:meth:`LayerSequenceAdapter.run_unit`: token families
pass :class:`Tokens` between them).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch.nn as nn
from torch import Tensor

from .base import BackboneAdapter


class Tokens(NamedTuple):
    """The input of a token family's unit: (B, H*W, C) tokens and their map size (H, W)."""

    tokens: Tensor
    hw: Tuple[int, int]


#: what travels between units: an NCHW map or tokens
UnitInput = Union[Tensor, Tokens]


def tokens_to_map(tokens: Tensor, hw: Sequence[int]) -> Tensor:
    """(B, H*W, C) -> a contiguous (B, C, H, W) map, as the families reshape their returned tokens."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], *hw).contiguous()


class LayerSequenceAdapter(BackboneAdapter):
    """Stem = the first entry of :meth:`layer_names`, unit j = entry j + 1; composite stage s = the units after
    stage s - 1 up to the s-th unit that ends a stage: one the family returns (``out_indices``) or one of its
    :meth:`stage_ends` (by default every unit, so that every unit is a stage, as ``out_indices`` address them).
    A unit's input is the previous unit's result; a stage's output is its last unit's result through that unit's
    output norm (``norm{j}`` in the family's numbering, where the family has one), as a map.

    The family's own ``frozen_stages``, ``norm_eval`` and ``with_cp`` keep their meaning in every branch, since
    every branch runs the family's own ``train()`` and modules.
    """

    connection_norm_cfg = dict(type='BN', requires_grad=True)
    #: strided 3x3 convs (padding 1), 'same'-padded convs and stride-1 pools run on any map, even 1x1
    probe_cells = 1
    #: the family's ``out_indices`` count the stem as unit 0 (CSPNeXt, CSPDarknet, Darknet, EfficientNet)
    stem_counted = True
    #: name of a unit's output norm, formatted with the family's index of the unit (``'norm{}'``), or None
    output_norm: Optional[str] = None

    # -- the family's description --------------------------------------------------------------------------
    def layer_names(self, backbone: nn.Module) -> List[str]:
        """Dotted names of the stem and of every unit, in running order."""
        raise NotImplementedError

    def unit_modules(self, backbone: nn.Module, j: int) -> List[str]:
        """The parametrised modules unit j runs (pruned with it), its output norm excluded."""
        return [self.layer_names(backbone)[j + 1]]

    def stage_ends(self, backbone: nn.Module) -> Sequence[int]:
        """Units after which a new resolution level starts (the last unit always ends one)."""
        return range(len(self.layer_names(backbone)) - 1)

    def run_unit(self, backbone: nn.Module, j: int, h: UnitInput) -> Tuple[UnitInput, UnitInput]:
        """(the next unit's input, what unit j returns before its output norm)."""
        out = backbone.get_submodule(self.layer_names(backbone)[j + 1])(h)
        return out, out

    def every_unit_options(self, backbone: nn.Module) -> dict:
        """The family's options that return every unit (its ``out_indices``), e.g. for a sweep."""
        num_units = len(self.layer_names(backbone)) - 1
        return dict(out_indices=[j + self._shift() for j in range(num_units)])

    # -- derived -------------------------------------------------------------------------------------------
    def _shift(self) -> int:
        return 1 if self.stem_counted else 0

    def _family_indices(self, backbone: nn.Module) -> Sequence[int]:
        return sorted(set(backbone.out_indices))  # the family returns its units in running order, once each

    def returned_units(self, backbone: nn.Module) -> List[int]:
        """The units the family returns (its ``out_indices``, in units)."""
        return [f - self._shift() for f in self._family_indices(backbone)]

    def norm_index(self, backbone: nn.Module, j: int) -> Optional[int]:
        """The family's index of unit j in the name of its output norm."""
        return j + self._shift()

    def _norm_of(self, backbone: nn.Module, j: int) -> Optional[str]:
        index = self.norm_index(backbone, j)
        if self.output_norm is None or index is None:
            return None
        name = self.output_norm.format(index)
        return name if isinstance(getattr(backbone, name, None), nn.Module) else None

    def _stage_ends(self, backbone: nn.Module) -> List[int]:
        num_units = len(self.layer_names(backbone)) - 1
        returned = self.returned_units(backbone)
        ends = set(self.stage_ends(backbone)) | {j for j in returned if 0 <= j < num_units} | {num_units - 1}
        return sorted(ends)

    def _stage_units(self, backbone: nn.Module, i: int) -> range:
        ends = self._stage_ends(backbone)
        return range(ends[i - 1] + 1 if i else 0, ends[i] + 1)

    def num_stages(self, backbone: nn.Module) -> int:
        return len(self._stage_ends(backbone))

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        return self.layer_names(backbone)[:1]

    def stage_modules(self, backbone: nn.Module, i: int) -> List[str]:
        names = []
        for j in self._stage_units(backbone, i):
            names += self.unit_modules(backbone, j)
            norm = self._norm_of(backbone, j)
            names += [norm] if norm else []
        return names

    def out_indices(self, backbone: nn.Module) -> Sequence[int]:
        stage_of = {j: s for s, j in enumerate(self._stage_ends(backbone))}
        return tuple(stage_of[j] for j in self.returned_units(backbone))

    def check(self, backbone: nn.Module) -> None:
        if self.stem_counted and 0 in self._family_indices(backbone):
            names = self.layer_names(backbone)
            raise ValueError(
                f'{type(backbone).__name__} inside CBNet: out_indices {tuple(backbone.out_indices)} include 0, the '
                f'stem ({names[0]}). CBNet composes and returns the outputs of the stages ({", ".join(names[1:])} '
                f'= out_indices 1..{len(names) - 1}); drop 0 from out_indices.')

    # -- computation -----------------------------------------------------------------------------------------
    def run_stem(self, backbone: nn.Module, x: Tensor) -> UnitInput:
        return backbone.get_submodule(self.layer_names(backbone)[0])(x)

    def output(self, backbone: nn.Module, j: int, out: UnitInput) -> Tensor:
        """Unit j's result as the family returns it: through its output norm, tokens reshaped to a map."""
        norm = self._norm_of(backbone, j)
        if isinstance(out, Tokens):
            tokens = getattr(backbone, norm)(out.tokens) if norm else out.tokens
            return tokens_to_map(tokens, out.hw)
        return getattr(backbone, norm)(out) if norm else out

    def run_stage(self, backbone: nn.Module, i: int, h: UnitInput) -> Tuple[UnitInput, Tensor]:
        for j in self._stage_units(backbone, i):
            h, out = self.run_unit(backbone, j, h)
        return h, self.output(backbone, j, out)

    def input_size(self, h: UnitInput) -> Tuple[int, int]:
        return tuple(h.hw) if isinstance(h, Tokens) else tuple(h.shape[-2:])

    def input_channels(self, h: UnitInput) -> int:
        return h.tokens.shape[-1] if isinstance(h, Tokens) else h.shape[1]

    def add_to_input(self, h: UnitInput, delta: Tensor) -> UnitInput:
        if isinstance(h, Tokens):
            return Tokens(h.tokens + delta.flatten(2).transpose(1, 2), h.hw)
        return h + delta
