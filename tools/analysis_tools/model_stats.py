# Copyright (c) cbnet contributors. All rights reserved.
"""Parameters, FLOPs, latency and training-step cost of detector configs (a CLI over ``cbnet.analysis``).

    python tools/analysis_tools/model_stats.py CONFIG [CONFIG ...] [--shape H W]
        [--device cpu|cuda] [--train] [--out stats.json]

Answers "what does Dual/Triple cost me?" for any config (R-CNNs, single-stage, DETR/Deformable DETR/DINO,
MaskFormer/Mask2Former, backbone-only): one table row per config and a JSON file.

How each number is measured (details in the modules of ``cbnet.analysis``):
- Models are built with every ``Pretrained`` init_cfg dropped and ``init_weights()`` never called: costs do
  not depend on the weights.
- Params: all parameters, split by top-level module (backbone, neck, encoder, decoder, heads), by part of
  each head, and for a composite backbone per branch and for the composition (the connections).
- FLOPs: mmengine's ``FlopAnalyzer`` (1 fused multiply-add = 1 FLOP) on the eval-mode tensor forward
  ``model._forward`` of one image (as mmdet's ``get_flops.py``: no post-processing), plus rules for
  ``baddbmm``/``scaled_dot_product_attention`` and, from the shapes, the sampling of multi-scale deformable
  attention that the tracer misses (``cbnet.analysis.deformable``). Element-wise ops and custom ops
  (RoIAlign, NMS, deformable convolution) are not counted; the JSON lists them (``flops.uncounted_ops``).
- Latency: eval-mode ``predict`` (post-processing included), batch 1, median of ``--repeat`` runs after
  ``--warmup``. Wall clock by default; on a shared CPU machine ``--timer cpu --threads 1`` counts this
  process' CPU time, which other jobs barely disturb.
- ``--train``: one training step (forward with losses, backward, SGD) on generated images and ground truth,
  in a fresh subprocess per config: median time, the peak memory (CUDA allocator peak; on CPU the peak RSS of
  that process during the step, runtime and libraries included) and what the step added over what was held
  before it (``train step +mem``: activations, gradients, temporaries).
- Threads: ``--threads N``; by default ``OMP_NUM_THREADS`` if set, else the cores free when the tool starts
  (``cbnet.utils.threads``); GPU runs keep torch's.
"""
from __future__ import annotations
import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence

import torch

from cbnet.analysis import (FLOP_CONVENTION, TIMERS, collect_stats, environment, format_table, progress_printer,
                            uncounted_note)
from cbnet.utils.threads import add_threads_argument, configure_cpu_threads


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Params, FLOPs, latency and training-step cost of detector configs.')
    parser.add_argument('configs', nargs='+', help='config files, or scope::path (mmdet::...)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[800, 1333],
        metavar=('H', 'W'),
        help='input image height and width (default 800 1333)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--train', action='store_true', help='also time one training step and measure its peak memory')
    parser.add_argument('--train-batch-size', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first')
    parser.add_argument('--repeat', type=int, default=10, help='timed runs (median reported)')
    parser.add_argument(
        '--timer',
        choices=list(TIMERS),
        default='wall',
        help="wall clock (default) or this process' CPU time (shared CPU machines; with --threads 1)")
    add_threads_argument(parser)
    parser.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    parser.add_argument('--no-latency', action='store_true', help='skip the latency measurement')
    parser.add_argument('--out', help='write the statistics as JSON here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.backbone.with_cp=True')
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda given but CUDA is not available; use --device cpu')
    return args


def write_json(path: str, rows: List[Dict[str, Any]]) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(environment=environment(), flops_convention=FLOP_CONVENTION, results=rows), f, indent=2)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    args = parse_args(argv)
    threads = configure_cpu_threads(args.threads, args.device)
    rows = [
        collect_stats(
            config,
            tuple(args.shape),
            args.device,
            flops=not args.no_flops,
            latency=not args.no_latency,
            train=args.train,
            warmup=args.warmup,
            repeat=args.repeat,
            train_batch_size=args.train_batch_size,
            cfg_options=args.cfg_options,
            progress=progress_printer(i, len(args.configs), config),
            timer=args.timer,
            threads=threads) for i, config in enumerate(args.configs, 1)
    ]
    print(format_table(rows))
    note = uncounted_note(rows)
    if note:
        print('\n' + note)
    if args.out:
        write_json(args.out, rows)
        print(f'wrote {args.out}', file=sys.stderr)
    return rows


if __name__ == '__main__':
    main()
