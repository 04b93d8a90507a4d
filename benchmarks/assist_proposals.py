# Copyright (c) cbnet contributors. All rights reserved.
"""Does ``assist_proposals='own'`` change a Dual Faster R-CNN's accuracy or training-step cost over ``'lead'``?

    python benchmarks/assist_proposals.py [--seeds 0 1] [--iters 300] [--skip 20]
        [--config configs/cbnet/dual_r18_faster_rcnn_toy.py] [--work-dir work_dirs/assist_proposals]
        [--out-dir benchmarks/results]

``'lead'`` (the default, the official CBNetV2 training): every branch's RPN is supervised, but the RoI heads of
all branches train on the lead branch's proposals. ``'own'``: every branch's RoI head trains on its own RPN's
proposals (the assisting RPN then also makes proposals: NMS and RoI sampling per branch). The demo model
(toy shapes dataset, the demo's 300 iterations, one CPU thread) is trained once per option and seed,
alternating (lead s0, own s0, lead s1, own s1, ...) so that load from other jobs hits both alike, with
``randomness=dict(seed=s, deterministic=True)``. Reported per run: val bbox mAP and mAP@0.5, the training
step's wall clock (median and minimum over the iterations after the first ``--skip``), its process CPU time
(median), mmengine's logged ``time`` (median; data loading and hooks included); per option the mean mAPs
and the pooled step times, and the ratio own / lead.
Writes ``assist_proposals.json`` and ``assist_proposals.md`` to ``--out-dir``; the toy data and work dirs go
to ``--work-dir``.
"""
import argparse
import os.path as osp
import statistics
import sys
from typing import Any, Dict, List, Optional

import torch

from cbnet.analysis import markdown_header, run_record, start_run, write_results
from cbnet.analysis.toy_training import ensure_toy_data, summarize_times, train_toy

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTIONS = ('lead', 'own')


def run_all(args: argparse.Namespace, log) -> List[Dict[str, Any]]:
    data_root = ensure_toy_data(osp.join(args.work_dir, 'toy_coco'))
    runs = []
    for seed in args.seeds:
        for option in OPTIONS:
            log(f'training assist_proposals={option!r} seed {seed} ({len(runs) + 1}/{2 * len(args.seeds)}) ...')
            run = train_toy(
                args.config,
                osp.join(args.work_dir, f'{option}_s{seed}'),
                data_root,
                seed=seed,
                max_iters=args.iters,
                cfg_options={'model.assist_proposals': option},
                skip=args.skip)
            run['option'] = option
            t = run['timing']
            log(f"  bbox mAP {run['metrics']['bbox_mAP']:.3f}, step median {t['wall']['median_s']:.3f} s wall, "
                f"{t['cpu']['median_s']:.3f} s CPU")
            runs.append(run)
    return runs


def summarize(runs: List[Dict[str, Any]], skip: int) -> Dict[str, Any]:
    """Per option: mean mAPs over seeds, step times pooled over the seeds' kept iterations; own / lead."""
    per_option = {}
    for option in OPTIONS:
        mine = [r for r in runs if r['option'] == option]
        per_option[option] = dict(
            seeds=[r['seed'] for r in mine],
            bbox_mAP=statistics.fmean(r['metrics']['bbox_mAP'] for r in mine),
            bbox_mAP_50=statistics.fmean(r['metrics']['bbox_mAP_50'] for r in mine),
            wall=summarize_times([t for r in mine for t in r['timing']['wall_s'][skip:]], 0),
            cpu=summarize_times([t for r in mine for t in r['timing']['cpu_s'][skip:]], 0))
    lead, own = per_option['lead'], per_option['own']
    ratios = dict(
        wall_median=own['wall']['median_s'] / lead['wall']['median_s'],
        wall_min=own['wall']['min_s'] / lead['wall']['min_s'],
        cpu_median=own['cpu']['median_s'] / lead['cpu']['median_s'],
        cpu_mean=own['cpu']['mean_s'] / lead['cpu']['mean_s'])
    per_seed = []
    for seed in sorted({r['seed'] for r in runs}):
        pair = {r['option']: r for r in runs if r['seed'] == seed}
        if set(pair) == set(OPTIONS):
            per_seed.append(
                dict(
                    seed=seed,
                    wall_median=pair['own']['timing']['wall']['median_s'] / pair['lead']['timing']['wall']['median_s'],
                    cpu_median=pair['own']['timing']['cpu']['median_s'] / pair['lead']['timing']['cpu']['median_s'],
                    bbox_mAP_diff=pair['own']['metrics']['bbox_mAP'] - pair['lead']['metrics']['bbox_mAP']))
    return dict(per_option=per_option, own_over_lead=ratios, per_seed=per_seed)


