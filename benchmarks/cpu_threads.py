# Copyright (c) cbnet contributors. All rights reserved.
"""How many torch threads should a CPU run of cbnet's tools use, on a quiet and on a busy machine?

    python benchmarks/cpu_threads.py [--busy 0 3] [--iters 15] [--rounds 2]
        [--config configs/cbnet/dual_r18_faster_rcnn_toy.py] [--work-dir work_dirs/cpu_threads]
        [--out-dir benchmarks/results]

Trains the demo model (toy shapes data) with ``tools/train.py`` for ``--iters`` iterations, once per thread
setting: ``1``, every usable core, and the tools' default (``auto``: no ``--threads``, no ``OMP_NUM_THREADS``:
the cores free at start, :mod:`cbnet.utils.threads`). The settings alternate within each of ``--rounds`` rounds.
Each ``--busy`` value is a condition: that many spinning Python processes run beside the training (bounded in
time, stopped afterwards), as other jobs on a shared machine would. Reported per run: seconds per iteration
(mmengine's logged ``time`` averaged over the iterations after the first 5) and the threads the run used; per
condition and setting the minimum over rounds. Writes ``cpu_threads.json`` and ``cpu_threads.md``.
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from cbnet.analysis import markdown_header, run_record, start_run, write_results
from cbnet.analysis.toy_training import ensure_toy_data
from cbnet.utils.threads import usable_cores

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SPIN = 'import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n'


def start_load(n: int, seconds: int) -> List[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, '-c', SPIN.format(seconds=seconds)]) for _ in range(n)]


def stop_load(procs: List[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait()


def train_once(args: argparse.Namespace, data_root: str, threads: Optional[int], work_dir: str) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    env['CBNET_TOY_DATA_ROOT'] = data_root
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools',
                 'train.py'), args.config, '--work-dir', work_dir, '--cfg-options', f'train_cfg.max_iters={args.iters}',
        f'train_cfg.val_interval={args.iters + 1}', 'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        f'default_hooks.checkpoint.interval={args.iters + 1}', 'default_hooks.checkpoint.save_last=False'
    ] + ([] if threads is None else ['--threads', str(threads)])
    start = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    used = re.search(r'torch CPU threads: (\d+) \(([^)]*)\)', proc.stdout + proc.stderr)
    scalars = sorted(
        (os.path.join(root, f) for root, _, files in os.walk(work_dir) for f in files if f == 'scalars.json'),
        key=os.path.getmtime)[-1]
    with open(scalars) as f:
        times = [json.loads(line)['time'] for line in f if '"time"' in line and '"loss"' in line]
    kept = times[5:] or times
    return dict(
        threads=int(used.group(1)) if used else None,
        why=used.group(2) if used else None,
        s_per_iter=sum(kept) / len(kept),
        iter_times=times,
        wall_s=time.time() - start)


def run_all(args: argparse.Namespace, log) -> List[Dict[str, Any]]:
    data_root = ensure_toy_data(osp.join(args.work_dir, 'toy_coco')).rstrip('/') + '/'
    settings = [('1', 1), (f'{usable_cores()} (all cores)', usable_cores()), ('auto (default)', None)]
    runs = []
    for busy in args.busy:
        procs = start_load(busy, seconds=args.max_load_seconds) if busy else []
        time.sleep(args.settle if busy else 0)
        try:
            for r in range(args.rounds):
                for name, threads in settings:
                    load = os.getloadavg()[0]
                    run = train_once(args, data_root, threads, osp.join(args.work_dir, f'b{busy}_r{r}_{threads}'))
                    run.update(busy=busy, round=r, setting=name, load_at_start=load)
                    log(f"busy {busy}, round {r + 1}, threads {name}: {run['s_per_iter']:.3f} s/it "
                        f"({run['threads']} thread(s): {run['why']}; load {load:.1f})")
                    runs.append(run)
        finally:
            stop_load(procs)
    return runs


def summarize(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for busy in sorted({r['busy'] for r in runs}):
        for setting in dict.fromkeys(r['setting'] for r in runs):
            mine = [r for r in runs if r['busy'] == busy and r['setting'] == setting]
            if mine:
                rows.append(
                    dict(
                        busy=busy,
                        setting=setting,
                        s_per_iter_min=min(r['s_per_iter'] for r in mine),
                        threads_used=sorted({r['threads']
                                             for r in mine}),
                        load_at_start=[round(r['load_at_start'], 1) for r in mine]))
    return rows


def markdown(rows: List[Dict[str, Any]], record: Dict[str, Any], args: argparse.Namespace) -> str:
    lines = markdown_header('torch CPU threads of tools/train.py, quiet and busy', record)
    lines += [
        '', f'Demo model (`{args.config}`), {args.iters} iterations per run, seconds per iteration after the first '
        f'5 (minimum over {args.rounds} alternating rounds). busy = spinning processes beside the run.', '',
        '| busy processes | --threads | threads used | s/it | load at start |', '|---|---|---|---|---|'
    ]
    for r in rows:
        lines.append(f"| {r['busy']} | {r['setting']} | {', '.join(map(str, r['threads_used']))} | "
                     f"{r['s_per_iter_min']:.3f} | {', '.join(map(str, r['load_at_start']))} |")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='configs/cbnet/dual_r18_faster_rcnn_toy.py')
    parser.add_argument('--busy', type=int, nargs='+', default=[0, 3], help='spinning processes per condition')
    parser.add_argument('--iters', type=int, default=15)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--settle', type=float, default=20, help='seconds between starting the load and measuring')
    parser.add_argument('--max-load-seconds', type=int, default=900, help='the spinning processes end by then')
    parser.add_argument('--work-dir', default='work_dirs/cpu_threads')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    args = parser.parse_args(argv)
    start = start_run()
    runs = run_all(args, lambda msg: print(msg, file=sys.stderr, flush=True))
    rows = summarize(runs)
    record = run_record(start, __file__, argv)
    md = markdown(rows, record, args)
    print(md)
    write_results(args.out_dir, 'cpu_threads', dict(record, rows=rows, runs=runs), md, relative_to=REPO)


if __name__ == '__main__':
    main()
