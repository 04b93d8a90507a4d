"""The part of multi-scale deformable attention that the FLOP counter misses, counted from the shapes.

mmcv's ``MultiScaleDeformableAttention`` (Deformable DETR and DINO encoders/decoders, Mask2Former's pixel
decoder) with C = ``embed_dims``, H heads of D = C / H channels, L levels and P points, on Nq queries of B
images:

- ``value_proj``, ``sampling_offsets``, ``attention_weights``, ``output_proj`` are ``nn.Linear``: counted by
  the tracer (``aten::linear``) on every device.
- The softmax of the attention weights and the arithmetic that turns offsets into sampling locations are
  element-wise: not counted (the counter's convention for every model).
- The sampling: for each of the n = B * Nq * H * L * P * D = B * Nq * L * P * C sampled channel values, one
  bilinear interpolation (4 multiply-adds) and its share of the attention-weighted sum over the L * P samples
  (1 multiply-add): **5 n** multiply-adds.

  - On CPU mmcv runs ``multi_scale_deformable_attn_pytorch``: ``F.grid_sample`` (``aten::grid_sampler``, which
    the counter counts as 4 per output element, i.e. the 4 n of the bilinear part), then an element-wise
    ``mul`` and ``sum`` (not counted): the counter misses **n**.
  - On CUDA (and MLU) mmcv runs its custom op ``MultiScaleDeformableAttnFunction``, traced as one
    ``prim::PythonOp``: the counter misses all **5 n**.

:class:`DeformableAttentionCounter` adds what the counter missed on the device the model runs on, so that
a model's total is the same on CPU and CUDA: linears + 5 n per call.
"""
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

MACS_PER_SAMPLE_CHANNEL = 5  # bilinear interpolation (4) + attention-weighted sum (1)
COUNTED_BY_TRACER_ON_CPU = 4  # aten::grid_sampler: 4 per output element
CUSTOM_OP_DEVICES = ('cuda', 'mlu')  # where mmcv calls MultiScaleDeformableAttnFunction
FORMULA = ('5 * batch * queries * levels * points * embed_dims multiply-adds per call (bilinear sampling 4 + '
           'attention-weighted sum 1 per sampled channel value); the counter already has 4 of them on CPU '
           '(aten::grid_sampler) and none on CUDA (custom op)')


def deformable_attention_classes() -> tuple:
    """The attention classes whose sampling is counted analytically (mmcv's, and subclasses of it)."""
    from mmcv.ops import MultiScaleDeformableAttention
    return (MultiScaleDeformableAttention, )


def sampled_values(module: nn.Module, query: torch.Tensor) -> int:
    """n = B * Nq * L * P * C: how many channel values one call samples."""
    batch_first = bool(getattr(module, 'batch_first', False))
    num_query, batch = (query.shape[1], query.shape[0]) if batch_first else (query.shape[0], query.shape[1])
    return int(batch) * int(num_query) * int(module.num_levels) * int(module.num_points) * int(module.embed_dims)


def missed_flops(module: nn.Module, query: torch.Tensor) -> int:
    """The multiply-adds of one call that the tracer does not count on ``query``'s device."""
    n = sampled_values(module, query)
    if query.device.type in CUSTOM_OP_DEVICES:
        return MACS_PER_SAMPLE_CHANNEL * n
    return (MACS_PER_SAMPLE_CHANNEL - COUNTED_BY_TRACER_ON_CPU) * n


class DeformableAttentionCounter:
    """Records, while active, the missed FLOPs of every deformable-attention call inside ``model``.

    Use around the traced forward::

        with DeformableAttentionCounter(wrapper) as counter:
            analyzer.total()        # the trace runs the forward once
        counter.by_module()         # {'model.encoder.layers.0.self_attn': flops, ...}
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.calls: List[Dict[str, Any]] = []
        self._handles: list = []

    def __enter__(self) -> 'DeformableAttentionCounter':
        classes = deformable_attention_classes()
        for name, module in self.model.named_modules():
            if isinstance(module, classes):
                self._handles.append(module.register_forward_pre_hook(self._hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str):

        def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
            query = args[0] if args else kwargs['query']
            self.calls.append(
                dict(
                    module=name,
                    sampled_values=sampled_values(module, query),
                    flops=missed_flops(module, query),
                    device=query.device.type))

        return record

    def by_module(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for call in self.calls:
            out[call['module']] = out.get(call['module'], 0) + call['flops']
        return out

    def summary(self) -> Optional[Dict[str, Any]]:
        """What was added and why (None if the model has no deformable attention)."""
        if not self.calls:
            return None
        devices = sorted({c['device'] for c in self.calls})
        return dict(
            flops=sum(c['flops'] for c in self.calls),
            calls=len(self.calls),
            sampled_values=sum(c['sampled_values'] for c in self.calls),
            path='custom op (nothing counted by the tracer)' if set(devices)
            & set(CUSTOM_OP_DEVICES) else 'multi_scale_deformable_attn_pytorch (grid_sample counted by the tracer)',
            formula=FORMULA)
