# Copyright (c) cbnet contributors. All rights reserved.
"""The measurements of ``benchmarks/gpu_check.sh`` (run it through that script on a CUDA machine).

    python benchmarks/gpu_bench.py --out DIR            # CUDA: full sizes, AMP
    python benchmarks/gpu_bench.py --out DIR --dry-run  # CPU: the same code at tiny sizes, fp32

Checks, each independent (a failure is recorded and the next check runs); results are written after every
check, so a run cut short still leaves what it measured:
1. ``train``: a few real training iterations (``model.train_step`` with the config's optimizer in an
   ``AmpOptimWrapper``) on generated images and boxes/masks, batch 2 at 800x1333: img/s and peak memory, Dual
   vs the single-backbone mmdet config (Faster R-CNN R50, Mask R-CNN Swin-T).
2. ``detr``: the same for DINO-R50 4-scale (mmdet's recipe, single vs Dual made by ``cbnet.cbnetify``), the
   Dual with ``branch_batching='sequential'`` and ``'stacked'``.
3. ``with_cp``: Dual-Swin-L HTC at 1600x1400, batch 1, AMP, with and without ``with_cp`` on every branch:
   peak memory (goal: fits in 24 GB with it) and step time.
4. ``inference``: eval-mode ``predict`` img/s at batch 1, 800x1333, for the configs of 1.
"""
from __future__ import annotations
import argparse
import copy
import datetime
import json
import os
import os.path as osp
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import torch

from cbnet.analysis import (GIB, ConfigLike, build_model, config_label, environment, ground_truth_kind, load_config,
                            make_batch, measure_latency, num_classes, peak_rss_bytes, reset_peak, sync, versions_line)
from cbnet.analysis.compare import composite_variants

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# (Dual config, its single-backbone mmdet config)
TRAIN_PAIRS = [
    ('configs/cbnet/dual_r50_faster_rcnn.py', 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    ('configs/cbnet/dual_swin_t_mask_rcnn.py', 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'),
]
DINO = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
SWIN_L_HTC = 'configs/cbnet/dual_swin_l_htc.py'


def repo_path(config: str) -> str:
    """Repo-relative configs are resolved against the repo root (the script may run elsewhere)."""
    return config if '::' in config or osp.isabs(config) else osp.join(ROOT, config)


def set_with_cp(backbone_cfg: dict, value: bool) -> None:
    """Turn gradient checkpointing on/off in the innermost backbone (every branch uses it)."""
    while isinstance(backbone_cfg.get('backbone'), dict):
        backbone_cfg = backbone_cfg['backbone']
    # CBSwinTransformer keeps the official name `use_checkpoint`; everything else says `with_cp`.
    backbone_cfg['use_checkpoint' if 'use_checkpoint' in backbone_cfg else 'with_cp'] = value


def build_optim_wrapper(model, cfg, amp: bool):
    from mmengine.optim import build_optim_wrapper as build
    optim_cfg = copy.deepcopy(
        cfg.get('optim_wrapper', dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))))
    optim_cfg['type'] = 'AmpOptimWrapper' if amp else 'OptimWrapper'
    if not amp:
        optim_cfg.pop('loss_scale', None)
    return build(model, optim_cfg)


def generated_batch(model, shape, batch_size: int) -> dict:
    """Packed (not yet preprocessed) random images with the ground truth the model's losses read."""
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(
        batch_size=batch_size,
        image_shapes=(3, *shape),
        num_items=[8] * batch_size,
        num_classes=num_classes(model),
        **ground_truth_kind(model))


def _peak_memory(device: str) -> Dict[str, float]:
    if device.startswith('cuda'):
        return dict(
            peak_allocated_gib=torch.cuda.max_memory_allocated() / GIB,
            peak_reserved_gib=torch.cuda.max_memory_reserved() / GIB)
    return dict(peak_rss_gib=peak_rss_bytes() / GIB)


