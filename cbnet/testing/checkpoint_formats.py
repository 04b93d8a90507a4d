"""Backbone checkpoints in the file formats the families' ``init_weights`` really load, written by the tests.

- torchvision (``torchvision://resnet50``): a bare state dict with the ResNet keys (mmdet uses the same names).
- OpenMMLab zoo (``open-mmlab://...``, mmdet model files): ``{'state_dict': ..., 'meta': ...}``.
- original Swin (the released Swin/CBNetV2 ImageNet files): ``{'model': ...}`` in the original key layout,
  loaded with ``convert_weights=True``. Written as the inverse of mmdet's ``swin_converter``: the key renames
  are reversed and the patch-merging re-ordering is undone with the inverse permutation, found by running
  mmdet's own converter on index tensors (so the two can never disagree silently).
- mmpretrain classifier: ``{'state_dict': {'backbone.*', 'head.*'}, 'meta': ...}``, loaded with
  ``prefix='backbone.'``.

Each writer returns the inner-config overrides that load its file.
"""
from collections import OrderedDict
from typing import Dict, Sequence

import torch
import torch.nn as nn
from mmdet.models.backbones.swin import swin_converter


def _pretrained(path: str, **kwargs) -> dict:
    return dict(init_cfg=dict(type='Pretrained', checkpoint=str(path), **kwargs))


def randomize_(module: nn.Module, seed: int = 0, scale: float = 0.05, skip: Sequence[str] = ()) -> nn.Module:
    """Move every floating-point tensor (norm statistics included) off its initial value, so that a loaded
    checkpoint is told apart from a fresh initialisation; running variances stay positive. Tensors whose names
    end with one of ``skip`` stay (tables a family recomputes and never loads)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            if not t.is_floating_point() or t.numel() == 0 or name.endswith(tuple(skip)):
                continue
            noise = torch.randn(t.shape, generator=g, dtype=t.dtype)
            if name.endswith('running_var'):
                t.mul_(1 + 0.5 * torch.rand(t.shape, generator=g, dtype=t.dtype))
            else:
                t.add_(scale * noise)
    return module


def calibrate_norms_(module: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``module`` on ``x``, as training would: with
    random weights and untouched statistics, eval-mode activations grow layer by layer (to inf in deep or
    weight-standardised nets), and a checkpoint has realistic statistics."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    was_training = module.training
    module.train()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics
        m.train()
    with torch.no_grad():
        module(x)
    for m, (momentum, training) in zip(norms, saved):
        m.momentum, m.training = momentum, training
    module.train(was_training)
    return module


def save_torchvision(backbone: nn.Module, path: str) -> dict:
    torch.save(backbone.state_dict(), path)
    return _pretrained(path)


def save_openmmlab(backbone: nn.Module, path: str) -> dict:
    torch.save({'state_dict': backbone.state_dict(), 'meta': {'note': 'backbone weights'}}, path)
    return _pretrained(path)


def save_mmpretrain_classifier(backbone: nn.Module, path: str, num_classes: int = 10) -> dict:
    """The backbone under ``backbone.`` plus a linear classifier head, as mmpretrain ``ImageClassifier`` saves
    (the head reads the last of ``backbone.channels`` where the backbone has them)."""
    state = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    width = list(getattr(backbone, 'channels', [1]))[-1]
    state.update({'head.fc.weight': torch.zeros(num_classes, width), 'head.fc.bias': torch.zeros(num_classes)})
    torch.save({'state_dict': state, 'meta': {'dataset_meta': {}}}, path)
    return _pretrained(path, prefix='backbone.')


def save_original_swin(backbone: nn.Module, path: str) -> dict:
    torch.save({'model': to_original_swin(backbone.state_dict())}, path)
    return dict(convert_weights=True, **_pretrained(path))


def _inverse_permutation(mmdet_key: str, length: int, is_2d: bool) -> torch.Tensor:
    probe = torch.arange(length, dtype=torch.float64)
    probe = probe.view(1, length) if is_2d else probe
    converted = swin_converter({mmdet_key: probe})['backbone.' + mmdet_key.replace('layers', 'stages', 1)]
    perm = converted.reshape(-1).long()  # converted[i] = original[perm[i]]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(length)
    return inverse


def to_original_swin(mmdet_state: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """mmdet ``SwinTransformer.state_dict()`` -> keys/values as in the original Swin repository."""
    out = OrderedDict()
    for k, v in mmdet_state.items():
        if k.startswith('patch_embed'):
            out[k.replace('projection', 'proj')] = v
            continue
        if not k.startswith('stages'):
            out[k] = v
            continue
        k = k.replace('stages', 'layers', 1)
        for new, old in (('attn.w_msa.', 'attn.'), ('ffn.layers.0.0.', 'mlp.fc1.'), ('ffn.layers.1.', 'mlp.fc2.')):
            k = k.replace(new, old)
        if 'downsample.reduction.' in k and v.dim() == 2:
            v = v[:, _inverse_permutation(k, v.shape[1], True)]
        elif 'downsample.norm.' in k:
            v = v[_inverse_permutation(k, v.shape[0], False)]
        out[k] = v
    return out
