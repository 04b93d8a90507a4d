"""Test-only re-derivation of the OFFICIAL CBNetV2 backbone forward, reading an official-format state dict.

Written from the description of the official code, independently of cbnet's CBNet,
compositions and converter: it uses mmdet's plain ResNet / Swin blocks and torch functional ops only, so a
converted checkpoint that gives the same features as this reference gives the features of the official model.

ResNet family (Dual, ``cb_del_stages=1``): the assisting ResNet runs completely; the lead starts from the
assisting ``layer1`` output; before lead ``layer{i+1}`` (i = 1..3) it adds
``sum_j nearest(BN_eval(conv1x1_ij(assist_layer{i+j+1}_out)))`` at the lead's input resolution.

Swin (Dual, ``cb_del_stages=1``): the lead starts from the assisting patch-embedding output; before each lead
stage i it adds ``sum_j nearest(conv1x1_ij or identity(normed assisting output of stage i+j))`` to its tokens.
Original-Swin layout is read directly: the block renames are spelled out here and the ORIGINAL patch merging
(``cat[x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]]`` -> LayerNorm -> Linear) is computed here,
so mmdet's ``swin_converter`` re-ordering is not assumed.
"""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor


def _eval(module):
    module.eval()  # mmdet ResNet.train() returns None: no chaining
    return module


