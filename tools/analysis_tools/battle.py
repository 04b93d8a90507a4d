# Copyright (c) cbnet contributors. All rights reserved.
"""Battle of the backbones: accuracy against cost, one point per config.

    python tools/analysis_tools/battle.py CONFIG [CONFIG ...] --out DIR [--shape H W]
        [--work-dirs work_dirs] [--metrics CONFIG=PATH ...] [--threads N] [--timer cpu|wall]

Runs ``cbnet.analysis.collect_stats`` on each config (params, FLOPs, as ``model_stats.py``), measures the
latency of all configs side by side (``cbnet.analysis.alternating_times``: the configs alternate within each of
``--rounds`` rounds and the minimum is reported, so that other jobs' load hits all of them alike; on CPU by
default with one thread and this process' CPU time) and, where a training or test run left COCO metrics, reads
the config's bbox/segm mAP. Writes ``DIR/battle.md`` (table),
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

from cbnet.analysis import (TIMERS, alternating_times, build_model, collect_stats, environment, load_config, make_batch,
                            predict_fn, progress_printer, uncounted_note)
from cbnet.analysis.metrics import METRIC_KEYS, config_name, find_metrics
from cbnet.utils.threads import add_threads_argument, configure_cpu_threads


def parse_metric_paths(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``--metrics CONFIG=PATH ...`` as {config name: path}."""
    out = {}
    for item in items or []:
        if '=' not in item:
            raise ValueError(f'--metrics expects CONFIG=PATH, got {item!r}')
        config, path = item.split('=', 1)
        out[config_name(config)] = path
    return out


def latency_ms(row: Dict[str, Any]) -> float:
    """The latency a battle reports: the minimum over its alternating rounds."""
    return row['latency']['min_s'] * 1e3


def missing_metrics_note(rows: List[Dict[str, Any]]) -> str:
    """Where metrics were looked for and how to point a config at its run (empty if every config has some)."""
    missing = [r for r in rows if not r['metrics']]
    if not missing:
        return ''
    first = missing[0]['name']
    return ('No COCO metrics were found for ' +
            ('any config' if len(missing) == len(rows) else ', '.join(r['name'] for r in missing)) + '; looked in ' +
            ', '.join(f"{r['metrics_looked_in']}/" for r in missing) +
            ' (the default work_dir of tools/train.py and tools/test.py). Runs elsewhere: '
            f'--metrics CONFIG=PATH (a work dir, log or json file), e.g. `--metrics {first}=work_dirs/demo` for '
            'the run of `make demo` (tools/misc/demo.py writes work_dirs/demo).')


def markdown(rows: List[Dict[str, Any]], shape: Sequence[int], device: str) -> str:
    has_metrics = any(r['metrics'] for r in rows)
    lines = [f'# Battle of the backbones ({shape[0]}x{shape[1]}, {device}, batch 1)', '']
    if not has_metrics:
        lines += ['No COCO metrics for any config: cost only (where they were looked for: below).', '']
    lat = rows[0]['latency'] if rows else {}
    lines += [
        f"Latency: eval-mode predict, minimum of {lat.get('rounds')} rounds x {lat.get('repeat')} runs, the configs "
        f"alternating; timer {lat.get('timer')}, {lat.get('threads')} torch thread(s).", ''
    ]
    lines += [
        '| config | K | params (M) | GFLOPs | latency (ms) | bbox mAP | segm mAP |', '|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        m = r['metrics']
        lines.append(f"| {r['name']} | {r['num_backbones']} | {r['params']['total'] / 1e6:.2f} | "
                     f"{r['flops']['total'] / 1e9:.1f} | {latency_ms(r):.0f} | " +
                     ' | '.join(f'{m[k] * 100:.1f}' if k in m else '-' for k in METRIC_KEYS) + ' |')
    if len(rows) > 1:
        base = rows[0]
        lines += [
            '', f"Latency ratios to {base['name']}: " + ', '.join(f"{r['name']} {latency_ms(r) / latency_ms(base):.2f}x"
                                                                  for r in rows[1:])
        ]
    missing = missing_metrics_note(rows)
    if missing:
        lines += ['', missing]
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
    latency = {r['name']: latency_ms(r) for r in rows}
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
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs of each config first')
    parser.add_argument('--rounds', type=int, default=3, help='latency rounds; the configs alternate in each')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs of each config per round')
    parser.add_argument(
        '--timer',
        choices=list(TIMERS),
        default=None,
        help="latency clock: 'cpu' (this process' CPU time; default on CPU) or 'wall' (default on CUDA)")
    add_threads_argument(
        parser,
        help='torch CPU threads on CPU (default 1: with --timer cpu the least disturbed measure on a shared '
        'machine; OMP_NUM_THREADS is honoured)')
    parser.add_argument(
        '--work-dirs', default='work_dirs', help='root of the work dirs (<root>/<config name>) searched for metrics')
    parser.add_argument(
        '--metrics', nargs='+', metavar='CONFIG=PATH', help='where the metrics of a config are (log, json or work dir)')
    return parser.parse_args(argv)


def measure_latencies(configs: Sequence[str], args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """Latency of every config, side by side in alternating rounds (all models are held at once)."""
    printers = {config_name(c): progress_printer(i, len(configs), c) for i, c in enumerate(configs, 1)}
    fns = {}
    for config in configs:
        model = build_model(load_config(config), args.device)
        fns[config_name(config)] = predict_fn(model, make_batch(model, tuple(args.shape), 1, training=False))
    return alternating_times(
        fns,
        args.device,
        rounds=args.rounds,
        warmup=args.warmup,
        repeat=args.repeat,
        timer=args.timer,
        progress=lambda name, msg: printers[name](msg))


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    args = parse_args(argv)
    threads = configure_cpu_threads(args.threads, args.device, default=1)
    if args.timer is None:
        args.timer = 'wall' if args.device.startswith('cuda') else 'cpu'
    explicit = parse_metric_paths(args.metrics)
    rows = []
    for i, config in enumerate(args.configs, 1):
        name = config_name(config)
        row = collect_stats(
            config,
            tuple(args.shape),
            args.device,
            latency=False,
            progress=progress_printer(i, len(args.configs), config))
        row['name'] = name
        row['metrics_looked_in'] = explicit.get(name, osp.join(args.work_dirs, name))
        row['metrics'] = find_metrics(row['metrics_looked_in'])
        rows.append(row)
    latencies = measure_latencies(args.configs, args)
    for row in rows:
        row['latency'] = dict(latencies[row['name']], threads=threads)
    os.makedirs(args.out, exist_ok=True)
    md = markdown(rows, args.shape, args.device)
    with open(osp.join(args.out, 'battle.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.out, 'battle.json'), 'w') as f:
        json.dump(dict(environment=environment(), results=rows), f, indent=2)
    plot(rows, osp.join(args.out, 'battle.png'))
    print(md)
    note = missing_metrics_note(rows)
    if note:
        print(note, file=sys.stderr)
    print(f"wrote {osp.join(args.out, 'battle.md')}, battle.json, battle.png", file=sys.stderr)
    return rows


if __name__ == '__main__':
    main()
