"""Attention FLOPs: the counter behind ``tools/analysis_tools/model_stats.py`` counts the attention products of ViTs
(``F.scaled_dot_product_attention``, explicit matmuls, ``nn.MultiheadAttention``'s fused inference op) exactly as
a hand count of a tiny block (1 multiply-add = 1 FLOP)."""
import torch
import torch.nn as nn
from mmdet.registry import MODELS

from cbnet.analysis import EXTRA_OP_HANDLES, trace_flops
from cbnet.testing import load_tool

model_stats = load_tool('tools/analysis_tools/model_stats.py')

C, HEADS, FFN, LAYERS, PATCH, IMAGE = 16, 2, 32, 2, 16, 32
TINY_VIT = dict(
    type='mmpretrain.VisionTransformer',
    arch=dict(embed_dims=C, num_layers=LAYERS, num_heads=HEADS, feedforward_channels=FFN),
    img_size=IMAGE,
    patch_size=PATCH,
    init_cfg=None)


def tokens() -> int:
    return (IMAGE // PATCH)**2 + 1  # patches + the class token


def attention_products(n: int, c: int) -> int:
    """q @ k^T and softmax(.) @ v over all heads: 2 * n * n * c."""
    return 2 * n * n * c


def hand_count_vit() -> int:
    n = tokens()
    patch_embed = (IMAGE // PATCH)**2 * C * 3 * PATCH * PATCH
    layer_norm = 5 * n * C  # fvcore's rule for an affine norm: 5 per element
    block = (2 * layer_norm + n * C * 3 * C + attention_products(n, C) + n * C * C + 2 * n * C * FFN)
    return patch_embed + LAYERS * block + layer_norm  # the final norm


def tiny_vit() -> nn.Module:
    model = MODELS.build(TINY_VIT)
    model.eval()  # mmpretrain's train() returns None
    return model


def test_vit_attention_through_sdpa_is_counted_as_by_hand():
    x = torch.randn(1, 3, IMAGE, IMAGE)
    traced = trace_flops(tiny_vit(), x)
    assert traced['total'] == hand_count_vit()
    assert not any('attention' in op for op in traced['uncounted_ops'])
    per_layer = traced['by_module']['model.layers.0.attn']
    n = tokens()
    assert per_layer == n * C * 3 * C + attention_products(n, C) + n * C * C


def test_explicit_matmul_attention_counts_the_same():
    from mmpretrain.models.utils.attention import scaled_dot_product_attention_pyimpl
    model = tiny_vit()
    for layer in model.layers:
        layer.attn.scaled_dot_product_attention = scaled_dot_product_attention_pyimpl
    assert trace_flops(model, torch.randn(1, 3, IMAGE, IMAGE))['total'] == hand_count_vit()


def test_without_the_sdpa_rule_the_attention_products_would_be_missed():
    handles = dict(EXTRA_OP_HANDLES)
    try:
        del EXTRA_OP_HANDLES['aten::scaled_dot_product_attention']
        missed = trace_flops(tiny_vit(), torch.randn(1, 3, IMAGE, IMAGE))
    finally:
        EXTRA_OP_HANDLES.clear()
        EXTRA_OP_HANDLES.update(handles)
    assert hand_count_vit() - missed['total'] == LAYERS * attention_products(tokens(), C)
    assert 'aten::scaled_dot_product_attention' in missed['uncounted_ops']


class NativeSelfAttention(nn.Module):
    """``nn.MultiheadAttention`` in eval with ``batch_first=True`` runs as ``aten::_native_multi_head_attention``."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(C, HEADS, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


def test_native_multi_head_attention_is_counted_as_by_hand():
    n = 7
    traced = trace_flops(NativeSelfAttention().eval(), torch.randn(2, n, C))
    assert traced['uncounted_ops'] == {}
    projections = 4 * n * C * C  # q, k, v and output
    assert traced['total'] == 2 * (projections + attention_products(n, C))


def test_model_stats_cli_counts_vit_attention(tmp_path, capsys):
    config = tmp_path / 'tiny_vit.py'
    config.write_text(f'model = {TINY_VIT!r}\n')
    rows = model_stats.main([str(config), '--shape', str(IMAGE), str(IMAGE), '--no-latency', '--device', 'cpu'])
    assert rows[0]['flops']['total'] == hand_count_vit()
