# Copyright (c) cbnet contributors. All rights reserved.
"""Does fine-tuning a plain detector expanded into a Dual detector keep or improve the plain detector's mAP?

    python benchmarks/expansion_finetune.py [--iters 300] [--finetune-iters 150] [--finetune-lr 2e-4]
        [--finetune-warmup 15] [--seeds 0] [--work-dir work_dirs/expansion_finetune] [--out-dir benchmarks/results]

On the toy shapes dataset, per seed (``randomness=dict(seed=s, deterministic=True)`` in every training run):
(a) train the plain toy Faster R-CNN (``configs/_toy_/faster_rcnn_r18_toy.py``) for ``--iters`` iterations with
    the toy schedule: val bbox mAP A;
(b) expand its checkpoint into the Dual toy detector (``configs/cbnet/dual_r18_faster_rcnn_toy.py``) with
    ``cbnet.converters.expand_checkpoint`` (what ``tools/model_converters/single_to_cb.py`` runs) and evaluate
    it: its metrics must equal the plain checkpoint's (the script stops with an error otherwise), and its
    detections are compared box by box with the plain checkpoint's;
(c) fine-tune the expanded Dual for ``--finetune-iters`` iterations from that checkpoint (``load_from``): C;
(d) the fair control: continue training the plain detector for the same iterations from its checkpoint with
    the same fine-tuning schedule: B.
Fine-tuning schedule of (c) and (d): AdamW at ``--finetune-lr`` (default 2e-4, the lr the from-scratch schedule
ends at), fresh optimizer state, linear warm-up from 0.01x over ``--finetune-warmup`` iterations, x0.1 at 80%.
(c) and (d) alternate their order from seed to seed. Step times as in ``benchmarks/assist_proposals.py``.
Writes ``expansion_finetune.json`` and ``expansion_finetune.md`` to ``--out-dir``.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
from typing import Any, Dict, List, Optional

import torch

from cbnet.analysis import markdown_header, run_record, start_run, write_results
from cbnet.analysis.toy_training import TOY_STEP_AT, TOY_WARMUP_ITERS, ensure_toy_data, evaluate_toy, train_toy
from cbnet.converters import expand_checkpoint

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PLAIN = 'configs/_toy_/faster_rcnn_r18_toy.py'
DUAL = 'configs/cbnet/dual_r18_faster_rcnn_toy.py'


def compare_detections(a: str, b: str) -> Dict[str, Any]:
    """Two COCO detection json files (same images, same order from the same val loader), box by box."""
    with open(a) as f:
        dets_a = json.load(f)
    with open(b) as f:
        dets_b = json.load(f)
    same_keys = len(dets_a) == len(dets_b) and all(
        (x['image_id'], x['category_id']) == (y['image_id'], y['category_id']) for x, y in zip(dets_a, dets_b))
    if not same_keys:
        return dict(detections=[len(dets_a), len(dets_b)], same_images_and_classes=False)
    return dict(
        detections=[len(dets_a), len(dets_b)],
        same_images_and_classes=True,
        max_abs_box_diff=max((abs(u - v) for x, y in zip(dets_a, dets_b) for u, v in zip(x['bbox'], y['bbox'])),
                             default=0.0),
        max_abs_score_diff=max((abs(x['score'] - y['score']) for x, y in zip(dets_a, dets_b)), default=0.0))


def one_seed(seed: int, args: argparse.Namespace, data_root: str, log) -> Dict[str, Any]:
    wd = osp.join(args.work_dir, f's{seed}')
    log(f'seed {seed} (a): training the plain detector, {args.iters} iterations ...')
    plain = train_toy(_repo(PLAIN), osp.join(wd, 'a_plain'), data_root, seed=seed, max_iters=args.iters, skip=args.skip)
    log(f"  A = {plain['metrics']['bbox_mAP']:.3f}")

    log(f'seed {seed} (b): expanding into {DUAL} and evaluating both checkpoints ...')
    expanded_ckpt = osp.join(wd, 'b_expanded_dual.pth')
    report = expand_checkpoint(plain['checkpoint'], expanded_ckpt, config=_repo(DUAL))
    plain_eval = evaluate_toy(
        _repo(PLAIN), plain['checkpoint'], data_root, osp.join(wd, 'eval_plain'), detections=osp.join(wd, 'det_plain'))
    expanded_eval = evaluate_toy(
        _repo(DUAL), expanded_ckpt, data_root, osp.join(wd, 'eval_expanded'), detections=osp.join(wd, 'det_expanded'))
    detections = compare_detections(osp.join(wd, 'det_plain.bbox.json'), osp.join(wd, 'det_expanded.bbox.json'))
    log(f"  plain checkpoint {plain_eval['bbox_mAP']:.3f}, expanded Dual {expanded_eval['bbox_mAP']:.3f}; "
        f'detections: {detections}')
    if not (expanded_eval == plain_eval and plain_eval['bbox_mAP'] == plain['metrics']['bbox_mAP']):
        raise SystemExit(f'FAILED: the expanded Dual detector does not reproduce the plain detector: '
                         f"A (end of training) = {plain['metrics']}, plain checkpoint = {plain_eval}, "
                         f'expanded = {expanded_eval}; detections: {detections}')

    finetune = dict(
        seed=seed,
        max_iters=args.finetune_iters,
        lr=args.finetune_lr,
        warmup_iters=args.finetune_warmup,
        skip=args.skip)
    runs = {}
    order = ['c', 'd'] if seed % 2 == 0 else ['d', 'c']  # alternate, so that machine load hits both alike
    for step in order:
        if step == 'c':
            log(f'seed {seed} (c): fine-tuning the expanded Dual, {args.finetune_iters} iterations ...')
            runs['c'] = train_toy(
                _repo(DUAL), osp.join(wd, 'c_dual_finetune'), data_root, load_from=expanded_ckpt, **finetune)
        else:
            log(f'seed {seed} (d): continuing the plain detector, {args.finetune_iters} iterations ...')
            runs['d'] = train_toy(
                _repo(PLAIN), osp.join(wd, 'd_plain_continued'), data_root, load_from=plain['checkpoint'], **finetune)
        log(f"  {runs[step]['metrics']['bbox_mAP']:.3f}")
    return dict(
        seed=seed,
        a_plain=plain,
        b_expansion=dict(
            checkpoint=expanded_ckpt,
            report=report.summary(),
            plain_checkpoint_metrics=plain_eval,
            metrics=expanded_eval,
            equal_metrics=True,
            detections=detections),
        c_dual_finetune=runs['c'],
        d_plain_continued=runs['d'],
        order=order)


def _repo(path: str) -> str:
    return osp.join(REPO, path)


def summarize(seeds: List[Dict[str, Any]]) -> Dict[str, Any]:

    def mean(get) -> float:
        return statistics.fmean(get(s) for s in seeds)

    return dict(
        A=mean(lambda s: s['a_plain']['metrics']['bbox_mAP']),
        expanded=mean(lambda s: s['b_expansion']['metrics']['bbox_mAP']),
        B=mean(lambda s: s['d_plain_continued']['metrics']['bbox_mAP']),
        C=mean(lambda s: s['c_dual_finetune']['metrics']['bbox_mAP']),
        dual_over_plain_step_wall=mean(lambda s: s['c_dual_finetune']['timing']['wall']['median_s'] / s[
            'd_plain_continued']['timing']['wall']['median_s']),
        dual_over_plain_step_cpu=mean(lambda s: s['c_dual_finetune']['timing']['cpu']['median_s'] / s[
            'd_plain_continued']['timing']['cpu']['median_s']))


def markdown(result: Dict[str, Any]) -> str:
    s = result['summary']
    ft = (f"AdamW lr {result['finetune_lr']:g} (fresh optimizer state), linear warm-up from 0.01x over "
          f"{result['finetune_warmup']} iterations, x0.1 at {TOY_STEP_AT:.0%}")
    scratch = f"AdamW lr {result['seeds'][0]['a_plain']['lr']:g}, warm-up {TOY_WARMUP_ITERS}, x0.1 at {TOY_STEP_AT:.0%}"
    lines = markdown_header(
        'Expanding a trained plain detector into a Dual detector, then fine-tuning (toy Faster R-CNN)', result)
    lines += [
        'Toy shapes dataset (240 train / 40 val images, 128 px), batch 4, val bbox mAP, '
        '`randomness=dict(seed=s, deterministic=True)`. (a) plain `' + PLAIN + f"` from scratch, {result['iters']} "
        f'iterations ({scratch}) = A; (b) its checkpoint expanded into `' + DUAL + '` with '
        '`cbnet.converters.expand_checkpoint` (as `tools/model_converters/single_to_cb.py`), evaluated; (c) the '
        f"expanded Dual fine-tuned {result['finetune_iters']} iterations = C; (d) the control: the plain detector "
        f"continued {result['finetune_iters']} iterations from (a) = B. Fine-tuning schedule of (c) and (d): {ft}. "
        f"Step time: the training step alone, wall clock and this process' CPU time, over the iterations after the "
        f"first {result['skip']}.",
        '',
        '| seed | step | model | start | iterations | bbox mAP | mAP@0.5 | mAP@0.75 | step median (s) | '
        'step min (s) | CPU/step median (s) |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]

    def row(seed, step, model, start, iters, metrics, timing=None) -> str:
        times = (f"{timing['wall']['median_s']:.3f} | {timing['wall']['min_s']:.3f} | {timing['cpu']['median_s']:.3f}"
                 if timing else '- | - | -')
        return (f"| {seed} | {step} | {model} | {start} | {iters} | {metrics['bbox_mAP']:.3f} | "
                f"{metrics['bbox_mAP_50']:.3f} | {metrics['bbox_mAP_75']:.3f} | {times} |")

    for r in result['seeds']:
        seed = r['seed']
        lines += [
            row(seed, '(a) = A', 'plain', 'scratch', r['a_plain']['max_iters'], r['a_plain']['metrics'],
                r['a_plain']['timing']),
            row(seed, '(b) expanded', 'Dual', '(a)', 0, r['b_expansion']['metrics']),
            row(seed, '(c) = C', 'Dual', '(b)', r['c_dual_finetune']['max_iters'], r['c_dual_finetune']['metrics'],
                r['c_dual_finetune']['timing']),
            row(seed, '(d) = B', 'plain', '(a)', r['d_plain_continued']['max_iters'], r['d_plain_continued']['metrics'],
                r['d_plain_continued']['timing']),
        ]
    lines += ['', 'Expansion check (b): the plain checkpoint and the expanded Dual evaluated the same way:']
    for r in result['seeds']:
        b, det = r['b_expansion'], r['b_expansion']['detections']
        same = (f"identical images and classes, max |box diff| {det['max_abs_box_diff']:g} px, max |score diff| "
                f"{det['max_abs_score_diff']:g}" if det['same_images_and_classes'] else 'different images/classes')
        lines.append(f"- seed {r['seed']}: bbox mAP plain {b['plain_checkpoint_metrics']['bbox_mAP']:.3f}, expanded "
                     f"{b['metrics']['bbox_mAP']:.3f}; all {len(b['metrics'])} COCO bbox metrics equal; detections "
                     f"{det['detections'][0]} vs {det['detections'][1]}, {same}.")
    n = len(result['seeds'])
    lines += [
        '',
        f"Summary{' (mean over ' + str(n) + ' seeds)' if n > 1 else ''}: A = {s['A']:.3f}, expanded = "
        f"{s['expanded']:.3f}, B (plain continued) = {s['B']:.3f}, C (Dual fine-tuned) = {s['C']:.3f}; "
        f"C - A = {s['C'] - s['A']:+.3f}, B - A = {s['B'] - s['A']:+.3f}, C - B = {s['C'] - s['B']:+.3f}.",
        '',
        f"Step time (c) / (d), Dual / plain: **{s['dual_over_plain_step_wall']:.3f}x** (wall median), "
        f"**{s['dual_over_plain_step_cpu']:.3f}x** (CPU median).",
    ]
    return '\n'.join(lines) + '\n'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=300, help='(a): plain training iterations (the demo: 300)')
    parser.add_argument('--finetune-iters', type=int, default=150, help='(c) and (d): fine-tuning iterations')
    parser.add_argument('--finetune-lr', type=float, default=2e-4, help='(c) and (d): AdamW base lr')
    parser.add_argument(
        '--finetune-warmup', type=int, help='(c) and (d): linear warm-up iterations (default: 10%% of them)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--skip', type=int, default=20, help='first iterations left out of the step times')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (1: CPU time measures work)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'expansion_finetune'))
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    args = parser.parse_args(argv)
    if args.finetune_warmup is None:
        args.finetune_warmup = max(1, args.finetune_iters // 10)
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    start = start_run()
    data_root = ensure_toy_data(osp.join(args.work_dir, 'toy_coco'))
    seeds = [one_seed(seed, args, data_root, log) for seed in args.seeds]
    result = dict(
        run_record(start, 'benchmarks/expansion_finetune.py', argv),
        iters=args.iters,
        finetune_iters=args.finetune_iters,
        finetune_lr=args.finetune_lr,
        finetune_warmup=args.finetune_warmup,
        skip=args.skip,
        seeds=seeds)
    result['summary'] = summarize(seeds)
    md = markdown(result)
    write_results(args.out_dir, 'expansion_finetune', result, md, relative_to=REPO)
    print(md)
    return result


if __name__ == '__main__':
    main()
