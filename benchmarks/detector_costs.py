# Copyright (c) cbnet contributors. All rights reserved.
"""Detector-level costs of composite backbones: paper configs, with_cp memory, eval-mode cost.

    python benchmarks/detector_costs.py paper   [--shape 800 1280]
    python benchmarks/detector_costs.py memory  [--shape 800 1333] [--batch 1]
    python benchmarks/detector_costs.py eval    [--shape 800 1333] [--repeat 3]
    python benchmarks/detector_costs.py detr    [--shape 320 320] [--batch 2] [--rounds 3]
    python benchmarks/detector_costs.py grounding [--shape 320 320] [--batch 2] [--rounds 3]

paper:  our params and FLOPs of the paper's configs beside the paper's numbers (FLOPs at 1280x800,
        the Swin/CBNetV2 convention; 1 multiply-add = 1 FLOP).
memory: training-step peak memory of Dual-Swin-T Mask R-CNN with and without ``with_cp`` on every
        branch (goal: <= 0.6x). On a CPU the increase of the peak RSS is the proxy (see
        cbnet.analysis.memory); on a GPU benchmarks/gpu_check.sh measures CUDA memory.
eval:   a Dual detector's inference time over its single-backbone mmdet config's, and the number
        of times the neck and heads run in eval vs training (the proof that assisting branches'
        necks/heads are skipped at test time).
detr:   Dual over single training-step time and peak memory of DINO-R50 (4-scale) and Mask2Former-R50, the
        Dual made from mmdet's recipe by ``cbnet.cbnetify`` (so the pair differs in the backbone only), the
        CB DETR detectors with both ``branch_batching`` values; every variant in a fresh subprocess per
        round, variants alternating, min over rounds (``cbnet.analysis.compare``).
grounding: the same for the Grounding DINO and MM-Grounding-DINO Swin-T COCO fine-tuning recipes (tiny local
        BERT as text encoder, COCO's class names as prompt; see ``grounding_md``).
Each writes ``benchmarks/results/<section>.json`` and ``.md`` (machine and versions recorded).
"""
from __future__ import annotations
import argparse
import datetime
import os
import os.path as osp
import sys
from collections import Counter
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

from cbnet.analysis import (build_model, collect_stats, environment, load_config, make_batch, measure_train_step,
                            progress_printer, versions_line, write_results)
from cbnet.analysis.compare import compare_train_steps, composite_variants

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

RESULTS = osp.join(ROOT, 'benchmarks', 'results')

