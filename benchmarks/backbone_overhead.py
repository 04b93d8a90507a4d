# Copyright (c) cbnet contributors. All rights reserved.
"""What does a composite backbone cost over K copies of the backbone? Single vs Dual vs Triple.

    python benchmarks/backbone_overhead.py [--families r50 swin_t ...] [--rounds 5]
        [--shape 320 320] [--batch 2] [--device cpu] [--out-dir benchmarks/results] [--name backbone_overhead]

For R50, Swin-T, ConvNeXt-T, CSPNeXt-L (RTMDet-L's), HRNet-W32, timm's ResNet-50 (through mmpretrain's
``TIMMBackbone``: the generic timm adapter beside mmdet's own ResNet), a plain ViT-B/16 (blocks 3, 6, 9, 12
returned), Hiera-T (timm) and HiViT-T (mmpretrain) (and a ``frozen_stages=1`` R50 pair, the detection default)
this builds the single backbone and ``CBNet`` with K = 2 and 3 around it, and measures
- params, and forward FLOPs (mmengine's FlopAnalyzer, train-mode forward of all branches, 1
  multiply-add = 1 FLOP; element-wise additions are not counted),
- the time of forward + backward in train mode (loss = sum of the means of all branches'
  outputs), batch 2, 320x320: warm-up once, then ``--rounds`` rounds in which the variants of a
  family run one after the other (alternating, so that load from other processes hits all of them
  alike); the minimum over rounds is reported (the least disturbed run).
Goals: all stages trainable, Dual/single time ratio within 4% of the Dual/single FLOPs ratio (the
composition adds no avoidable cost); ``frozen_stages=1`` Dual R50 <= 2.18x single R50.
A family that CBNet refuses here (no adapter installed, or its adapter's check) is left out with the reason.
Writes ``<name>.json`` and ``<name>.md`` (``--name``, default ``backbone_overhead``) to ``--out-dir``.
"""
from __future__ import annotations
import argparse
import copy
import datetime
import importlib.util
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

from cbnet.analysis import count_flops_module, environment, flatten_tensors, time_once, versions_line, write_results
from cbnet.utils.configs import strip_pretrained

TIMER_NOTES = dict(
    cpu='CPU time of this process (time.process_time), single-threaded unless stated',
    wall='wall clock, CUDA synchronised')
TIME_GOAL = 0.04  # |time ratio / FLOPs ratio - 1| for all-trainable Dual
FROZEN_DUAL_GOAL = 2.18  # frozen_stages=1 Dual R50 / single R50, the official code's ratio

BACKBONES: Dict[str, dict] = {
    'r50':
    dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch'),
    'swin_t':
    dict(
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True),
    'convnext_t':
    dict(
        type='mmpretrain.ConvNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.,
        gap_before_final_norm=False),
    # The detection default: stem + first stage frozen, BN statistics frozen.
    'r50_frozen1':
    dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch'),
    # RTMDet-L's backbone (SyncBN there), returning stage2..stage4 as RTMDet does
    'cspnext_l':
    dict(
        type='CSPNeXt',
        arch='P5',
        expand_ratio=0.5,
        deepen_factor=1,
        widen_factor=1,
        channel_attention=True,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='SiLU', inplace=True)),
    'hrnet_w32':
    dict(
        type='HRNet',
        norm_eval=False,
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ), num_channels=(64, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4), num_channels=(32, 64)),
            stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4), num_channels=(32, 64, 128)),
            stage4=dict(
                num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                num_channels=(32, 64, 128, 256)))),
    # timm's ResNet-50 through the generic timm adapter: the same network as 'r50'
    'timm_resnet50':
    dict(
        type='mmpretrain.TIMMBackbone',
        model_name='resnet50',
        features_only=True,
        pretrained=False,
        out_indices=(1, 2, 3, 4)),
    # a plain ViT-B/16 (mmpretrain's), its blocks 3, 6, 9, 12 returned as maps (ViTDet-style detection)
    'vit_b':
    dict(
        type='mmpretrain.VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        out_indices=(2, 5, 8, 11),
        out_type='featmap',
        final_norm=False,
        drop_path_rate=0.),
    # Hiera-T (timm's hierarchical ViT) through mmpretrain's TIMMBackbone; its position embedding has a fixed size,
    # so the input must be 224 px (the three ViT rows run at --shape 224 224)
    'hiera_t':
    dict(
        type='mmpretrain.TIMMBackbone',
        model_name='hiera_tiny_224',
        features_only=True,
        pretrained=False,
        out_indices=(0, 1, 2, 3)),
    # HiViT-T (mmpretrain's hierarchical-stem ViT; it returns its last block only)
    'hivit_t':
    dict(type='mmpretrain.HiViT', arch='tiny', img_size=224, out_indices=[9], drop_path_rate=0.),
}


