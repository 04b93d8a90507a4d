"""Write mmdet Swin weights in the ORIGINAL Swin layout (what the released Swin/CBNetV2 files contain).

Written for the tests as the inverse of mmdet's ``swin_converter``: the key renames are reversed and the
patch-merging re-ordering is undone with the inverse permutation, found by running mmdet's own converter on
index tensors (so the two can never disagree silently).
"""
from collections import OrderedDict
from typing import Dict

import torch
from mmdet.models.backbones.swin import swin_converter


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
        k = k.replace('attn.w_msa.', 'attn.').replace('ffn.layers.0.0.', 'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.')
        if 'downsample.reduction.' in k and v.dim() == 2:
            v = v[:, _inverse_permutation(k, v.shape[1], True)]
        elif 'downsample.norm.' in k:
            v = v[_inverse_permutation(k, v.shape[0], False)]
        out[k] = v
    return out
