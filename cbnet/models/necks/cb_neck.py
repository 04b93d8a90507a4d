"""``CBFPN`` and ``CBNeck``: the names official CBNetV2 configs (and some of cbnet's) give the shared neck.

A CB detector itself runs its neck once per branch (``AssistedDetectorMixin.extract_feat``), so the neck
shared by all branches is simply the plain mmdet neck. These names build exactly that (the same class, the
same state-dict keys, so a plain detector's neck weights load unchanged); they exist for configs written in
the official dialect. A plain neck given all branches' features (a composite backbone in training under a
non-CB detector) refuses them with an error that names the fix (:class:`~cbnet.models.MultiBranchFeatures`).
"""
import torch.nn as nn
from mmdet.models.necks import FPN
from mmdet.registry import MODELS

#: the official CBNetV2 name of the FPN shared by all branches: mmdet's FPN itself. Both names are registered
#: in mmdet's MODELS by :mod:`cbnet.global_effects` (with the other generated entries).
CBFPN = FPN


def CBNeck(neck: dict) -> nn.Module:  # noqa: N802  (a registry type name)
    """``dict(type='CBNeck', neck=dict(type='PAFPN', ...))``: the wrapped neck, built as it is."""
    if not isinstance(neck, dict) or 'type' not in neck:
        raise TypeError("CBNeck needs neck=dict(type=..., ...), the config of the neck to share, e.g. "
                        "neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5)")
    return MODELS.build(neck)
