"""Necks shared by all branches: ``CBNeck`` wraps any mmdet neck, ``CBFPN`` is the FPN one.

A CB neck IS the wrapped neck (a subclass of its class), so its parameters keep mmdet's names and a plain
detector's neck weights load into it unchanged. Given :class:`MultiBranchFeatures` (training) it runs on every
branch with the same weights; given one pyramid (eval: the lead's) it behaves exactly like the plain neck.
"""
from typing import Dict

import torch.nn as nn
from mmdet.models.necks import FPN
from mmdet.registry import MODELS

from ..structures import MultiBranchFeatures


class BranchwiseNeckMixin:
    """Apply the neck to each branch of :class:`MultiBranchFeatures`, or to a single pyramid as usual."""

    def forward(self, inputs):
        if isinstance(inputs, MultiBranchFeatures):
            return inputs.map(super().forward)
        return super().forward(inputs)


@MODELS.register_module()
class CBFPN(BranchwiseNeckMixin, FPN):
    """FPN shared by all branches (the official ``CBFPN``; same arguments as ``FPN``)."""


_BRANCHWISE: Dict[type, type] = {FPN: CBFPN}


def branchwise(neck_cls: type) -> type:
    """The branch-wise subclass of ``neck_cls`` (created once, then reused)."""
    if issubclass(neck_cls, BranchwiseNeckMixin):
        return neck_cls
    if neck_cls not in _BRANCHWISE:
        name = f'CB{neck_cls.__name__}'
        cls = type(name, (BranchwiseNeckMixin, neck_cls), {
            '__doc__': f'{neck_cls.__name__} shared by all branches of a composite backbone.',
            '__module__': __name__,
        })
        globals()[name] = cls  # importable by name, so it pickles like a normal class
        _BRANCHWISE[neck_cls] = cls
    return _BRANCHWISE[neck_cls]


def CBNeck(neck: dict) -> nn.Module:  # noqa: N802  (a registry type name)
    """``dict(type='CBNeck', neck=dict(type='PAFPN', ...))``: any mmdet neck, shared by all branches."""
    if not isinstance(neck, dict) or 'type' not in neck:
        raise TypeError("CBNeck needs neck=dict(type=..., ...), the config of the neck to share, e.g. "
                        "neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5)")
    args = dict(neck)
    neck_type = args.pop('type')
    neck_cls = MODELS.get(neck_type) if isinstance(neck_type, str) else neck_type
    if neck_cls is None:
        raise KeyError(f'CBNeck: unknown neck type {neck_type!r} in the mmdet registry')
    return branchwise(neck_cls)(**args)


MODELS.register_module(name='CBNeck', module=CBNeck)