def backbone_cfg(family: str, num_backbones: int) -> dict:
    """The single backbone (K = 1) or ``CBNet`` with K branches of it."""
    inner = copy.deepcopy(BACKBONES[family])
    if num_backbones == 1:
        return inner
    return dict(type='CBNet', backbone=inner, num_backbones=num_backbones)


def build(cfg: dict, device: str) -> nn.Module:
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    strip_pretrained(cfg)
    model = MODELS.build(cfg).to(device)
    model.train()
    return model


def fwd_bwd(model: nn.Module, x: torch.Tensor) -> None:
    """Forward + backward of the sum of the means of every output of every branch."""
    model.zero_grad(set_to_none=True)
    loss = sum(t.float().mean() for t in flatten_tensors(model(x)))
    loss.backward()


def time_fwd_bwd(model: nn.Module, x: torch.Tensor, device: str, timer: str) -> float:
    """Seconds of one forward + backward: wall clock, or this process' CPU time.

    On a shared CPU machine wall time mostly measures the other jobs; the CPU time of a
    single-threaded run counts only this process' work (cache and memory-bandwidth contention
    still leak in, so the minimum over rounds is still taken).
    """
    return time_once(lambda: fwd_bwd(model, x), device, timer)


class NotComposable(Exception):
    """CBNet refuses this family (no adapter, or the adapter's check): the family's rows are left out."""


def build_variants(family: str, ks: List[int], device: str) -> Dict[int, nn.Module]:
    """The single backbone and its composites; :class:`NotComposable` with CBNet's reason where it refuses."""
    try:
        return {k: build(backbone_cfg(family, k), device) for k in ks}
    except (TypeError, ValueError) as e:
        if 'CBNet' not in str(e):
            raise
        raise NotComposable(str(e).split('. ')[0]) from e


def measure_family(family: str, ks: List[int], shape, batch: int, rounds: int, device: str, timer: str,
                   log) -> List[Dict[str, Any]]:
    models = build_variants(family, ks, device)
    x = torch.randn(batch, 3, *shape, device=device)
    rows = []
    for k, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        flops = count_flops_module(model, x[:1])
        rows.append(
            dict(
                family=family,
                num_backbones=k,
                params=params,
                trainable_params=trainable,
                flops_per_image=flops,
                times_s=[]))
        log(f'{family} K={k}: {params / 1e6:.2f}M params, {flops / 1e9:.2f} GFLOPs/img')
    for k, model in models.items():  # warm-up (allocator, lazily built state)
        time_fwd_bwd(model, x, device, timer)
    for r in range(rounds):
        for row, model in zip(rows, models.values()):
            row['times_s'].append(time_fwd_bwd(model, x, device, timer))
        log(f'{family} round {r + 1}/{rounds}: ' + ', '.join(f"K={row['num_backbones']} {row['times_s'][-1]:.3f}s"
                                                             for row in rows))
    base = rows[0]
    for row in rows:
        row['time_s'] = min(row['times_s'])
        row['time_ratio'] = row['time_s'] / base['time_s']
        row['flops_ratio'] = row['flops_per_image'] / base['flops_per_image']
        row['params_ratio'] = row['params'] / base['params']
        row['time_over_flops'] = row['time_ratio'] / row['flops_ratio']
    return rows


def judge(rows: List[Dict[str, Any]]) -> List[str]:
    """The goals, checked against the measurements."""
    verdicts = []
    for row in rows:
        if row['num_backbones'] == 1:
            continue
        if row['family'] == 'r50_frozen1':
            if row['num_backbones'] == 2:
                ok = row['time_ratio'] <= FROZEN_DUAL_GOAL
                verdicts.append(f"frozen_stages=1 Dual R50 / single R50 = {row['time_ratio']:.3f}x "
                                f"(goal <= {FROZEN_DUAL_GOAL}x): {'MET' if ok else 'NOT MET'}")
            continue
        dev = row['time_over_flops'] - 1
        if abs(dev) <= TIME_GOAL:
            verdict = 'MET'
        elif dev < 0:  # cheaper than its FLOPs predict: no composition overhead, yet outside the band
            verdict = 'NOT MET (time below the FLOPs ratio: no composition overhead)'
        else:
            verdict = 'NOT MET (composition overhead)'
        verdicts.append(f"{row['family']} K={row['num_backbones']}: time ratio "
                        f"{row['time_ratio']:.3f} vs FLOPs ratio {row['flops_ratio']:.3f} "
                        f"({dev:+.1%}; goal within {TIME_GOAL:.0%}): {verdict}")
    return verdicts


