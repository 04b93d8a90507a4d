"""How many CPU threads torch uses in cbnet's tools (``--threads``), on CPU runs only.

Why: torch starts one intra-op thread per core and its OpenMP threads spin-wait for each other. When other
jobs share the cores, a thread that is descheduled stalls all the others: on a 2-core machine at load 10-14, a
training iteration of the demo model took 24.0 s with torch's 2 threads and 2.7 s with one
(``benchmarks/cpu_threads.py``). On a quiet machine the second thread helps. So the default takes only the cores
that are free when the tool starts (``os.getloadavg``); ``--threads N`` or ``OMP_NUM_THREADS`` decide instead
when given. GPU runs are left alone.
"""
import argparse
import logging
import os
from typing import Optional, Tuple

import torch

THREADS_HELP = ('torch CPU threads on CPU runs (default: OMP_NUM_THREADS if set, else the cores that are free when '
                'the tool starts: os.getloadavg() subtracted from the usable cores, at least 1). GPU runs are not '
                'changed unless this is given.')


def add_threads_argument(parser: argparse.ArgumentParser, help: str = THREADS_HELP) -> None:
    parser.add_argument('--threads', type=int, default=None, metavar='N', help=help)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_cores(cores: Optional[int] = None, load: Optional[float] = None) -> int:
    """Cores not busy with other work: usable cores minus the 1-minute load average, rounded, at least 1."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average on this platform
            return cores
    return max(1, min(cores, int(round(cores - load))))


def choose_threads(requested: Optional[int] = None,
                   cpu_run: bool = True,
                   env: Optional[dict] = None,
                   cores: Optional[int] = None,
                   load: Optional[float] = None,
                   default: Optional[int] = None) -> Tuple[Optional[int], str]:
    """(threads to set, or None to keep torch's; why). Pure function, for the tools and their tests.

    Order: ``requested`` (``--threads``), ``OMP_NUM_THREADS``, nothing on GPU runs, the tool's ``default``
    (timing tools measure with one thread), the free cores.
    """
    env = os.environ if env is None else env
    if requested is not None:
        if requested < 1:
            raise ValueError(f'--threads must be >= 1, got {requested}')
        return requested, '--threads'
    if env.get('OMP_NUM_THREADS'):
        return None, 'OMP_NUM_THREADS'  # torch read it when it started
    if not cpu_run:
        return None, "GPU run: torch's default"
    if default is not None:
        return default, "this tool's default on CPU"
    cores = usable_cores() if cores is None else cores
    chosen = free_cores(cores, load)
    load_text = f', load average {load:.1f}' if load is not None else ''
    return chosen, f'{chosen} of {cores} cores free at start{load_text}'


def configure_cpu_threads(requested: Optional[int] = None,
                          device: Optional[str] = None,
                          default: Optional[int] = None) -> int:
    """Set torch's intra-op threads as :func:`choose_threads` says; logs and returns the count in use.

    ``device``: the device the tool runs on (``'cpu'``, ``'cuda:0'``); None means "CUDA if available", as
    mmengine's Runner decides.
    """
    cpu_run = not torch.cuda.is_available() if device is None else not str(device).startswith('cuda')
    load = None
    try:
        load = os.getloadavg()[0]
    except OSError:
        pass
    threads, why = choose_threads(requested, cpu_run, load=load, default=default)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    from mmengine.logging import print_log
    print_log(
        f'torch CPU threads: {torch.get_num_threads()} ({why}; change with --threads N)',
        logger='current',
        level=logging.INFO)
    return torch.get_num_threads()
