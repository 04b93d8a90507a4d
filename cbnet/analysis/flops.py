"""FLOPs of a model's tensor forward: mmengine's ``FlopAnalyzer`` (fvcore's counter) plus the rules it lacks.

Convention: one fused multiply-add = one FLOP (the CBNetV2, Swin and DETR papers' tables).

Counted: convolutions, linears, matmul/bmm/einsum (so attention products), norms, nearest/bilinear
upsampling (the composite connections' resizes), adaptive pooling, ``grid_sample`` (4 per output element), plus
rules added here: ``aten::baddbmm`` (attention scores with an additive mask, e.g. Mask2Former's masked
cross-attention), ``aten::scaled_dot_product_attention`` (``F.scaled_dot_product_attention``: mmpretrain's and
timm's ViT attention) and ``aten::_native_multi_head_attention`` (``nn.MultiheadAttention`` in eval with
``batch_first=True``, which runs as that one fused op: projections and attention); and, from the shapes, the
sampling of multi-scale deformable attention that the tracer misses (see :mod:`cbnet.analysis.deformable`).

Not counted (no rule in the counter, by its convention): element-wise operators (additions, activations
other than the ignored ReLU, softmax, the composite connections' sums, sine position encodings, box
arithmetic), and custom ops that do not trace as aten ops (mmcv RoIAlign, NMS, deformable convolution). The
operators met are listed per model (``uncounted_ops``), with the number of times each ran.
"""
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

from .breakdown import split_by_module
from .deformable import DeformableAttentionCounter
from .inputs import TensorForward

FLOP_CONVENTION = '1 multiply-add = 1 FLOP'
_WRAPPED = 'model'  # the model's name inside TensorForward


def _shape(value) -> List[int]:
    from mmengine.analysis.jit_handles import get_shape
    return list(get_shape(value))


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def baddbmm_flop_jit(inputs: list, outputs: list) -> int:
    """``baddbmm(bias, b1, b2)``: the b1 @ b2 batch product (the bias addition is element-wise)."""
    (b, n, m), p = _shape(inputs[1]), _shape(inputs[2])[-1]
    return b * n * m * p


def sdpa_flop_jit(inputs: list, outputs: list) -> int:
    """``scaled_dot_product_attention(q, k, v)``: q @ k^T and softmax(.) @ v."""
    q, k, v = (_shape(t) for t in inputs[:3])
    return _prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def native_mha_flop_jit(inputs: list, outputs: list) -> int:
    """``_native_multi_head_attention(q, k, v, ...)``, the inference fast path of ``nn.MultiheadAttention`` (eval,
    ``batch_first=True``): the q, k, v and output projections, q @ k^T and softmax(.) @ v, on (B, L, E) inputs."""
    q, k = _shape(inputs[0]), _shape(inputs[1])
    batch, embed, lq, lk = _prod(q[:-2]), q[-1], q[-2], k[-2]
    projections = batch * (2 * lq + 2 * lk) * embed * embed
    return projections + batch * lq * lk * 2 * embed


#: rules that mmengine's FlopAnalyzer lacks
EXTRA_OP_HANDLES = {
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::_native_multi_head_attention': native_mha_flop_jit,
}


def _analyzer(wrapper: nn.Module, inputs: torch.Tensor):
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(wrapper, (inputs, ))
    analyzer.set_op_handle(**EXTRA_OP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def _with_ancestors(counts: Dict[str, int], extra: Dict[str, int]) -> Dict[str, int]:
    """``counts`` plus each ``extra[name]`` added to that module and to every module that contains it."""
    out = dict(counts)
    for name, value in extra.items():
        parts = name.split('.')
        for k in range(len(parts) + 1):
            prefix = '.'.join(parts[:k])
            out[prefix] = out.get(prefix, 0) + value
    return out


def trace_flops(model: nn.Module, inputs: torch.Tensor, data_samples: Optional[list] = None) -> Dict[str, Any]:
    """Trace ``model``'s tensor forward once (no grad, in its current train/eval mode).

    Returns ``total`` (counter + analytic), ``counter_total``, ``by_module`` (``'model.<name>'`` -> FLOPs,
    analytic counts included), ``uncounted_ops`` and ``analytic`` (what was added from the shapes and why).
    """
    wrapper = TensorForward(model, data_samples)
    with torch.no_grad(), DeformableAttentionCounter(wrapper) as deformable:
        analyzer = _analyzer(wrapper, inputs)
        counter_total = int(analyzer.total())  # runs the trace, with the hooks on
    by_module = _with_ancestors({k: int(v) for k, v in analyzer.by_module().items()}, deformable.by_module())
    analytic = {}
    if deformable.summary():
        analytic['deformable_attention_sampling'] = deformable.summary()
    return dict(
        total=by_module.get('', 0),
        counter_total=counter_total,
        by_module=by_module,
        uncounted_ops=dict(sorted(analyzer.unsupported_ops().items())),
        analytic=analytic)


def count_flops_module(module: nn.Module, inputs: torch.Tensor) -> int:
    """Total FLOPs of ``module(inputs)`` (any module; the current train/eval mode)."""
    return trace_flops(module, inputs)['total']


def count_flops(model: nn.Module, batch: dict) -> Dict[str, Any]:
    """FLOPs of the eval-mode tensor forward of ``batch`` (``make_batch(..., training=False)``), split by module,
    branch and head part (see :func:`~cbnet.analysis.breakdown.split_by_module`)."""
    model.eval()
    traced = trace_flops(model, batch['inputs'], batch.get('data_samples'))
    by_module = traced['by_module']
    stats = split_by_module(lambda name: by_module.get(name, 0), model, _WRAPPED, total=traced['total'])
    stats.update(
        counter_total=traced['counter_total'], uncounted_ops=traced['uncounted_ops'], analytic=traced['analytic'])
    return stats
