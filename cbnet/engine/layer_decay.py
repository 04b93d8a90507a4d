"""Layer-wise lr decay (ConvNeXt recipes) for composite backbones.

mmdet's ``LearningRateDecayOptimizerConstructor`` assigns a layer id from the parameter name
(``backbone.stages.2.4...``) and checks that the backbone class is a ConvNeXt: with ``CBNet`` it raises, and
the branch names (``backbone.branches.1.stages.2.4...``) would not match anyway. This constructor shows mmdet's
the names it expects: every branch's parameter under the inner backbone's name, and each composite connection
as part of the first block of the stage it feeds. mmdet's own code then does the grouping.
"""
import re
from typing import Iterator, List, Tuple

import torch.nn as nn
from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..models.backbones import CBNet

_BRANCH = re.compile(r'^backbone\.branches\.\d+\.')
_CONNECTION = re.compile(r'^backbone\.composition\.connections\.\d+\.into(\d+)_from\d+\.')


def inner_backbone_name(name: str) -> str:
    """``backbone.branches.k.X`` -> ``backbone.X``; a connection into stage t -> ``backbone.stages.t.0...``."""
    name = _BRANCH.sub('backbone.', name)
    match = _CONNECTION.match(name)
    if match:
        name = f'backbone.stages.{match.group(1)}.0.cb_connection.' + name[match.end():]
    return name


class _InnerBackboneView:
    """What mmdet's constructor reads of the model: ``named_parameters()`` and ``backbone``'s class."""

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        self.backbone = model.backbone.branches[0]

    def named_parameters(self, *args, **kwargs) -> Iterator[Tuple[str, nn.Parameter]]:
        for name, param in self._model.named_parameters(*args, **kwargs):
            yield inner_backbone_name(name), param


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CBLearningRateDecayOptimizerConstructor(LearningRateDecayOptimizerConstructor):
    """``LearningRateDecayOptimizerConstructor`` that also accepts a ``CBNet`` backbone (same ``paramwise_cfg``)."""

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        if isinstance(getattr(module, 'backbone', None), CBNet):
            module = _InnerBackboneView(module)
        super().add_params(params, module, **kwargs)
