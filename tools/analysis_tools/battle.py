# Copyright (c) cbnet contributors. All rights reserved.
"""Battle of the backbones: accuracy against cost, one point per config.

    python tools/analysis_tools/battle.py CONFIG [CONFIG ...] --out DIR [--shape H W]
        [--work-dirs work_dirs] [--metrics CONFIG=PATH ...]

Runs ``cbnet.analysis.collect_stats`` on each config (params, FLOPs, latency, as ``model_stats.py``) and, where
a training or test run left COCO metrics, reads the config's bbox/segm mAP. Writes ``DIR/battle.md`` (table),
``DIR/battle.json`` and ``DIR/battle.png`` (mAP vs GFLOPs and vs latency, one labelled point per config; without
any metrics, latency vs GFLOPs and a title that says so).

Where metrics are looked for: ``--metrics CONFIG=PATH`` (a log, a json file or a work dir), else
``<--work-dirs>/<config name without .py>`` (the default ``work_dir`` of ``tools/train.py`` and ``tools/test.py``);
how a work dir is read: ``cbnet.analysis.metrics``.
"""
from __future__ import annotations
import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence

import torch

from cbnet.analysis import collect_stats, environment, progress_printer, uncounted_note
from cbnet.analysis.metrics import METRIC_KEYS, config_name, find_metrics


def parse_metric_paths(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``--metrics CONFIG=PATH ...`` as {config name: path}."""
    out = {}
    for item in items or []:
        if '=' not in item:
            raise ValueError(f'--metrics expects CONFIG=PATH, got {item!r}')
        config, path = item.split('=', 1)
        out[config_name(config)] = path
    return out


def markdown(rows: List[Dict[str, Any]], shape: Sequence[int], device: str) -> str:
    has_metrics = any(r['metrics'] for r in rows)
    lines = [f'# Battle of the backbones ({shape[0]}x{shape[1]}, {device}, batch 1)', '']
    if not has_metrics:
        lines += ['No COCO metrics were found for any config: cost only.', '']
    lines += [
        '| config | K | params (M) | GFLOPs | latency (ms) | bbox mAP | segm mAP |', '|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        m = r['metrics']
        lines.append(f"| {r['name']} | {r['num_backbones']} | {r['params']['total'] / 1e6:.2f} | "
                     f"{r['flops']['total'] / 1e9:.1f} | {r['latency']['median_s'] * 1e3:.0f} | " +
                     ' | '.join(f'{m[k] * 100:.1f}' if k in m else '-' for k in METRIC_KEYS) + ' |')
    note = uncounted_note(rows)
    if note:
        lines += ['', note]
    sources = [f"- {r['name']}: {r['metrics']['source']}" for r in rows if r['metrics']]
    if sources:
        lines += ['', 'Metrics read from:'] + sources
    return '\n'.join(lines) + '\n'


def plot(rows: List[Dict[str, Any]], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def scatter(ax, xs, ys, labels, xlabel, ylabel):
        ax.scatter(xs, ys)
        for x, y, label in zip(xs, ys, labels):
            ax.annotate(label, (x, y), textcoords='offset points', xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)

    gflops = {r['name']: r['flops']['total'] / 1e9 for r in rows}
    latency = {r['name']: r['latency']['median_s'] * 1e3 for r in rows}
    scored = [r for r in rows if r['metrics']]
    if scored:
        key = 'bbox_mAP' if any('bbox_mAP' in r['metrics'] for r in scored) else 'segm_mAP'
        scored = [r for r in scored if key in r['metrics']]
        names = [r['name'] for r in scored]
        maps = [r['metrics'][key] * 100 for r in scored]
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        scatter(axes[0], [gflops[n] for n in names], maps, names, 'GFLOPs', key)
        scatter(axes[1], [latency[n] for n in names], maps, names, 'latency (ms, batch 1)', key)
        missing = len(rows) - len(scored)
        fig.suptitle('Accuracy vs cost' + (f' ({missing} config(s) without metrics not shown)' if missing else ''))
    else:
        names = [r['name'] for r in rows]
        fig, ax = plt.subplots(figsize=(7, 5))
        scatter(ax, [gflops[n] for n in names], [latency[n] for n in names], names, 'GFLOPs', 'latency (ms, batch 1)')
        ax.set_title('Cost only: no COCO metrics found for these configs')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Accuracy vs cost of detector configs.')
    parser.add_argument('configs', nargs='+', help='config files, or scope::path (mmdet::...)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument(
        '--work-dirs', default='work_dirs', help='root of the work dirs (<root>/<config name>) searched for metrics')
    parser.add_argument(
        '--metrics', nargs='+', metavar='CONFIG=PATH', help='where the metrics of a config are (log, json or work dir)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    args = parse_args(argv)
    explicit = parse_metric_paths(args.metrics)
    rows = []
    for i, config in enumerate(args.configs, 1):
        name = config_name(config)
        row = collect_stats(
            config,
            tuple(args.shape),
            args.device,
            warmup=args.warmup,
            repeat=args.repeat,
            progress=progress_printer(i, len(args.configs), config))
        row['name'] = name
        row['metrics'] = find_metrics(explicit.get(name, osp.join(args.work_dirs, name)))
        rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    md = markdown(rows, args.shape, args.device)
    with open(osp.join(args.out, 'battle.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.out, 'battle.json'), 'w') as f:
        json.dump(dict(environment=environment(), results=rows), f, indent=2)
    plot(rows, osp.join(args.out, 'battle.png'))
    print(md)
    print(f"wrote {osp.join(args.out, 'battle.md')}, battle.json, battle.png", file=sys.stderr)
    return rows


if __name__ == '__main__':
    main()
