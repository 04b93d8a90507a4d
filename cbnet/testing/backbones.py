"""Tiny inner-backbone configs, one per backbone case (narrow, ``init_cfg=None``): fast CPU tests.

The configs live with their families' test cases (:mod:`cbnet.testing.backbone_cases`); ``FAMILIES`` maps
each case name to its config.
"""
from contextlib import contextmanager
from typing import Iterator

import torch

from .backbone_cases import CASES

FAMILIES = {name: case.config for name, case in CASES.items()}


def family(name: str, **overrides) -> dict:
    """A copy of the tiny config of ``name`` (a key of ``FAMILIES``) with ``overrides`` applied."""
    if name not in FAMILIES:
        raise KeyError(f'no tiny backbone {name!r}; known: {", ".join(FAMILIES)}')
    return CASES[name].inner(**overrides)


def images(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def perturb_connections(model: torch.nn.Module, scale: float = 0.1) -> None:
    """Move a composite's connections off zero so that every path carries signal (and gradient)."""
    with torch.no_grad():
        for p in model.composition.parameters():
            p.add_(torch.randn_like(p) * scale + scale)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads. Tiny models run faster on one thread than on two, and far faster when
    the CPU is shared (threads that wait for each other on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