def _sub(state: Dict[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# -- ResNet family -----------------------------------------------------------------------------------------------
def official_cbresnet_forward(state: Dict[str, Tensor],
                              resnet_cfg: dict,
                              x: Tensor,
                              out_indices: Sequence[int] = (0, 1, 2, 3)) -> Tuple[Tensor, ...]:
    assist = _eval(MODELS.build(dict(resnet_cfg, init_cfg=None)))
    assist.load_state_dict(_sub(state, 'backbone.cb_modules.0.'), strict=True)
    lead = _eval(MODELS.build(dict(resnet_cfg, init_cfg=None)))
    lead_state = _sub(state, 'backbone.cb_modules.1.')
    missing = lead.load_state_dict(lead_state, strict=False).missing_keys
    assert all(k.startswith(('conv1.', 'layer1.')) for k in missing), missing  # the official lead's pruning

    h = assist.maxpool(assist.relu(assist.norm1(assist.conv1(x))))
    assist_outs = []
    for name in assist.res_layers:
        h = getattr(assist, name)(h)
        assist_outs.append(h)

    h = assist_outs[0]  # the lead reuses the assisting layer1 output
    lead_outs = [h]
    for i in range(1, 4):
        size = h.shape[-2:]
        for j in range(4 - i):
            p = f'backbone.cb_linears.{i}.{j}.'
            y = F.conv2d(assist_outs[i + j], state[p + '0.weight'])
            y = F.batch_norm(
                y,
                state[p + '1.running_mean'],
                state[p + '1.running_var'],
                state[p + '1.weight'],
                state[p + '1.bias'],
                training=False,
                eps=1e-5)
            h = h + F.interpolate(y, size=size, mode='nearest')
        h = getattr(lead, f'layer{i + 1}')(h)
        lead_outs.append(h)
    return tuple(lead_outs[i] for i in out_indices)


# -- Swin ----------------------------------------------------------------------------------------------------------
def _original_to_mmdet_block_names(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Only the blocks / norms / patch embed; patch merging is kept out (computed by :func:`_patch_merge`)."""
    out = {}
    for k, v in state.items():
        if '.downsample.' in k:
            continue
        k = k.replace('patch_embed.proj.', 'patch_embed.projection.')
        if k.startswith('layers.'):
            k = 'stages.' + k[len('layers.'):]
            k = k.replace('.attn.', '.attn.w_msa.').replace('.mlp.fc1.', '.ffn.layers.0.0.')
            k = k.replace('.mlp.fc2.', '.ffn.layers.1.')
        out[k] = v
    return out


def _patch_merge(tokens: Tensor, hw: Tuple[int, int], state: Dict[str, Tensor], prefix: str):
    """The original Swin PatchMerging on original-layout weights ``{prefix}norm.*`` / ``{prefix}reduction``."""
    b, _, c = tokens.shape
    H, W = hw
    x = tokens.view(b, H, W, c)
    x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
    new_hw = (x.shape[1], x.shape[2])
    x = x.reshape(b, -1, 4 * c)
    x = F.layer_norm(x, (4 * c, ), state[prefix + 'norm.weight'], state[prefix + 'norm.bias'])
    return F.linear(x, state[prefix + 'reduction.weight']), new_hw


def _swin_stage(swin, state: Dict[str, Tensor], i: int, tokens: Tensor, hw: Tuple[int, int]):
    """Stage i: blocks, normed NCHW output, original patch merging -> (next tokens, next hw, output)."""
    for block in swin.stages[i].blocks:
        tokens = block(tokens, hw)
    out = getattr(swin, f'norm{i}')(tokens)
    out = out.view(-1, *hw, out.shape[-1]).permute(0, 3, 1, 2)
    prefix = f'layers.{i}.downsample.'
    if prefix + 'reduction.weight' in state:
        tokens, hw = _patch_merge(tokens, hw, state, prefix)
    return tokens, hw, out


def _build_swin(swin_cfg: dict, state: Dict[str, Tensor], lead: bool):
    swin = _eval(MODELS.build(dict(swin_cfg, init_cfg=None, convert_weights=False)))
    result = swin.load_state_dict(_original_to_mmdet_block_names(state), strict=False)
    allowed = ('stages.', ) if not lead else ('stages.', 'patch_embed.')
    assert all(
        k.startswith(allowed) and ('downsample' in k or k.startswith('patch_embed.'))
        for k in result.missing_keys), result.missing_keys
    assert not result.unexpected_keys, result.unexpected_keys
    return swin


def official_cbswin_forward(state: Dict[str, Tensor],
                            swin_cfg: dict,
                            x: Tensor,
                            out_indices: Sequence[int] = (0, 1, 2, 3)) -> Tuple[Tensor, ...]:
    assist_state = _sub(state, 'backbone.cb_modules.0.')
    lead_state = _sub(state, 'backbone.cb_modules.1.')
    assist = _build_swin(swin_cfg, assist_state, lead=False)
    lead = _build_swin(swin_cfg, lead_state, lead=True)
    num_stages = len(assist.stages)

    tokens, hw = assist.patch_embed(x)
    start = assist.drop_after_pos(tokens), hw  # what the lead starts from
    h, assist_outs = start, []
    for i in range(num_stages):
        tokens, hw, out = _swin_stage(assist, assist_state, i, *h)
        h = tokens, hw
        assist_outs.append(out)

    (tokens, hw), lead_outs = start, []
    for i in range(num_stages):
        for j in range(num_stages - i):
            p = f'backbone.cb_linears.{i}.{j}.'
            y = assist_outs[i + j]
            if p + 'weight' in state:
                y = F.conv2d(y, state[p + 'weight'], state[p + 'bias'])
            else:
                assert y.shape[1] == tokens.shape[-1], f'{p}: an identity connection needs equal widths'
            y = F.interpolate(y, size=hw, mode='nearest')
            tokens = tokens + y.flatten(2).transpose(1, 2)
        tokens, hw_next, out = _swin_stage(lead, lead_state, i, tokens, hw)
        hw = hw_next
        lead_outs.append(out)
    return tuple(lead_outs[i] for i in out_indices)


# -- neck ----------------------------------------------------------------------------------------------------------
def official_fpn_forward(state: Dict[str, Tensor], fpn_cfg: dict, feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
    """The official CBFPN in eval mode is mmdet's FPN on the lead's features."""
    fpn = _eval(MODELS.build(dict(fpn_cfg, type='FPN', init_cfg=None)))
    fpn.load_state_dict(_sub(state, 'neck.'), strict=True)
    return fpn(tuple(feats))
