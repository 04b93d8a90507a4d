"""cbnet.analysis on DETR-family (DINO) and Mask2Former detectors, single and Dual (tiny, CPU)."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmcv.ops import MultiScaleDeformableAttention

from cbnet.analysis import collect_stats, compare, measure_train_step, trace_flops, uncounted_note
from cbnet.analysis.compare import composite_variants
from cbnet.analysis.deformable import missed_flops
from tests.analysis_helpers import TINY_QUERIES, tiny_transformer_config

SIZE = 128
C, LEVELS, POINTS, HEADS = 256, 4, 4, 8  # mmdet's DINO / Mask2Former attention settings (kept by the tiny configs)


def _tokens(strides):
    return sum((SIZE // s)**2 for s in strides)


@pytest.fixture(scope='module', params=['dino', 'mask2former'])
def stats(request):
    kind = request.param
    return kind, [collect_stats(tiny_transformer_config(kind, k), (SIZE, SIZE), latency=False) for k in (1, 2)]


def test_params_add_up_by_module_branch_and_part(stats):
    kind, (single, dual) = stats
    assert (single['model_type'], dual['model_type']) == (('DINO', 'CBDINO') if kind == 'dino' else
                                                          ('Mask2Former', 'CBMask2Former'))
    for r in (single, dual):
        p = r['params']
        assert sum(p['modules'].values()) == p['total']
        assert sum(p['branches']) + p['composition'] == p['backbone'] == p['modules']['backbone']
        for part, children in p['parts'].items():
            assert sum(children.values()) == p['modules'][part]
    assert len(dual['params']['branches']) == 2 and dual['params']['composition'] > 0
    # Only the backbone differs (a pruned second branch and the connections).
    assert {k: v for k, v in dual['params']['modules'].items() if k != 'backbone'} == \
        {k: v for k, v in single['params']['modules'].items() if k != 'backbone'}
    if kind == 'dino':  # transformer and head are top-level modules; DETR's level_embed is a bare parameter
        assert {'neck', 'encoder', 'decoder', 'bbox_head', 'level_embed'} <= set(single['params']['modules'])
    else:  # the head holds the pixel decoder (deformable encoder) and the transformer decoder
        assert {'pixel_decoder', 'transformer_decoder'} <= set(single['params']['parts']['panoptic_head'])


def test_flops_of_the_dual_detector_differ_in_the_backbone_only(stats):
    kind, (single, dual) = stats
    for r in (single, dual):
        f = r['flops']
        assert sum(f['modules'].values()) == f['total'] > f['backbone'] > 0
    assert dual['flops']['total'] > single['flops']['total']
    assert dual['flops']['total'] - single['flops']['total'] == dual['flops']['backbone'] - single['flops']['backbone']
    assert 1.3 < dual['flops']['backbone'] / single['flops']['backbone'] < 2.3


def test_deformable_sampling_is_counted_from_the_shapes(stats):
    kind, (single, dual) = stats
    # Sampled channel values n = queries * levels * points * C per call; on CPU the counter already has the
    # bilinear 4n (grid_sample), so exactly n (the attention-weighted sum) is added.
    if kind == 'dino':  # encoder over 4 levels (strides 8..64) + decoder cross-attention over the queries
        queries = _tokens((8, 16, 32, 64)) + TINY_QUERIES
        levels = LEVELS
    else:  # pixel decoder: deformable encoder over the 3 coarsest levels (strides 8, 16, 32)
        queries, levels = _tokens((8, 16, 32)), 3
    for r in (single, dual):
        analytic = r['flops']['analytic']['deformable_attention_sampling']
        assert analytic['sampled_values'] == queries * levels * POINTS * C
        assert analytic['flops'] == analytic['sampled_values'] == r['flops']['total'] - r['flops']['counter_total']
        assert 'grid_sample' in analytic['path']
        # What the counter does not count is listed: the weighted sum (mul, sum) and the softmax.
        uncounted = set(r['flops']['uncounted_ops'])
        assert {'aten::mul', 'aten::sum', 'aten::softmax'} <= uncounted
        assert 'aten::grid_sampler' not in uncounted and 'aten::baddbmm' not in uncounted
    assert 'deformable_attention_sampling' in uncounted_note([single, dual])


class _Attention(nn.Module):
    """One deformable attention call on given shapes (what DINO's encoder layer runs)."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.attn = MultiScaleDeformableAttention(
            embed_dims=C, num_heads=HEADS, num_levels=levels, num_points=POINTS, batch_first=True)
        self.levels = levels

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        side = int((query.shape[1] // self.levels)**0.5)
        shapes = torch.tensor([[side, side]] * self.levels)
        start = torch.tensor([side * side * i for i in range(self.levels)])
        ref = torch.rand(query.shape[0], query.shape[1], self.levels, 2)
        return self.attn(query, value=query, reference_points=ref, spatial_shapes=shapes, level_start_index=start)


def test_deformable_attention_total_is_linears_plus_5_per_sampled_value():
    levels, side, batch = 2, 6, 2
    queries = levels * side * side
    traced = trace_flops(_Attention(levels), torch.randn(batch, queries, C))
    n = batch * queries * levels * POINTS * C
    linears = batch * queries * C * (C + HEADS * levels * POINTS * 3 + C)  # value, offsets (x, y), weights, output
    assert traced['total'] == linears + 5 * n
    assert traced['total'] - traced['counter_total'] == n  # the counter had the 4n of grid_sample
    # On CUDA the custom op hides the whole sampling from the tracer: all 5n are added.
    fake = SimpleNamespace(shape=(batch, queries, C), device=SimpleNamespace(type='cuda'))
    module = _Attention(levels).attn
    assert missed_flops(module, fake) == 5 * n


@pytest.mark.slow
def test_dual_dino_train_step_with_stacked_branches():
    cfg = tiny_transformer_config('dino', 2, branch_batching='stacked')  # an in-memory config: dumped for the worker
    result = measure_train_step(cfg, (SIZE, SIZE), 'cpu', batch_size=2, warmup=1, repeat=1, timer='cpu', threads=1)
    assert result['loss'] == result['loss'] and result['loss'] > 0
    assert result['peak_mem_increase_bytes'] > 0 and result['input_shape'] == [SIZE, SIZE]


def test_composite_variants_follow_the_detector_kind():
    dino = composite_variants(tiny_transformer_config('dino'))
    assert list(dino) == ['single', 'Dual sequential', 'Dual stacked']
    assert [c.model.type for c in dino.values()] == ['DINO', 'CBDINO', 'CBDINO']
    assert [c.model.get('branch_batching') for c in dino.values()] == [None, 'sequential', 'stacked']
    m2f = composite_variants(tiny_transformer_config('mask2former'), num_backbones=3)
    assert {k: c.model.type for k, c in m2f.items()} == {'single': 'Mask2Former', 'Triple': 'CBMask2Former'}


def test_compare_alternates_variants_and_keeps_the_minimum(monkeypatch):
    calls = []
    fake = {'a': [[3.0, 2.0], [1.5, 4.0]], 'b': [[6.0, 5.0], [3.5, 9.0]]}  # per round: the run's step times
    mem = {'a': [100, 90], 'b': [300, 200]}

    def measure(cfg, *args, **kwargs):
        r = sum(1 for c in calls if c == cfg)
        calls.append(cfg)
        return dict(
            times_s=fake[cfg][r],
            peak_mem_increase_bytes=mem[cfg][r],
            loss=1.0,
            input_shape=[8, 8],
            mem_method='m',
            timer='cpu')

    monkeypatch.setattr(compare, 'measure_train_step', measure)
    out = compare.compare_train_steps({'a': 'a', 'b': 'b'}, (8, 8), 'cpu', 1, rounds=2)
    assert calls == ['a', 'b', 'a', 'b']  # alternating rounds
    assert out['variants']['a']['time_s'] == 1.5 and out['variants']['b']['time_s'] == 3.5
    assert out['ratios']['b'] == dict(time=3.5 / 1.5, memory=200 / 90) and out['baseline'] == 'a'
