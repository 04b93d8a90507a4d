"""Timing: wall clock (CUDA synchronised) or this process' CPU time.

On a CPU machine shared with other jobs, wall time mostly measures the other jobs; the CPU time of a
single-threaded run (``torch.set_num_threads(1)``) counts this process' work (cache and memory-bandwidth
contention still leak in, so take the minimum over runs or rounds). :func:`alternating_times` compares several
functions (e.g. the latency of a single and a Dual detector) in alternating rounds, so that a load change hits
all of them alike.
"""
import statistics
import time
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn as nn

from .models import is_detector

TIMERS: Dict[str, Callable[[], float]] = {'wall': time.perf_counter, 'cpu': time.process_time}
Progress = Optional[Callable[[str], None]]


def sync(device: str) -> None:
    """Wait for queued CUDA work (a no-op on CPU)."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def default_timer(device: str) -> str:
    return 'wall' if device.startswith('cuda') else 'cpu'


def time_once(fn: Callable[[], Any], device: str, timer: str = 'wall') -> float:
    clock = TIMERS[timer]
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def median_time(fn: Callable[[], Any],
                warmup: int,
                repeat: int,
                device: str,
                progress: Progress = None,
                what: str = '',
                timer: str = 'wall') -> Dict[str, Any]:
    """Median, min and all times of ``fn`` over ``repeat`` runs after ``warmup`` untimed runs."""
    for i in range(warmup):
        if progress:
            progress(f'{what} warm-up {i + 1}/{warmup}')
        fn()
    times = []
    for i in range(repeat):
        if progress:
            progress(f'{what} {i + 1}/{repeat}')
        times.append(time_once(fn, device, timer))
    return dict(
        median_s=statistics.median(times) if times else None,
        min_s=min(times) if times else None,
        times_s=times,
        timer=timer)


def alternating_times(fns: Dict[str, Callable[[], Any]],
                      device: str,
                      rounds: int = 3,
                      warmup: int = 1,
                      repeat: int = 3,
                      timer: str = 'wall',
                      progress: Optional[Callable[[str, str], None]] = None) -> Dict[str, Dict[str, Any]]:
    """Time every function of ``fns`` ``repeat`` times per round, the functions alternating, over ``rounds``
    rounds (after ``warmup`` untimed runs each). Per name: ``min_s`` (the least disturbed run, what ratios
    should use), ``median_s``, ``times_s``, ``timer``, ``rounds``."""
    for name, fn in fns.items():
        for i in range(warmup):
            if progress:
                progress(name, f'latency warm-up {i + 1}/{warmup}')
            fn()
    times: Dict[str, list] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            if progress:
                progress(name, f'latency round {r + 1}/{rounds}')
            times[name] += [time_once(fn, device, timer) for _ in range(repeat)]
    return {
        name: dict(min_s=min(t), median_s=statistics.median(t), times_s=t, timer=timer, rounds=rounds, repeat=repeat)
        for name, t in times.items() if t
    }


def predict_fn(model: nn.Module, batch: dict) -> Callable[[], None]:
    """Eval-mode ``predict`` of ``batch`` without gradients (what latency measures)."""
    model.eval()

    def run() -> None:
        with torch.no_grad():
            if is_detector(model):
                model(batch['inputs'], batch['data_samples'], mode='predict')
            else:
                model(batch['inputs'])

    return run


def measure_latency(model: nn.Module,
                    batch: dict,
                    device: str,
                    warmup: int,
                    repeat: int,
                    progress: Progress = None,
                    timer: str = 'wall') -> Dict[str, Any]:
    """Eval-mode ``predict`` (post-processing included, data loading and preprocessing not) of ``batch``."""
    return median_time(predict_fn(model, batch), warmup, repeat, device, progress, 'latency', timer)
