# Copyright (c) cbnet contributors. All rights reserved.
"""Battle of the backbones: accuracy against cost, one point per config.

    python tools/analysis_tools/battle.py CONFIG [CONFIG ...] --out DIR [--shape H W]
        [--work-dirs work_dirs] [--metrics CONFIG=PATH ...]

Runs ``model_stats`` on each config (params, FLOPs, latency) and, where a training or test run
left COCO metrics, reads the config's bbox/segm mAP. Writes ``DIR/battle.md`` (table),
``DIR/battle.json`` and ``DIR/battle.png`` (mAP vs GFLOPs and vs latency, one labelled point per
config; without any metrics, latency vs GFLOPs and a title that says so).

Where metrics are looked for: ``--metrics CONFIG=PATH`` (a log, a json file or a work dir), else
``<--work-dirs>/<config name without .py>`` (the default ``work_dir`` of ``tools/train.py`` and
``tools/test.py``). In a work dir every ``*.json`` (mmengine's ``vis_data/scalars.json`` and
``<timestamp>.json``) and ``*.log`` is read, and the most recent ``coco/bbox_mAP`` /
``coco/segm_mAP`` wins (newest file, last entry).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import re
import sys
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import model_stats  # noqa: E402

METRIC_KEYS = ('bbox_mAP', 'segm_mAP')
_LOG_PATTERN = re.compile(r'coco/(bbox_mAP|segm_mAP): ([0-9.]+)')


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config.split('::')[-1]))[0]


def _metrics_in_file(path: str) -> Dict[str, float]:
    """The last COCO mAPs in a json-lines file or a text log (empty if none)."""
    found: Dict[str, float] = {}
    with open(path, errors='replace') as f:
        for line in f:
            if 'coco/' not in line:
                continue
            if path.endswith('.json'):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                for key in METRIC_KEYS:
                    if isinstance(entry, dict) and f'coco/{key}' in entry:
                        found[key] = float(entry[f'coco/{key}'])
            else:
                for key, value in _LOG_PATTERN.findall(line):
                    found[key] = float(value)
    return found


def find_metrics(path: Optional[str]) -> Dict[str, Any]:
    """COCO mAPs from a log/json file or from the newest file in a work dir that has them."""
    if not path or not osp.exists(path):
        return {}
    if osp.isfile(path):
        files = [path]
    else:
        files = [f for ext in ('json', 'log')
                 for f in glob.glob(osp.join(path, '**', f'*.{ext}'), recursive=True)]
    for file in sorted(files, key=osp.getmtime, reverse=True):
        metrics = _metrics_in_file(file)
        if metrics:
            return dict(metrics, source=file)
    return {}


def _parse_metric_paths(items: Optional[Sequence[str]]) -> Dict[str, str]:
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
    lines += ['| config | K | params (M) | GFLOPs | latency (ms) | bbox mAP | segm mAP |',
              '|---|---|---|---|---|---|---|']
    for r in rows:
        m = r['metrics']
        lines.append(
            f"| {r['name']} | {r['num_backbones']} | {r['params']['total'] / 1e6:.2f} | "
            f"{r['flops']['total'] / 1e9:.1f} | {r['latency']['median_s'] * 1e3:.0f} | "
            + ' | '.join(f'{m[k] * 100:.1f}' if k in m else '-' for k in METRIC_KEYS) + ' |')
    note = model_stats.uncounted_note(rows)
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
        fig.suptitle('Accuracy vs cost' + (f' ({missing} config(s) without metrics not shown)'
                                           if missing else ''))
    else:
        names = [r['name'] for r in rows]
        fig, ax = plt.subplots(figsize=(7, 5))
        scatter(ax, [gflops[n] for n in names], [latency[n] for n in names], names, 'GFLOPs',
                'latency (ms, batch 1)')
        ax.set_title('Cost only: no COCO metrics found for these configs')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Accuracy vs cost of detector configs.')
    parser.add_argument('configs', nargs='+', help='config files, or scope::path (mmdet::...)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--device', default='cuda' if model_stats.torch.cuda.is_available()
                        else 'cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--work-dirs', default='work_dirs',
                        help='root of the work dirs (<root>/<config name>) searched for metrics')
    parser.add_argument('--metrics', nargs='+', metavar='CONFIG=PATH',
                        help='where the metrics of a config are (log, json or work dir)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    args = parse_args(argv)
    explicit = _parse_metric_paths(args.metrics)
    rows = []
    for i, config in enumerate(args.configs, 1):
        name = config_name(config)
        row = model_stats.collect_stats(
            config, tuple(args.shape), args.device, warmup=args.warmup, repeat=args.repeat,
            progress=model_stats._progress_printer(i, len(args.configs), config))
        row['name'] = name
        row['metrics'] = find_metrics(explicit.get(name, osp.join(args.work_dirs, name)))
        rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    md = markdown(rows, args.shape, args.device)
    with open(osp.join(args.out, 'battle.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.out, 'battle.json'), 'w') as f:
        json.dump(dict(environment=model_stats.environment(), results=rows), f, indent=2)
    plot(rows, osp.join(args.out, 'battle.png'))
    print(md)
    print(f"wrote {osp.join(args.out, 'battle.md')}, battle.json, battle.png", file=sys.stderr)
    return rows


if __name__ == '__main__':
    main()
