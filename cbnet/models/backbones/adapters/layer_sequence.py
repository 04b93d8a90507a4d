"""Backbones that run a list of named layers one after the other and return some of them by position.

mmdet's CSPNeXt, CSPDarknet, Darknet, EfficientNet and MobileNetV2 share that shape: a stem layer, then one
layer per stage, each taking the previous one's output, and ``out_indices`` that pick layers by position in the
list. One adapter serves them all; a family only says where its list is and whether its ``out_indices`` count
the stem.
"""
from typing import List, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from .base import BackboneAdapter


class LayerSequenceAdapter(BackboneAdapter):
    """Stem = the first layer of :meth:`layer_names`, stage i = layer i + 1; a stage's input is the previous
    stage's output and its output is returned as it is (no output norms).

    Composite stages are the family's stages: CBNet's stage i is the layer the family's ``out_indices`` call i + 1
    where they count the stem (i where they do not). The family's own ``frozen_stages`` keep their meaning in every
    branch, since every branch runs the family's ``train()``.
    """

    connection_norm_cfg = dict(type='BN', requires_grad=True)
    #: strided 3x3 convs (padding 1), 'same'-padded convs and stride-1 pools run on any map, even 1x1
    probe_cells = 1
    #: the family's ``out_indices`` count the stem as layer 0 (CSPNeXt, CSPDarknet, Darknet, EfficientNet)
    stem_counted = True

    def layer_names(self, backbone: nn.Module) -> List[str]:
        """Dotted names of the stem and of every stage, in running order."""
        raise NotImplementedError

    def num_stages(self, backbone: nn.Module) -> int:
        return len(self.layer_names(backbone)) - 1

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        return self.layer_names(backbone)[:1]

    def stage_modules(self, backbone: nn.Module, i: int) -> List[str]:
        return [self.layer_names(backbone)[i + 1]]

    def _family_indices(self, backbone: nn.Module) -> Sequence[int]:
        return sorted(set(backbone.out_indices))  # the family returns its layers in running order, once each

    def out_indices(self, backbone: nn.Module) -> Sequence[int]:
        shift = 1 if self.stem_counted else 0
        return tuple(i - shift for i in self._family_indices(backbone))

    def check(self, backbone: nn.Module) -> None:
        if self.stem_counted and 0 in self._family_indices(backbone):
            names = self.layer_names(backbone)
            raise ValueError(
                f'{type(backbone).__name__} inside CBNet: out_indices {tuple(backbone.out_indices)} include 0, the '
                f'stem ({names[0]}). CBNet composes and returns the outputs of the stages ({", ".join(names[1:])} '
                f'= out_indices 1..{len(names) - 1}); drop 0 from out_indices.')

    def run_stem(self, backbone: nn.Module, x: Tensor) -> Tensor:
        return backbone.get_submodule(self.layer_names(backbone)[0])(x)

    def run_stage(self, backbone: nn.Module, i: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        out = backbone.get_submodule(self.layer_names(backbone)[i + 1])(h)
        return out, out