def markdown(result: Dict[str, Any]) -> str:
    env = result['environment']
    lines = [
        '# Composite backbone overhead: single vs Dual vs Triple',
        '',
        f"Generated {result['date']} by `{result['command']}`.",
        '',
        f"Machine: {env['cpu']} ({env['cpu_count']} cores, {env['torch_threads']} torch threads)" +
        (f", GPU {env['gpu']}" if 'gpu' in env else '') + f", device `{result['device']}`. "
        f"Load average before/after: {result['loadavg_before']} / {result['loadavg_after']}"
        ' (the machine is shared with other jobs; times are the minimum over rounds).',
        '',
        'Versions: ' + versions_line(env) + (f", timm {env['timm']}" if env.get('timm') else ''),
        '',
        f"Timer: {TIMER_NOTES[result['timer']]}.",
        '',
        f"Train mode, batch {result['batch']}, {result['shape'][0]}x{result['shape'][1]}, "
        'forward + backward of the sum of all branch outputs\' means; FLOPs: forward, per image, '
        'mmengine FlopAnalyzer (1 multiply-add = 1 FLOP; element-wise adds not counted).',
        '',
        '| backbone | K | params (M) | params ratio | GFLOPs/img | FLOPs ratio | time (s) | '
        'time ratio | time / FLOPs ratio |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for row in result['rows']:
        lines.append(f"| {row['family']} | {row['num_backbones']} | {row['params'] / 1e6:.2f} | "
                     f"{row['params_ratio']:.3f} | {row['flops_per_image'] / 1e9:.2f} | "
                     f"{row['flops_ratio']:.3f} | {row['time_s']:.3f} | {row['time_ratio']:.3f} | "
                     f"{row['time_over_flops']:.3f} |")
    if result.get('left_out'):
        lines += [
            '',
            'Left out (CBNet refuses them here): ' + '; '.join(f'{family}: {reason}'
                                                               for family, reason in result['left_out'].items()) + '.'
        ]
    lines += ['', '## Goals', ''] + [f'- {v}' for v in result['verdicts']]
    return '\n'.join(lines) + '\n'


def available_families() -> List[str]:
    """The families that can be built here: a timm model needs timm (e.g. on a CUDA machine without it)."""
    has_timm = importlib.util.find_spec('timm') is not None
    return [f for f in BACKBONES if has_timm or BACKBONES[f]['type'] != 'mmpretrain.TIMMBackbone']


def timm_version() -> Dict[str, str]:
    try:
        import timm
    except ImportError:
        return {}
    return dict(timm=timm.__version__)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--families',
        nargs='+',
        default=available_families(),
        choices=list(BACKBONES),
        help='default: every family whose packages are installed (timm for timm_*)')
    parser.add_argument(
        '--num-backbones',
        type=int,
        nargs='+',
        default=[1, 2, 3],
        help='K values to compare; the first is the baseline (default 1 2 3)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--shape', type=int, nargs=2, default=[320, 320], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--timer',
        choices=['cpu', 'wall'],
        help='cpu: process CPU time (default on CPU devices, with --threads 1); '
        'wall: wall clock (default on CUDA)')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads on CPU (default 1: CPU time then measures work)')
    parser.add_argument('--out-dir', default=osp.join(osp.dirname(osp.abspath(__file__)), 'results'))
    parser.add_argument(
        '--name',
        default='backbone_overhead',
        help='results file name (a run over some families only writes its own file, e.g. backbone_overhead_vit)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    timer = args.timer or ('wall' if args.device.startswith('cuda') else 'cpu')
    if not args.device.startswith('cuda'):
        torch.set_num_threads(args.threads)
    loadavg_before = [round(v, 2) for v in os.getloadavg()]
    rows, left_out = [], {}
    for family in args.families:
        ks = [k for k in args.num_backbones if not (family == 'r50_frozen1' and k > 2)]
        try:
            rows += measure_family(family, ks, tuple(args.shape), args.batch, args.rounds, args.device, timer, log)
        except NotComposable as e:
            left_out[family] = str(e)
            log(f'{family}: left out, {e}')
    result = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        command='python benchmarks/backbone_overhead.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
        environment=dict(environment(), **timm_version()),
        device=args.device,
        shape=args.shape,
        batch=args.batch,
        rounds=args.rounds,
        timer=timer,
        loadavg_before=loadavg_before,
        loadavg_after=[round(v, 2) for v in os.getloadavg()],
        rows=rows,
        left_out=left_out)
    result['verdicts'] = judge(rows)
    md = markdown(result)
    write_results(args.out_dir, args.name, result, md)
    print(md)
    return result


if __name__ == '__main__':
    main()
