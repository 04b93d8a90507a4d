# Copyright (c) cbnet contributors. All rights reserved.
"""A stand-in for mmcv's compiled ``mmcv._ext`` built on torchvision's ops (CPU and CUDA).

Why: compiling mmcv's CUDA ops takes a quarter of an hour or more, and mmcv 2.1 ships no wheels for
recent torch versions. ``benchmarks/gpu_check.sh`` can therefore run on a CUDA machine without compiled
mmcv: it installs mmcv's Python files with this module as ``mmcv/_ext.py``. It implements, with
torchvision's and torch's kernels, the ops that the benchmarked detectors run on the GPU: ``nms`` (RPN,
test-time NMS), ``roi_align_forward``/``roi_align_backward`` (RoI features of box, mask and semantic heads),
``ms_deform_attn_forward``/``ms_deform_attn_backward`` (multi-scale deformable attention of DINO and
Mask2Former, through mmcv's own pure-PyTorch ``multi_scale_deformable_attn_pytorch`` and autograd: slower
than mmcv's kernel, same values), plus ``softnms`` (on the CPU, like mmcv). Any other op exists as a name
(mmcv checks the names at import time) and raises a clear error when called, so a benchmark can never
silently use a wrong op. Semantics follow mmcv's kernels: avg-mode RoIAlign (``pool_mode=1``) with
``aligned`` and ``sampling_ratio`` as given; NMS with ``offset=0``; keep indices sorted by decreasing score.
"""
from typing import Any

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from torch import Tensor

SHIM = True  # lets callers tell the shim from the compiled extension


def nms(bboxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    if offset != 0:
        raise NotImplementedError('mmcv_ext_shim.nms supports offset=0 only (mmdet default)')
    return torch.ops.torchvision.nms(bboxes, scores.to(bboxes.dtype), float(iou_threshold))


def roi_align_forward(input: Tensor, rois: Tensor, output: Tensor, argmax_y: Tensor, argmax_x: Tensor,
                      aligned_height: int, aligned_width: int, spatial_scale: float, sampling_ratio: int,
                      pool_mode: int, aligned: bool) -> None:
    _check_avg(pool_mode)
    output.copy_(
        torch.ops.torchvision.roi_align(input, rois.to(input.dtype), float(spatial_scale), int(aligned_height),
                                        int(aligned_width), int(sampling_ratio), bool(aligned)))


def roi_align_backward(grad_output: Tensor, rois: Tensor, argmax_y: Tensor, argmax_x: Tensor, grad_input: Tensor,
                       aligned_height: int, aligned_width: int, spatial_scale: float, sampling_ratio: int,
                       pool_mode: int, aligned: bool) -> None:
    _check_avg(pool_mode)
    n, c, h, w = grad_input.shape
    grad_input.copy_(
        torch.ops.torchvision._roi_align_backward(grad_output, rois.to(grad_output.dtype), float(spatial_scale),
                                                  int(aligned_height), int(aligned_width), n, c, h, w,
                                                  int(sampling_ratio), bool(aligned)))


def softnms(boxes: Tensor, scores: Tensor, dets: Tensor, iou_threshold: float, sigma: float, min_score: float,
            method: int, offset: int) -> Tensor:
    """Soft-NMS on the CPU (mmcv runs it on the CPU too); fills ``dets`` like mmcv does."""
    boxes, scores = boxes.float().clone(), scores.float().clone()
    areas = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    order = torch.arange(len(boxes))
    keep = []
    while len(order) > 0:
        top = int(torch.argmax(scores[order]))
        i = int(order[top])
        if scores[i] < min_score:
            break
        keep.append(i)
        order = torch.cat([order[:top], order[top + 1:]])
        if len(order) == 0:
            break
        lt = torch.maximum(boxes[i, :2], boxes[order, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[order, 2:])
        wh = (rb - lt + offset).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / (areas[i] + areas[order] - inter)
        if method == 1:  # linear
            decay = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
        elif method == 2:  # gaussian
            decay = torch.exp(-(iou * iou) / sigma)
        else:  # naive NMS
            decay = (iou <= iou_threshold).float()
        scores[order] = scores[order] * decay
    inds = torch.tensor(keep, dtype=torch.long)
    dets[:len(keep), :4] = boxes[inds]
    dets[:len(keep), 4] = scores[inds]
    return inds


def ms_deform_attn_forward(value: Tensor, value_spatial_shapes: Tensor, value_level_start_index: Tensor,
                           sampling_locations: Tensor, attention_weights: Tensor, im2col_step: int) -> Tensor:
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    return multi_scale_deformable_attn_pytorch(value, value_spatial_shapes, sampling_locations, attention_weights)


def ms_deform_attn_backward(value: Tensor, value_spatial_shapes: Tensor, value_level_start_index: Tensor,
                            sampling_locations: Tensor, attention_weights: Tensor, grad_output: Tensor,
                            grad_value: Tensor, grad_sampling_loc: Tensor, grad_attn_weight: Tensor,
                            im2col_step: int) -> None:
    """Fills the three gradient buffers, as mmcv's kernel does (its caller runs without autograd)."""
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    with torch.enable_grad():
        inputs = [t.detach().requires_grad_() for t in (value, sampling_locations, attention_weights)]
        out = multi_scale_deformable_attn_pytorch(inputs[0], value_spatial_shapes, inputs[1], inputs[2])
        grads = torch.autograd.grad(out, inputs, grad_output)
    for buffer, grad in zip((grad_value, grad_sampling_loc, grad_attn_weight), grads):
        buffer.copy_(grad)


def _check_avg(pool_mode: int) -> None:
    if pool_mode != 1:
        raise NotImplementedError("mmcv_ext_shim: RoIAlign pool_mode='max' is not supported")


def __getattr__(name: str) -> Any:
    """Every other mmcv op: present (mmcv asserts the names at import), unusable when called."""
    if name.startswith('__'):
        raise AttributeError(name)

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'mmcv op {name!r} is not provided by benchmarks/mmcv_ext_shim.py (torchvision '
                                  'stand-in for mmcv._ext); build mmcv with compiled ops to run this model')

    return missing


def self_check(device: str = 'cpu') -> None:
    """Compare with mmcv's compiled ops (run where they exist): same NMS keep, same RoIAlign values
    and gradients. ``python benchmarks/mmcv_ext_shim.py``."""
    import importlib.util
    import os.path as osp
    import sys
    this = sys.modules[__name__]
    spec = importlib.util.find_spec('mmcv._ext')
    if spec is None or spec.origin is None or spec.origin == osp.abspath(__file__) \
            or not spec.origin.endswith('.so'):
        raise SystemExit('mmcv._ext is not the compiled extension here: nothing to compare with')
    compiled = importlib.import_module('mmcv._ext')
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=g) * 60], 1).to(device)
    scores = torch.rand(300, generator=g).to(device)
    for thr in (0.3, 0.5, 0.7):
        a = compiled.nms(boxes, scores, iou_threshold=thr, offset=0)
        b = this.nms(boxes, scores, iou_threshold=thr, offset=0)
        assert torch.equal(a.cpu(), b.cpu()), f'nms differs at iou {thr}'
    feats = torch.randn(2, 4, 32, 40, generator=g).to(device)
    rois = torch.cat([torch.randint(0, 2, (20, 1), generator=g).float(), boxes[:20].cpu() / 8], 1)
    rois = rois.to(device)
    for aligned, ratio in ((True, 0), (False, 2)):
        kw = dict(
            aligned_height=7, aligned_width=7, spatial_scale=0.5, sampling_ratio=ratio, pool_mode=1, aligned=aligned)
        outs, grads = [], []
        for ext in (compiled, this):
            out = feats.new_zeros(20, 4, 7, 7)
            ext.roi_align_forward(feats, rois, out, feats.new_zeros(0), feats.new_zeros(0), **kw)
            grad = torch.zeros_like(feats)
            ext.roi_align_backward(torch.ones_like(out), rois, feats.new_zeros(0), feats.new_zeros(0), grad, **kw)
            outs.append(out)
            grads.append(grad)
        assert torch.allclose(outs[0], outs[1], atol=1e-5), f'roi_align forward differs {kw}'
        assert torch.allclose(grads[0], grads[1], atol=1e-4), f'roi_align backward differs {kw}'
    for method in (1, 2):  # linear, gaussian
        dets = [torch.zeros(300, 5), torch.zeros(300, 5)]
        keep = [
            ext.softnms(
                boxes.cpu(), scores.cpu(), d, iou_threshold=0.3, sigma=0.5, min_score=1e-3, method=method, offset=0)
            for ext, d in ((compiled, dets[0]), (this, dets[1]))
        ]
        assert torch.equal(keep[0].long(), keep[1]), f'softnms keep differs (method {method})'
        assert torch.allclose(dets[0][:len(keep[0])], dets[1][:len(keep[1])], atol=1e-5)
    _check_ms_deform_attn(compiled, this, device, g)
    print(f'mmcv_ext_shim matches the compiled mmcv._ext on {device}: nms, roi_align fwd/bwd, softnms, '
          'ms_deform_attn fwd/bwd')


