"""Does cbnetify convert every config of mmdet's zoo? Refused (with the reason), or built tiny and checked.

    python benchmarks/zoo_sweep.py [--only 'dino/*' ...] [--num-backbones 2] [--timeout 300]
        [--out-dir benchmarks/results] [--resume]

For every detection / instance / panoptic config of mmdet's zoo (``_base_`` excluded): cbnetify it; shrink the
model (same detector, neck and head types, tiny ResNet-18, 64 px); run the plain tiny detector (one training
step, one predict) and then its CB variant: lead and assisting losses, a gradient for every trainable
parameter, predict (see :mod:`cbnet.testing.zoo_sweep`). Writes ``zoo_sweep.json`` (every result, totals,
failures by cause) and ``zoo_sweep.md`` to ``--out-dir``. Results are appended to ``zoo_sweep.partial.jsonl``
there as they come, so ``--resume`` continues an interrupted run. Takes about half an hour on one CPU thread.
"""
import argparse
import datetime
import fnmatch
import json
import os
import os.path as osp
import shlex
import sys
import time

import torch

from cbnet.analysis import environment, versions_line, write_results
from cbnet.testing.sweep_cli import load_partial
from cbnet.testing.zoo_sweep import (STATUSES, markdown_report, result_from_dict, result_to_dict, summarize,
                                     sweep_config, zoo_configs)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', default=None, help='config patterns (fnmatch), e.g. "dino/*"')
    parser.add_argument('--num-backbones', type=int, default=2)
    parser.add_argument('--timeout', type=int, default=300, help='seconds per config')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    parser.add_argument('--resume', action='store_true', help='skip configs already in the partial results')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    configs = zoo_configs()
    if args.only:
        configs = [c for c in configs if any(fnmatch.fnmatch(c, p) for p in args.only)]
    os.makedirs(args.out_dir, exist_ok=True)
    partial = osp.join(args.out_dir, 'zoo_sweep.partial.jsonl')
    done = load_partial(partial, args.resume, result_from_dict, lambda result: result.config)

    start = time.time()
    seen = {}
    results = []
    with open(partial, 'a') as out:
        for index, rel in enumerate(configs, 1):
            if rel in done:
                results.append(done[rel])
                continue
            result = sweep_config(rel, num_backbones=args.num_backbones, seen=seen, timeout=args.timeout)
            results.append(result)
            out.write(json.dumps(result_to_dict(result)) + '\n')
            out.flush()
            note = f'same as {result.same_as}' if result.same_as else result.reason[:110]
            print(
                f'[{index:4d}/{len(configs)}] {result.status:10s} {result.seconds:6.1f}s {rel}  {result.stage} '
                f'{note}',
                flush=True)
    duration = time.time() - start

    summary = summarize(results)
    command = 'python benchmarks/zoo_sweep.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    env = environment()
    header = {
        'command': f'`{command.strip()}` (torch on {args.threads} thread(s))',
        'duration': f'{duration / 60:.1f} min for {len(configs)} configs'
        f'{" (resumed: earlier results kept)" if done else ""}',
        'date': datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
        'versions': f"{versions_line(env)}, {env['machine']}, {env['cpu_count']} cpus",
        'K': str(args.num_backbones),
    }
    record = dict(header=header, summary=summary, results=[result_to_dict(r) for r in results])
    write_results(args.out_dir, 'zoo_sweep', record, markdown_report(results, summary, header), indent=1)
    os.remove(partial)

    print('\n' + ' | '.join(f'{s} {summary["totals"][s]}' for s in STATUSES) + f' | all {summary["configs"]}')
    for status in ('failed', 'untestable'):
        for cause, rels in summary['causes'].get(status, {}).items():
            print(f'{status:10s} x{len(rels):3d} {cause[:150]}  e.g. {rels[0]}')
    print(f'wrote {osp.join(args.out_dir, "zoo_sweep.json")} and zoo_sweep.md ({duration / 60:.1f} min)')


if __name__ == '__main__':
    main()
