"""Which CB detector classes, made Dual and tiny, deploy to ONNX Runtime and agree with PyTorch?

    python benchmarks/deploy_sweep.py [--detectors RetinaNet PAA ...] [--timeout 600]
        [--out-dir benchmarks/results] [--resume]

For every class of ``cbnet.models.detectors.CB_DETECTORS`` that mmdet's zoo has a config of (and the variants of
``cbnet.testing.deploy_sweep.VARIANTS``): the tiny Dual case with random calibrated weights, exported with MMDeploy
(``configs/deploy/{task}_onnxruntime_dynamic.py``), ONNX Runtime against PyTorch on three images, disagreements
diagnosed (see :mod:`cbnet.testing.deploy_sweep`). Each class runs in its own process with ``--timeout``. Writes
``deploy_sweep.json`` and ``deploy_sweep.md`` to ``--out-dir``; rows are appended to ``deploy_sweep.partial.jsonl``
there as they come, so ``--resume`` continues an interrupted run.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import shlex
import sys
import time

from cbnet.analysis import environment, versions_line, write_results
from cbnet.testing.deploy_sweep import (STATUSES, markdown_report, row_from_dict, row_to_dict, sweep_detector,
                                        sweep_detectors, totals)
from cbnet.testing.sweep_cli import load_partial

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--detectors', nargs='+', default=None, help='class names without CB (default: all)')
    parser.add_argument('--timeout', type=int, default=600, help='seconds per class (its own process)')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    parser.add_argument('--resume', action='store_true', help='skip classes already in the partial results')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')  # the class processes run one thread
    everything = sweep_detectors()
    detectors = args.detectors or everything
    unknown = sorted(set(detectors) - set(everything))
    if unknown:
        sys.exit(f'not a CB detector class (or variant): {", ".join(unknown)}; choose from {", ".join(everything)}')
    os.makedirs(args.out_dir, exist_ok=True)
    partial = osp.join(args.out_dir, 'deploy_sweep.partial.jsonl')
    done = load_partial(partial, args.resume, row_from_dict, lambda row: row.detector)

    start = time.time()
    rows = []
    with open(partial, 'a') as out:
        for index, detector in enumerate(detectors, 1):
            if detector in done:
                rows.append(done[detector])
                continue
            row = sweep_detector(detector, timeout=args.timeout)
            rows.append(row)
            out.write(json.dumps(row_to_dict(row)) + '\n')
            out.flush()
            note = row.verdict or row.reason
            print(
                f'[{index:2d}/{len(detectors)}] {row.status:13s} {row.seconds:6.1f}s {detector:24s} {note[:120]}',
                flush=True)
    duration = time.time() - start

    counts = totals(rows)
    command = 'python benchmarks/deploy_sweep.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    env = environment()
    header = {
        'command':
        f'`{command.strip()}` (one torch thread per class process)',
        'duration':
        f'{duration / 60:.1f} min for {len(detectors)} classes'
        f'{" (resumed: earlier results kept)" if done else ""}',
        'date':
        datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
        'versions':
        f"{versions_line(env)}, mmdeploy {_version('mmdeploy')}, onnxruntime {_version('onnxruntime')}, "
        f"{env['machine']}, {env['cpu_count']} cpus",
    }
    record = dict(header=header, totals=counts, results=[row_to_dict(r) for r in rows])
    write_results(args.out_dir, 'deploy_sweep', record, markdown_report(rows, header), indent=1)
    os.remove(partial)
    print('\n' + ' | '.join(f'{s} {counts[s]}' for s in STATUSES) + f' | all {len(rows)}')
    print(f'wrote {osp.join(args.out_dir, "deploy_sweep.json")} and deploy_sweep.md ({duration / 60:.1f} min)')


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return 'not installed'


if __name__ == '__main__':
    main()