def train_iters(config: ConfigLike,
                shape,
                batch_size: int,
                warmup: int,
                iters: int,
                device: str,
                amp: bool,
                with_cp: Optional[bool] = None,
                label: Optional[str] = None) -> Dict[str, Any]:
    """img/s and peak memory of real training iterations (``train_step``) on generated data."""
    cfg = load_config(repo_path(config) if isinstance(config, str) else config)
    if with_cp is not None:
        set_with_cp(cfg.model.backbone, with_cp)
    reset_peak(device)
    torch.manual_seed(0)
    model = build_model(cfg, device).train()
    # Real optimizer steps need the recipe's initialisation (random weights from it: Pretrained init_cfgs are
    # dropped); PyTorch's default init lets e.g. DINO diverge within a step or two.
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg, amp)
    data = generated_batch(model, shape, batch_size)
    losses = None
    for _ in range(warmup):
        losses = model.train_step(data, optim_wrapper)
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        losses = model.train_step(data, optim_wrapper)
    sync(device)
    elapsed = time.perf_counter() - start
    out = dict(
        config=label or config_label(config),
        shape=list(shape),
        batch_size=batch_size,
        amp=amp,
        with_cp=with_cp,
        branch_batching=cfg.model.get('branch_batching'),
        iters=iters,
        s_per_iter=elapsed / iters,
        img_per_s=batch_size * iters / elapsed,
        loss=float(losses['loss']) if losses and 'loss' in losses else None,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    out.update(_peak_memory(device))
    del model, optim_wrapper, data
    reset_peak(device)
    return out


def inference(config: str,
              shape,
              warmup: int,
              iters: int,
              device: str,
              test_cfg_from: Optional[str] = None) -> Dict[str, Any]:
    """Eval ``predict`` img/s at batch 1. ``test_cfg_from``: take that config's ``model.test_cfg`` so that a Dual
    config (e.g. with soft-NMS at score 0.001) and its single config post-process alike and the comparison
    measures the backbones."""
    cfg = load_config(repo_path(config))
    if test_cfg_from:
        cfg.model.test_cfg = load_config(repo_path(test_cfg_from)).model.test_cfg
    model = build_model(cfg, device).eval()
    batch = make_batch(model, shape, 1, training=False)
    timing = measure_latency(model, batch, device, warmup, iters)
    del model
    reset_peak(device)
    return dict(
        config=config,
        shape=list(shape),
        img_per_s=1 / timing['median_s'],
        median_s=timing['median_s'],
        test_cfg_from=test_cfg_from)


def run_check(results: Dict[str, Any], name: str, fn: Callable[[], Any], save) -> None:
    print(f'== {name}', flush=True)
    start = time.perf_counter()
    try:
        results['checks'][name] = dict(ok=True, result=fn())
    except Exception as exc:  # record and go on: one broken check must not hide the others
        results['checks'][name] = dict(
            ok=False, error=f'{type(exc).__name__}: {exc}', traceback=traceback.format_exc()[-4000:])
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    results['checks'][name]['seconds'] = round(time.perf_counter() - start, 1)
    print(
        json.dumps(results['checks'][name].get('result', results['checks'][name].get('error')), default=str)[:2000],
        flush=True)
    save()


def ratio_lines(results: Dict[str, Any]) -> List[str]:
    """Dual over single img/s and peak memory for every measured pair (``RATIO_PAIRS``)."""

    def get(name):
        check = results['checks'].get(name)
        return check['result'] if check and check['ok'] else None

    lines = []
    for dual, single in results.get('ratio_pairs', []):
        a, b = get(dual), get(single)
        if a is None or b is None:
            continue
        peak = 'peak_allocated_gib' if 'peak_allocated_gib' in a else 'peak_rss_gib'
        lines.append(f'- {dual} / {single}: time per image {b["img_per_s"] / a["img_per_s"]:.2f}x, '
                     f'peak memory {a[peak] / b[peak]:.2f}x')
    return lines


def markdown(results: Dict[str, Any]) -> str:
    env = results['environment']
    lines = [
        f"# GPU check ({'DRY RUN on CPU, tiny sizes' if results['dry_run'] else 'CUDA'})", '',
        f"Generated {results['date']} by `{results['command']}`.", '',
        'Inference of a Dual config uses its single config\'s test_cfg (same post-processing); random '
        'weights, generated images.', '', f"Device {env.get('gpu', env['cpu'])}; versions: {versions_line(env)}; "
        f"mmcv ops: {results['mmcv_ops']}", '',
        '| check | config | shape x batch | AMP | with_cp | img/s | s/iter | peak GiB |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for name, check in results['checks'].items():
        if not check['ok']:
            lines.append(f"| {name} | FAILED: {check['error'][:150]} | | | | | | |")
            continue
        for r in check['result'] if isinstance(check['result'], list) else [check['result']]:
            peak = r.get('peak_allocated_gib', r.get('peak_rss_gib'))
            lines.append(f"| {name} | {osp.basename(r['config'])} | {r['shape'][0]}x{r['shape'][1]} x "
                         f"{r.get('batch_size', 1)} | {r.get('amp', '-')} | {r.get('with_cp', '-')} | "
                         f"{r['img_per_s']:.2f} | {r.get('s_per_iter', r.get('median_s')):.3f} | " +
                         (f'{peak:.2f}' if peak is not None else '-') + ' |')
    ratios = ratio_lines(results)
    if ratios:
        lines += ['', 'Training ratios (time per image and peak memory, Dual over single):'] + ratios
    return '\n'.join(lines) + '\n'


def mmcv_ops_kind() -> str:
    import mmcv._ext as ext
    return 'torchvision shim (benchmarks/mmcv_ext_shim.py)' if getattr(ext, 'SHIM', False) else 'compiled'


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True)
    parser.add_argument(
        '--dry-run', action='store_true', help='CPU, fp32, tiny shapes, one iteration: exercises the same code')
    parser.add_argument('--skip', nargs='*', default=[], help='checks to skip (by name prefix)')
    parser.add_argument('--command', help='the command line to record (gpu_check.sh passes its own)')
    args = parser.parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel('WARNING')  # no per-parameter optimizer logs
    dry = args.dry_run
    device = 'cpu' if dry else 'cuda'
    if not dry and not torch.cuda.is_available():
        parser.error('CUDA is not available: run with --dry-run on a CPU machine')
    amp = not dry
    train_shape, big_shape = ((128, 160), (160, 128)) if dry else ((800, 1333), (1600, 1400))
    # DINO selects 900 two-stage queries from the encoder tokens: the dry run needs >= 900 of them
    detr_shape = (256, 320) if dry else train_shape
    warmup, iters = (1, 1) if dry else (3, 10)
    os.makedirs(args.out, exist_ok=True)
    results: Dict[str, Any] = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        command=args.command or 'python benchmarks/gpu_bench.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
        dry_run=dry,
        environment=environment(),
        mmcv_ops=mmcv_ops_kind(),
        checks={},
        ratio_pairs=[])

    def save() -> None:
        with open(osp.join(args.out, 'gpu_check.json'), 'w') as f:
            json.dump(results, f, indent=2, default=str)
        with open(osp.join(args.out, 'gpu_check.md'), 'w') as f:
            f.write(markdown(results))

    def wanted(name: str) -> bool:
        return not any(name.startswith(s) for s in args.skip)

    if wanted('train'):
        for dual, single in TRAIN_PAIRS:
            for config in (dual, single):
                run_check(
                    results,
                    f'train:{osp.basename(config)}',
                    lambda c=config: train_iters(c, train_shape, 2, warmup, iters, device, amp),
                    save)
            results['ratio_pairs'].append((f'train:{osp.basename(dual)}', f'train:{osp.basename(single)}'))
    if wanted('detr'):
        variants = composite_variants(DINO)  # single, Dual sequential, Dual stacked
        for label, cfg in variants.items():
            run_check(
                results,
                f'detr:DINO-R50 {label}',
                lambda c=cfg, n=label: train_iters(c, detr_shape, 2, warmup, iters, device, amp, label=f'DINO-R50 {n}'),
                save)
        results['ratio_pairs'] += [(f'detr:DINO-R50 {label}', 'detr:DINO-R50 single') for label in variants
                                   if label != 'single']
    if wanted('with_cp'):
        for with_cp in (True, False):  # with_cp first: without it may run out of memory
            run_check(
                results,
                f'with_cp={with_cp}:{osp.basename(SWIN_L_HTC)}',
                lambda w=with_cp: train_iters(SWIN_L_HTC, big_shape, 1, 1, 2 if not dry else 1, device, amp, with_cp=w),
                save)
    if wanted('inference'):
        for dual, single in TRAIN_PAIRS:
            for config, test_cfg_from in ((dual, single), (single, None)):
                run_check(
                    results,
                    f'inference:{osp.basename(config)}',
                    lambda c=config, t=test_cfg_from: inference(c, train_shape, warmup, iters, device, t),
                    save)
    save()
    print(markdown(results))
    return results


if __name__ == '__main__':
    main()