# config, paper params (M), paper GFLOPs (None: not reported), what the paper row is
PAPER = [
    ('configs/cbnet/dual_r50_faster_rcnn.py', 69, 284, 'Faster R-CNN DB-R50 1x, 40.8 AP'),
    ('configs/cbnet/dual_swin_t_mask_rcnn.py', 76, 357, 'Mask R-CNN DB-Swin-T 3x, 50.2/44.5'),
    ('configs/cbnet/dual_swin_t_cascade_mask_rcnn.py', 114, 836, 'Cascade Mask R-CNN 4conv1fc DB-Swin-T 3x, 53.6/46.2'),
    ('configs/cbnet/dual_swin_s_cascade_mask_rcnn.py', 156, None, 'Cascade Mask R-CNN DB-Swin-S, 56.3/48.6'),
    ('configs/cbnet/dual_swin_b_htc.py', 231, None, 'HTC DB-Swin-B 20e, 57.9/50.2'),
    ('configs/cbnet/dual_swin_b_htc_4conv1fc.py', 235, None, 'HTC 4conv1fc DB-Swin-B 20e, 58.4/50.7'),
    ('configs/cbnet/dual_swin_l_htc.py', 453, 2162, 'HTC 4conv1fc DB-Swin-L 1x, 59.1/51.0'),
    ('configs/cbnet/dual_res2net101_dcn_cascade_rcnn.py', 141, 429, 'Cascade R-CNN DB-Res2Net101-DCN 20e, 53.7'),
]
MEMORY_CONFIG = 'configs/cbnet/dual_swin_t_mask_rcnn.py'
EVAL_PAIRS = [('configs/cbnet/dual_r50_faster_rcnn.py', 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')]


def _path(config: str) -> str:
    return config if '::' in config or osp.isabs(config) else osp.join(ROOT, config)


def _header(title: str, result: Dict[str, Any]) -> List[str]:
    env = result['environment']
    return [
        f'# {title}', '', f"Generated {result['date']} by `{result['command']}`.", '',
        f"Machine: {env['cpu']} ({env['cpu_count']} cores)" + (f", GPU {env['gpu']}" if 'gpu' in env else '') +
        f"; load average at start {result['loadavg']} (shared with other jobs).", '', 'Versions: ' + versions_line(env),
        ''
    ]


# ---------------------------------------------------------------------------------------------
def paper(args) -> Dict[str, Any]:
    rows = []
    for config, p_params, p_flops, what in PAPER:
        stats = collect_stats(
            _path(config),
            tuple(args.shape),
            latency=False,
            progress=progress_printer(len(rows) + 1, len(PAPER), config))
        rows.append(
            dict(
                config=config,
                paper=what,
                paper_params_m=p_params,
                paper_gflops=p_flops,
                params_m=stats['params']['total'] / 1e6,
                gflops=stats['flops']['total'] / 1e9,
                gflops_mmdet2=mmdet2_convention(_path(config), stats) / 1e9,
                backbone_params_m=stats['params']['backbone'] / 1e6,
                backbone_gflops=stats['flops']['backbone'] / 1e9,
                input_shape=stats['input_shape'],
                uncounted_ops=stats['flops']['uncounted_ops']))
    return dict(rows=rows)


def mmdet2_convention(config: str, stats: Dict[str, Any]) -> float:
    """FLOPs as mmdet 2's ``forward_dummy`` (the paper's counter) had them: mask heads on the first
    100 proposals. mmdet 3's cascade/HTC tensor forward runs every stage's mask head on all test
    proposals (StandardRoIHead already takes 100), so their mask-head FLOPs are scaled down."""
    cfg = load_config(config)
    roi_head = cfg.model.get('roi_head') or {}
    parts = stats['flops']['parts'].get('roi_head', {})
    if not parts.get('mask_head') or 'Cascade' not in roi_head.get('type', '') \
            and 'HybridTaskCascade' not in roi_head.get('type', ''):
        return stats['flops']['total']
    proposals = cfg.model.test_cfg.rpn.max_per_img
    return stats['flops']['total'] - parts['mask_head'] * (1 - min(100, proposals) / proposals)


def paper_md(result: Dict[str, Any]) -> List[str]:
    lines = [
        f"Input {result['shape'][0]}x{result['shape'][1]} (padded to a multiple of 32), "
        'eval-mode tensor forward (RPN + RoI heads on all test proposals, no NMS), mmengine '
        'FlopAnalyzer, 1 multiply-add = 1 FLOP.', '',
        'GFLOPs (mmdet 2 convention): mask heads counted on 100 proposals, as mmdet 2\'s '
        '`forward_dummy` (the paper\'s counter) ran them; mmdet 3 runs cascade/HTC mask heads on all '
        '1000 test proposals in every stage.', '',
        '| config | paper row | params (M) ours / paper | GFLOPs ours (mmdet 3) | '
        'GFLOPs ours (mmdet 2 convention) / paper | backbone params (M) / GFLOPs |', '|---|---|---|---|---|---|'
    ]
    for r in result['rows']:
        pf = '-' if r['paper_gflops'] is None else r['paper_gflops']
        lines.append(f"| {osp.basename(r['config'])} | {r['paper']} | {r['params_m']:.1f} / "
                     f"{r['paper_params_m']} | {r['gflops']:.0f} | {r['gflops_mmdet2']:.0f} / {pf} | "
                     f"{r['backbone_params_m']:.1f} / {r['backbone_gflops']:.0f} |")
    ops = sorted({op for r in result['rows'] for op in r.get('uncounted_ops', {})})
    lines += [
        '', 'Not counted by the FLOP counter (no rule): ' + ', '.join(ops), '', 'Differences from the paper:',
        '- Cascade/HTC: mmdet 3 runs every stage\'s mask head on all 1000 test proposals in '
        'its tensor forward; mmdet 2 (the paper\'s counter) ran them on 100. In that convention '
        'our counts are within 2% of the paper\'s.',
        '- Dual-Res2Net101-DCN Cascade R-CNN: this config has 4conv1fc box heads; 3 stages x 1000 '
        'RoIs x (4 3x3 convs 256->256 at 7x7, minus one 1024x1024 fc) add about 344 GFLOPs and '
        '~5M params over 2fc heads: 774 - 344 = 430G vs the paper\'s 429G (141M params). '
        'Deformable convolutions are not counted (apparently not in the paper either).'
    ]
    return lines


# ---------------------------------------------------------------------------------------------
def _with_cp_option(config: str) -> str:
    """The ``--cfg-options`` key that reaches the innermost backbone's ``with_cp``."""
    cfg = load_config(_path(config))
    key, node = 'model.backbone', cfg.model.backbone
    while isinstance(node.get('backbone'), dict):
        key, node = key + '.backbone', node['backbone']
    # CBSwinTransformer keeps the official name `use_checkpoint`; everything else says `with_cp`.
    return key + ('.use_checkpoint' if 'use_checkpoint' in node else '.with_cp')


def memory(args) -> Dict[str, Any]:
    config = args.config or MEMORY_CONFIG
    key = _with_cp_option(config)
    rows = []
    for with_cp in (False, True):
        print(f'{config}: training step, with_cp={with_cp}', file=sys.stderr, flush=True)
        r = measure_train_step(
            _path(config),
            tuple(args.shape),
            args.device,
            args.batch,
            warmup=1,
            repeat=1,
            cfg_options={key: with_cp},
            timer='cpu' if args.device == 'cpu' else 'wall',
            threads=args.threads)
        rows.append(dict(with_cp=with_cp, **r))
    ratio = rows[1]['peak_mem_increase_bytes'] / rows[0]['peak_mem_increase_bytes']
    return dict(
        config=config, cfg_option=key, batch=args.batch, rows=rows, ratio_with_cp=ratio, goal=0.6, met=ratio <= 0.6)


def memory_md(result: Dict[str, Any]) -> List[str]:
    gib = 2**30
    lines = [
        f"`{result['config']}`, one training step (forward, losses, backward, SGD), batch "
        f"{result['batch']}, {result['shape'][0]}x{result['shape'][1]}, `{result['cfg_option']}`.",
        f"Memory method: {result['rows'][0]['mem_method']}.", '',
        '| with_cp | step peak increase (GiB) | process peak (GiB) | step time (s) |', '|---|---|---|---|'
    ]
    for r in result['rows']:
        lines.append(f"| {r['with_cp']} | {r['peak_mem_increase_bytes'] / gib:.2f} | "
                     f"{r.get('peak_rss_bytes', r.get('peak_mem_bytes', 0)) / gib:.2f} | "
                     f"{r['median_s']:.1f} ({r['timer']}) |")
    rows = result['rows']
    whole = [r.get('peak_rss_bytes', r.get('peak_mem_bytes')) for r in rows]
    lines += [
        '', f"with_cp / without, memory of the step (activations, gradients, temporaries): "
        f"{result['ratio_with_cp']:.2f}x (goal <= 0.6x): {'MET' if result['met'] else 'NOT MET'}",
        f"with_cp / without, whole-process peak (weights, libraries included): "
        f"{whole[1] / whole[0]:.2f}x; step time with_cp / without: "
        f"{rows[1]['median_s'] / rows[0]['median_s']:.2f}x"
    ]
    return lines


# ---------------------------------------------------------------------------------------------
def count_head_calls(model: nn.Module, batch_eval: dict, batch_train: dict) -> Dict[str, Dict]:
    """Forward calls of the neck and every head in one predict and in one loss computation."""
    targets = {}
    for name in ('neck', 'rpn_head', 'bbox_head', 'mask_head'):
        if isinstance(getattr(model, name, None), nn.Module):
            targets[name] = getattr(model, name)
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is not None:
        for name, child in roi_head.named_children():
            if 'head' in name and isinstance(child, nn.ModuleList):
                targets.update({f'roi_head.{name}.{i}': m for i, m in enumerate(child)})
            elif 'head' in name:
                targets[f'roi_head.{name}'] = child
    calls: Counter = Counter()
    handles = [m.register_forward_hook(lambda *a, n=n: calls.update([n])) for n, m in targets.items()]
    out = {}
    try:
        model.eval()
        with torch.no_grad():
            model(batch_eval['inputs'], batch_eval['data_samples'], mode='predict')
        out['eval'] = {n: calls[n] for n in targets}
        calls.clear()
        model.train()
        model(batch_train['inputs'], batch_train['data_samples'], mode='loss')
        out['train'] = {n: calls[n] for n in targets}
    finally:
        for h in handles:
            h.remove()
    return out


def eval_cost(args) -> Dict[str, Any]:
    torch.set_num_threads(args.threads or 1)
    pairs = []
    for dual, single in ([p.split('=', 1) for p in args.pairs] if args.pairs else EVAL_PAIRS):
        rows = {}
        # The Dual config post-processes as its single config does (the CB configs use soft-NMS at
        # score 0.001): the comparison then measures the backbone, not the post-processing.
        same_post = {'model.test_cfg': load_config(_path(single)).model.test_cfg.to_dict()}
        for kind, config in (('single', single), ('dual', dual)):
            rows[kind] = collect_stats(
                _path(config),
                tuple(args.shape),
                args.device,
                warmup=1,
                repeat=args.repeat,
                cfg_options=same_post if kind == 'dual' else None,
                timer='cpu' if args.device == 'cpu' else 'wall',
                progress=progress_printer(1, 2, config))
        cfg = load_config(_path(dual))
        model = build_model(cfg, args.device)
        small = (128, 128)  # the call counts do not depend on the size
        calls = count_head_calls(model, make_batch(model, small, 1, False), make_batch(model, small, 2, True))
        pairs.append(
            dict(
                dual=dual,
                single=single,
                num_backbones=rows['dual']['num_backbones'],
                latency_s={
                    k: r['latency']['median_s']
                    for k, r in rows.items()
                },
                latency_ratio=rows['dual']['latency']['median_s'] / rows['single']['latency']['median_s'],
                gflops={
                    k: r['flops']['total'] / 1e9
                    for k, r in rows.items()
                },
                flops_ratio=rows['dual']['flops']['total'] / rows['single']['flops']['total'],
                backbone_flops_ratio=rows['dual']['flops']['backbone'] / rows['single']['flops']['backbone'],
                timer=rows['dual']['latency']['timer'],
                head_calls=calls))
    return dict(pairs=pairs)


def eval_md(result: Dict[str, Any]) -> List[str]:
    lines = [
        f"Eval-mode `predict` (post-processing included, the Dual config with its single "
        f"config's test_cfg), batch 1, {result['shape'][0]}x{result['shape'][1]}, median of "
        f"{result['repeat']}, CPU time of one thread; FLOPs of the tensor forward.", '',
        '| Dual config / single config | latency single (s) | latency Dual (s) | latency ratio '
        '| FLOPs ratio (whole detector) | backbone FLOPs ratio |', '|---|---|---|---|---|---|'
    ]
    proofs = []
    for p in result['pairs']:
        lines.append(f"| {osp.basename(p['dual'])} / {osp.basename(p['single'])} | "
                     f"{p['latency_s']['single']:.2f} | {p['latency_s']['dual']:.2f} | "
                     f"{p['latency_ratio']:.3f} | {p['flops_ratio']:.3f} | "
                     f"{p['backbone_flops_ratio']:.3f} |")
        proofs.append(f"- {osp.basename(p['dual'])} (K={p['num_backbones']}): forward calls in one "
                      f"predict: {p['head_calls']['eval']}; in one training loss: "
                      f"{p['head_calls']['train']}")
    return lines + ['', 'Neck/head calls (hooks on each module):'] + proofs


# ---------------------------------------------------------------------------------------------
# (name, mmdet recipe, options): LSJ's fixed 1024x1024 pad would hide the benchmark's image size
DETR_RECIPES = [
    ('DINO-R50 4-scale', 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', {}),
    ('Mask2Former-R50 (instance)', 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', {
        'model.data_preprocessor.batch_augments': None
    }),
]


def _language_model_options() -> Dict[str, Any]:
    """Grounding recipes build their text encoder from the tiny local BERT (no download): the text encoder runs
    once per step in the single and the Dual detector alike, so the ratio compares the rest."""
    from cbnet.testing.language_models import tiny_bert
    return {'model.language_model.name': tiny_bert()}


#: Grounding DINO and MM-Grounding-DINO Swin-T COCO fine-tuning recipes (their Dual: configs/cbnet/*_finetune.py)
GROUNDING_RECIPES = [
    ('Grounding DINO Swin-T (COCO fine-tuning)',
     'mmdet::grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py', None),
    ('MM-Grounding-DINO Swin-T (COCO fine-tuning)',
     'mmdet::mm_grounding_dino/coco/grounding_dino_swin-t_finetune_16xb4_1x_coco.py', None),
]


def detr(args, recipe_list=None, branch_batchings=('sequential', 'stacked')) -> Dict[str, Any]:
    timer = 'cpu' if args.device == 'cpu' else 'wall'
    recipes = []
    for name, source, options in (recipe_list or DETR_RECIPES):
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        options = _language_model_options() if options is None else options
        variants = composite_variants(source, cfg_options=options, branch_batchings=branch_batchings)
        costs = {}
        for label, cfg in variants.items():  # branch batching does not change params or eval FLOPs
            if recipe_list is GROUNDING_RECIPES:  # the FLOP tracer has no text input: parameters only
                costs[label] = _grounding_params(cfg)
                continue
            stats = collect_stats(
                cfg,
                tuple(args.shape),
                args.device,
                latency=False,
                progress=progress_printer(len(costs) + 1, len(variants), f'{name} {label}'))
            costs[label] = dict(
                params=stats['params']['total'],
                backbone_params=stats['params']['backbone'],
                flops=stats['flops']['total'],
                backbone_flops=stats['flops']['backbone'],
                model_type=stats['model_type'],
                analytic=stats['flops']['analytic'],
                uncounted_ops=sorted(stats['flops']['uncounted_ops']))
        train = compare_train_steps(
            variants,
            tuple(args.shape),
            args.device,
            args.batch,
            rounds=args.rounds,
            warmup=1,
            repeat=1,
            timer=timer,
            threads=args.threads,
            log=lambda msg, n=name: print(f'{n}: {msg}', file=sys.stderr, flush=True))
        recipes.append(dict(name=name, source=source, cfg_options=options, costs=costs, train=train))
    return dict(recipes=recipes, batch=args.batch, rounds=args.rounds, timer=timer)


def detr_md(result: Dict[str, Any]) -> List[str]:
    gib = 2**30
    first = result['recipes'][0]['train']['variants']
    first = next(iter(first.values()))
    lines = [
        f"Training step (forward with losses, backward, SGD) on generated images and boxes/masks, batch "
        f"{result['batch']}, {result['shape'][0]}x{result['shape'][1]}, {result['timer']} time" +
        (' of one thread' if result['timer'] == 'cpu' else '') + f"; min over {result['rounds']} "
        'rounds in which the variants alternate, each in a fresh subprocess. Memory: ' + first['mem_method'] +
        ' (min over rounds). Params and FLOPs (eval-mode tensor forward of one image; deformable-attention '
        'sampling counted from the shapes) of the built models. The Dual is `cbnet.cbnetify` of the mmdet '
        'recipe (DHLC, the lead without stem and stage 1).', '',
        '`branch_batching`: `sequential` runs neck, encoder, decoder and head once per branch; `stacked` runs '
        'all branches as one batch through them and splits the losses per branch.', ''
    ]
    for recipe in result['recipes']:
        train, costs = recipe['train'], recipe['costs']
        lines += [
            f"## {recipe['name']}", '',
            f"`{recipe['source']}`" + (f", options {recipe['cfg_options']}" if recipe['cfg_options'] else '') + '.', '',
            '| variant | detector | params (M) | GFLOPs (eval) | train step (s) | time ratio | '
            'step memory (GiB) | memory ratio |', '|---|---|---|---|---|---|---|---|'
        ]
        for label, v in train['variants'].items():
            c, r = costs[label], train['ratios'][label]
            lines.append(f"| {label} | {c['model_type']} | {c['params'] / 1e6:.2f} | {c['flops'] / 1e9:.1f} | "
                         f"{v['time_s']:.2f} | {r['time']:.2f}x | {v['peak_mem_increase_bytes'] / gib:.2f} | "
                         f"{r['memory']:.2f}x |")
        shapes = {tuple(v['input_shape']) for v in train['variants'].values()}
        lines += [
            '', f"Input as run: {', '.join(f'{h}x{w}' for h, w in sorted(shapes))}. All times (s): " +
            '; '.join(f"{label} {', '.join(f'{t:.2f}' for t in v['times_s'])}"
                      for label, v in train['variants'].items()) + '.', ''
        ]
    return lines


def _grounding_params(cfg) -> Dict[str, Any]:
    """Parameters of a grounding detector, its language model counted apart (the tiny BERT stands in for it)."""
    model = build_model(cfg)
    total = sum(p.numel() for p in model.parameters())
    language = sum(p.numel() for p in model.language_model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    return dict(params=total - language, backbone_params=backbone, model_type=type(model).__name__)


def grounding(args) -> Dict[str, Any]:
    """Grounding DINO / MM-Grounding-DINO: Dual over single training step (the text prompt: COCO's 80 class names,
    as in their fine-tuning; the Dual encodes it once per step). Their CB detector runs the branches one after the
    other (``branch_batching='stacked'`` does not apply)."""
    return detr(args, GROUNDING_RECIPES, branch_batchings=('sequential', ))


def grounding_md(result: Dict[str, Any]) -> List[str]:
    gib = 2**30
    first = next(iter(result['recipes'][0]['train']['variants'].values()))
    lines = [
        f"Training step (forward with losses, backward, SGD) on generated images and boxes, batch {result['batch']}, "
        f"{result['shape'][0]}x{result['shape'][1]}, {result['timer']} time" +
        (' of one thread' if result['timer'] == 'cpu' else '') + f"; min over {result['rounds']} rounds in which "
        'the variants alternate, each in a fresh subprocess. Memory: ' + first['mem_method'] + ' (min over rounds). '
        'The Dual is `cbnet.cbnetify` of the mmdet recipe (the generic `CBNet`; configs/cbnet/dual_swin_t_*'
        'grounding_dino_finetune.py use the official `CBSwinTransformer` form, 0.8M parameters fewer). The text '
        'prompt is the 80 COCO class names (what the fine-tuning recipes train with); the language '
        'model is a one-layer BERT of BERT-base width (`cbnet.testing.language_models.tiny_bert`): the text encoder '
        'runs once per step in both detectors (in the Dual its output is shared by the branches), so the ratio is '
        'that of the rest; with BERT-base (12 layers) both steps are longer by the same amount. Params: without the '
        'language model (BERT-base without pooler: 108.89M more in both).', ''
    ]
    for recipe in result['recipes']:
        train, costs = recipe['train'], recipe['costs']
        lines += [
            f"## {recipe['name']}", '', f"`{recipe['source']}`.", '',
            '| variant | detector | params (M, w/o language model) | backbone (M) | train step (s) | time ratio | '
            'step memory (GiB) | memory ratio |', '|---|---|---|---|---|---|---|---|'
        ]
        for label, v in train['variants'].items():
            c, r = costs[label], train['ratios'][label]
            lines.append(
                f"| {label} | {c['model_type']} | {c['params'] / 1e6:.2f} | {c['backbone_params'] / 1e6:.2f} | "
                f"{v['time_s']:.2f} | {r['time']:.2f}x | {v['peak_mem_increase_bytes'] / gib:.2f} | "
                f"{r['memory']:.2f}x |")
        lines += [
            '', 'All times (s): ' + '; '.join(f"{label} {', '.join(f'{t:.2f}' for t in v['times_s'])}"
                                              for label, v in train['variants'].items()) + '.', ''
        ]
    return lines


SECTIONS = {
    'paper': (paper, paper_md, 'Paper configs: our params and FLOPs beside the paper\'s', [800, 1280]),
    'memory': (memory, memory_md, 'with_cp: training-step memory of Dual-Swin-T Mask R-CNN', [800, 1333]),
    'eval': (eval_cost, eval_md, 'Eval-mode cost of a Dual detector', [800, 1333]),
    'detr': (detr, detr_md, 'DETR-family and Mask2Former: Dual vs single training step', [320, 320]),
    'grounding':
    (grounding, grounding_md, 'Grounding DINO and MM-Grounding-DINO: Dual vs single training step', [320, 320]),
}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('section', choices=list(SECTIONS))
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, help='memory, detr: training batch size (default 1, detr 2)')
    parser.add_argument('--rounds', type=int, default=3, help='detr: alternating rounds')
    parser.add_argument('--only', nargs='+', help='detr: recipes whose name contains one of these (e.g. dino)')
    parser.add_argument('--repeat', type=int, default=3, help='eval: timed runs')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads (CPU timer)')
    parser.add_argument('--config', help='memory: the config (default: Dual-Swin-T Mask R-CNN)')
    parser.add_argument(
        '--pairs',
        nargs='+',
        metavar='DUAL=SINGLE',
        help='eval: config pairs to compare (default: Dual-R50 Faster R-CNN)')
    parser.add_argument('--out-dir', default=RESULTS)
    args = parser.parse_args(argv)
    fn, md_fn, title, default_shape = SECTIONS[args.section]
    args.shape = args.shape or default_shape
    args.batch = args.batch or (2 if args.section in ('detr', 'grounding') else 1)
    result = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        command='python benchmarks/detector_costs.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
        environment=environment(),
        loadavg=[round(v, 2) for v in os.getloadavg()],
        shape=args.shape,
        device=args.device,
        repeat=args.repeat)
    result.update(fn(args))
    md = '\n'.join(_header(title, result) + md_fn(result)) + '\n'
    write_results(args.out_dir, args.section, result, md)
    print(md)
    return result


if __name__ == '__main__':
    main()
