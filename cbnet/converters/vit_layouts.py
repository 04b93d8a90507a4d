"""mmpretrain ``VisionTransformer`` checkpoints (MAE, DeiT, ...) -> ``ViTSAM``'s layout (ViTDet's backbone).

Both classes name their blocks alike (``layers.{i}.ln1/attn.qkv/attn.proj/ln2/ffn``); they differ only where
ViTSAM has no class token: its position embedding is a (1, H, W, C) grid without the class entry (a (1, 1 + HW, C)
one makes ViTSAM's own loader fail), and it has no class token and no final norm. ViTDet starts from MAE weights
exactly this way; the relative position tables, absent from such files, keep their zero initialisation.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Tuple

from torch import Tensor

#: ViT keys ViTSAM has no place for (ViTDet drops them too)
DROPPED = ('cls_token', 'dist_token', 'ln1.weight', 'ln1.bias', 'pre_norm.weight', 'pre_norm.bias')


def vit_to_vitsam_state_dict(state_dict: Dict[str, Tensor],
                             prefix: str = 'backbone.') -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """``(converted, dropped keys)``. Keys outside ``prefix`` (a classifier head, MAE's decoder) are dropped."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped = []
    for key, value in state_dict.items():
        name = key[len(prefix):] if key.startswith(prefix) else None
        if name is None or name in DROPPED:
            dropped.append(key)
            continue
        if name == 'pos_embed':
            if value.dim() != 3:
                raise ValueError(f'{key} has shape {tuple(value.shape)}: not a (1, tokens, C) ViT position embedding')
            side = math.isqrt(value.shape[1])
            extra = value.shape[1] - side * side
            if extra > 2:  # class (and distillation) tokens only
                raise ValueError(f'{key} has {value.shape[1]} tokens: not a square grid plus class tokens')
            value = value[:, extra:].reshape(1, side, side, value.shape[-1])
        out[prefix + name] = value
    if prefix + 'pos_embed' not in out:
        raise ValueError(f'no {prefix}pos_embed in the checkpoint: not an mmpretrain ViT file (or set --prefix)')
    return out, dropped