def _check_ms_deform_attn(compiled, this, device: str, g: torch.Generator) -> None:
    """Shim vs mmcv's kernel (CUDA; mmcv has no CPU kernel: there, vs autograd through mmcv's PyTorch version)."""
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    shapes = torch.tensor([[8, 10], [4, 5]], device=device)
    start = torch.tensor([0, 80], device=device)
    value = torch.randn(2, 100, 4, 8, generator=g).to(device)
    loc = torch.rand(2, 30, 4, 2, 3, 2, generator=g).to(device)
    weight = torch.rand(2, 30, 4, 2, 3, generator=g).to(device)
    grad_out = torch.randn(2, 30, 32, generator=g).to(device)
    if device == 'cpu':
        inputs = [t.clone().requires_grad_() for t in (value, loc, weight)]
        expected = multi_scale_deformable_attn_pytorch(inputs[0], shapes, inputs[1], inputs[2])
        expected_grads = torch.autograd.grad(expected, inputs, grad_out)
    else:
        expected = compiled.ms_deform_attn_forward(value, shapes, start, loc, weight, im2col_step=64)
        expected_grads = [torch.zeros_like(t) for t in (value, loc, weight)]
        compiled.ms_deform_attn_backward(value, shapes, start, loc, weight, grad_out, *expected_grads, im2col_step=64)
    out = this.ms_deform_attn_forward(value, shapes, start, loc, weight, im2col_step=64)
    grads = [torch.zeros_like(t) for t in (value, loc, weight)]
    this.ms_deform_attn_backward(value, shapes, start, loc, weight, grad_out, *grads, im2col_step=64)
    assert torch.allclose(out, expected.detach(), atol=1e-5), 'ms_deform_attn forward differs'
    for name, a, b in zip(('value', 'sampling_loc', 'attn_weight'), grads, expected_grads):
        assert torch.allclose(a, b, atol=1e-4), f'ms_deform_attn backward differs ({name})'


if __name__ == '__main__':
    self_check('cuda' if torch.cuda.is_available() else 'cpu')
