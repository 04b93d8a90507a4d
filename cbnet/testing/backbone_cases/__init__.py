"""One test case per backbone family, discovered from this package.

``tests/test_backbone_families.py`` runs the same checks on every case and fails for a registered adapter that
no case covers, so a new family cannot be forgotten. A family adds a module here that defines
``CASES = [BackboneCase(...), ...]`` (a family may have several variants); no other file changes. Case names
are also the keys of :data:`cbnet.testing.FAMILIES`.
"""
import copy
import importlib
import itertools
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch.nn as nn

#: writes ``backbone``'s weights to ``path`` in the family's real checkpoint file format and returns the
#: inner-config overrides that load that file (``init_cfg``, and e.g. ``convert_weights=True``), or None for a
#: family that loads no backbone checkpoint (HourglassNet refuses any ``init_cfg``): its file is then a detector
#: checkpoint (``backbone.*`` keys), which the harness loads as ``load_from`` does, expanded into every branch
CheckpointWriter = Callable[[nn.Module, str], Optional[dict]]


def option_grid(**axes: Sequence) -> List[dict]:
    """Every combination: ``option_grid(frozen_stages=(-1, 0), norm_eval=(False, True))`` -> 4 dicts."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


@dataclass(frozen=True)
class BackboneCase:
    """What the per-family harness needs to know about one backbone family (or variant of one).

    Args:
        name: unique case name (``'ResNet'``, ``'DetectoRS-SAC'``), the test id.
        config: tiny inner-backbone config with ``init_cfg=None`` (narrow: the harness builds it ~30 times).
        write_checkpoint: see :data:`CheckpointWriter`; its file must provide every weight of the backbone.
        options: inner-backbone option sets whose training behaviour (frozen parameters, train/eval mode of
            every module) the composite must reproduce in every branch: the family's ``frozen_stages``,
            ``norm_eval``, ... values. ``({},)`` when it has none.
        with_cp: the family has ``with_cp`` (gradient checkpointing); the harness checks equal outputs/grads.
        image_size: image side for the forward checks (families with deformable convs need larger maps).
        requires: optional packages the family needs; the case exists only where they import.
        rebuilt: name endings of tensors the family recomputes instead of loading (its load hook drops them
            from every checkpoint, e.g. Swin v2's position tables): the checkpoint's random values skip them.
    """

    name: str
    config: dict
    write_checkpoint: CheckpointWriter
    options: Sequence[dict] = ({}, )
    with_cp: bool = False
    image_size: int = 64
    requires: Tuple[str, ...] = field(default=())
    rebuilt: Tuple[str, ...] = field(default=())

    def inner(self, **overrides) -> dict:
        """A copy of the tiny config with ``overrides`` applied."""
        cfg = copy.deepcopy(self.config)
        cfg.update(copy.deepcopy(overrides))
        return cfg


def _importable(packages: Sequence[str]) -> bool:
    try:
        for package in packages:
            importlib.import_module(package)
    except ImportError:
        return False
    return True


def discover() -> Dict[str, BackboneCase]:
    """Every case of every module in this package whose optional packages import, by name."""
    cases: Dict[str, BackboneCase] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f'{__name__}.{info.name}')
        if not hasattr(module, 'CASES'):
            raise AttributeError(f'{module.__name__} must define CASES = [BackboneCase(...), ...]')
        for case in module.CASES:
            if case.name in cases:
                raise ValueError(f'backbone case name {case.name!r} is defined twice ({info.name})')
            if _importable(case.requires):
                cases[case.name] = case
    return cases


CASES: Dict[str, BackboneCase] = discover()

__all__ = ['BackboneCase', 'CASES', 'CheckpointWriter', 'discover', 'option_grid']