def markdown(result: Dict[str, Any]) -> str:
    s = result['summary']
    lines = markdown_header(
        '`assist_proposals`: lead vs own proposals for the assisting RoI heads (toy Dual Faster R-CNN)', result)
    lines += [
        f"`{result['config']}` (the demo model: Dual half-width ResNet-18 Faster R-CNN, assisting loss weight "
        f"0.5) on the toy shapes dataset (240 train / 40 val images, 128 px), {result['iters']} iterations of "
        'batch 4 from scratch with the toy schedule (AdamW 2e-3, warm-up 50, x0.1 at 80%), '
        '`randomness=dict(seed=s, deterministic=True)`, `model.assist_proposals` set by cfg options; runs in '
        'the order below (the options alternate). Val bbox mAP at the end. Step time: the training step alone '
        '(forward, losses, backward, optimizer; data loading, logging and checkpoints excluded), wall clock '
        f"and this process' CPU time, over the iterations after the first {result['skip']}; `logged`: "
        "mmengine's `time` (whole iteration, data wait and hooks included), median.",
        '',
        '| run | option | seed | bbox mAP | mAP@0.5 | mAP@0.75 | step median (s) | step min (s) | CPU/step median (s) '
        '| logged time median (s) | run wall (s) |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for i, r in enumerate(result['runs'], 1):
        t, m = r['timing'], r['metrics']
        logged = f"{t['logged']['median_s']:.3f}" if t['logged'] else '-'
        lines.append(f"| {i} | {r['option']} | {r['seed']} | {m['bbox_mAP']:.3f} | {m['bbox_mAP_50']:.3f} | "
                     f"{m['bbox_mAP_75']:.3f} | {t['wall']['median_s']:.3f} | {t['wall']['min_s']:.3f} | "
                     f"{t['cpu']['median_s']:.3f} | {logged} | {t['run_wall_s']:.0f} |")
    lines += [
        '',
        'Per option (mAPs: mean over seeds; step times pooled over the seeds\' timed iterations):',
        '',
        '| option | seeds | bbox mAP | mAP@0.5 | step median (s) | step min (s) | CPU/step median (s) | '
        'CPU/step mean (s) |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for option, o in s['per_option'].items():
        lines.append(f"| {option} | {', '.join(map(str, o['seeds']))} | {o['bbox_mAP']:.3f} | "
                     f"{o['bbox_mAP_50']:.3f} | {o['wall']['median_s']:.3f} | {o['wall']['min_s']:.3f} | "
                     f"{o['cpu']['median_s']:.3f} | {o['cpu']['mean_s']:.3f} |")
    r = s['own_over_lead']
    lines += [
        '',
        f"own / lead step time: **{r['wall_median']:.3f}x** (wall median), {r['wall_min']:.3f}x (wall min), "
        f"**{r['cpu_median']:.3f}x** (CPU median), {r['cpu_mean']:.3f}x (CPU mean).",
        '',
        'Per seed: ' + '; '.join(f"seed {p['seed']}: own / lead {p['wall_median']:.3f}x wall, "
                                 f"{p['cpu_median']:.3f}x CPU, bbox mAP own - lead {p['bbox_mAP_diff']:+.3f}"
                                 for p in s['per_seed']) + '.',
    ]
    return '\n'.join(lines) + '\n'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config', default='configs/cbnet/dual_r18_faster_rcnn_toy.py', help='a two-stage CB toy config')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--iters', type=int, default=300, help='training iterations per run (the demo: 300)')
    parser.add_argument('--skip', type=int, default=20, help='first iterations left out of the step times')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (1: CPU time measures work)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'assist_proposals'))
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    if not osp.isfile(args.config) and osp.isfile(osp.join(REPO, args.config)):
        args.config = osp.join(REPO, args.config)
    start = start_run()
    runs = run_all(args, log)
    result = dict(
        run_record(start, 'benchmarks/assist_proposals.py', argv),
        config=osp.relpath(args.config, REPO) if args.config.startswith(REPO) else args.config,
        iters=args.iters,
        skip=args.skip,
        seeds=args.seeds,
        runs=runs)
    result['summary'] = summarize(runs, args.skip)
    md = markdown(result)
    write_results(args.out_dir, 'assist_proposals', result, md, relative_to=REPO)
    print(md)
    return result


if __name__ == '__main__':
    main()
