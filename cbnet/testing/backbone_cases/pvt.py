"""mmdet's PVT and PVTv2, loaded from the original PVT file layout (``whai362/PVT`` releases: a bare state dict of
``patch_embed{s}``, ``pos_embed{s}``, ``block{s}.{j}`` with separate ``q``/``kv`` projections and linear MLPs,
``norm{s}``, plus the classifier's ``cls_token``/``norm``/``head``), which mmdet converts (``convert_weights``,
on by default). The file is written as the inverse of mmdet's ``pvt_convert``. PVT has no training options
besides drop path (0 here, so that train-mode outputs compare exactly)."""
import re
from collections import OrderedDict
from typing import Dict

import torch
import torch.nn as nn

from . import BackboneCase

_KEY = re.compile(r'layers\.(\d+)\.(\d)\.(.*)')
#: mmdet MixFFN layer index -> original MLP name, with / without PVTv2's depth-wise conv
_FFN = {True: {'0': 'fc1', '1': 'dwconv.dwconv', '4': 'fc2'}, False: {'0': 'fc1', '3': 'fc2'}}


def to_original_pvt(mmdet_state: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """mmdet ``PyramidVisionTransformer(V2).state_dict()`` -> keys/values as in the original PVT repository."""
    abs_pos = any(k.endswith('.pos_embed') for k in mmdet_state)
    conv_ffn = any(re.search(r'\.ffn\.layers\.4\.', k) for k in mmdet_state)
    out = OrderedDict()
    for key, value in mmdet_state.items():
        stage, part, rest = _KEY.fullmatch(key).groups()
        s = int(stage) + 1
        if part == '0':
            out[f'patch_embed{s}.' + rest.replace('projection.', 'proj.')] = value
        elif part == '2':
            out[f'norm{s}.{rest}'] = value
        elif rest == '0.pos_embed':
            out[f'pos_embed{s}'] = value
        else:
            index, _, sub = rest.partition('.')
            prefix = f'block{s}.{int(index) - abs_pos}.'
            ffn = re.fullmatch(r'ffn\.layers\.(\d)\.(weight|bias)', sub)
            if sub.startswith('attn.attn.in_proj_'):
                kind = sub[len('attn.attn.in_proj_'):]
                width = value.shape[0] // 3
                out[prefix + f'attn.q.{kind}'], out[prefix + f'attn.kv.{kind}'] = value[:width], value[width:]
            elif sub.startswith('attn.attn.out_proj.'):
                out[prefix + 'attn.proj.' + sub[len('attn.attn.out_proj.'):]] = value
            elif ffn:
                name = _FFN[conv_ffn][ffn.group(1)]
                linear = name != 'dwconv.dwconv' and ffn.group(2) == 'weight'
                out[prefix + f'mlp.{name}.{ffn.group(2)}'] = value.flatten(1) if linear else value
            else:
                out[prefix + sub] = value
    width = next(v for k, v in reversed(list(mmdet_state.items())) if k.endswith('.weight')).shape[0]
    out.update({
        'cls_token': torch.zeros(1, 1, width),
        'norm.weight': torch.ones(width),
        'norm.bias': torch.zeros(width),
        'head.weight': torch.zeros(10, width),
        'head.bias': torch.zeros(10)
    })
    return out


def save_original_pvt(backbone: nn.Module, path: str) -> dict:
    torch.save(to_original_pvt(backbone.state_dict()), path)
    return dict(init_cfg=dict(type='Pretrained', checkpoint=str(path)))


_TINY = dict(
    embed_dims=8,
    num_layers=[1, 1, 1, 1],
    num_heads=[1, 1, 2, 2],
    mlp_ratios=[2, 2, 2, 2],
    drop_path_rate=0.0,
    out_indices=(0, 1, 2, 3),
    init_cfg=None)

CASES = [
    # PVTv1: an absolute position embedding per stage, sized for 64 px, resized to the input by PVT
    BackboneCase(
        'PVT', dict(type='PyramidVisionTransformer', pretrain_img_size=64, **_TINY),
        write_checkpoint=save_original_pvt),
    BackboneCase('PVTv2', dict(type='PyramidVisionTransformerV2', **_TINY), write_checkpoint=save_original_pvt),
]
