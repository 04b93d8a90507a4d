"""Time and peak memory of one training step (forward with losses, backward, SGD step) on generated data.

The measurement runs in a fresh subprocess per config (``python -m cbnet.analysis.train_worker``), so that
memory held or freed by earlier work cannot mask the step's peak. Gradients are freed between steps
(``zero_grad(set_to_none=True)``), so the peak covers activations, gradients and the step's temporaries, not
the weights. On CUDA: ``torch.cuda.max_memory_allocated`` (absolute, and the increase over what was held
before the step); on CPU: the increase of the peak RSS (see :mod:`cbnet.analysis.memory`).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from .inputs import flatten_tensors, make_batch
from .memory import cpu_measurement_env, cpu_method, peak_since_reset, reset_peak
from .models import ConfigLike, build_model, config_label, is_detector, load_config
from .timing import Progress, median_time, time_once

WORKER_MODULE = 'cbnet.analysis.train_worker'
RESULT_MARKER = '@@CBNET_TRAIN_STEP@@'


def train_step_fn(model: nn.Module, batch: dict) -> Callable[[], float]:
    """One training step of ``model`` on ``batch``: forward with losses, backward, SGD step; returns the loss."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        if is_detector(model):
            losses = model(batch['inputs'], batch['data_samples'], mode='loss')
            loss, _ = model.parse_losses(losses)
        else:
            loss = sum(t.float().mean() for t in flatten_tensors(model(batch['inputs'])))
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def measure_train_step_inprocess(cfg: Config,
                                 shape: Tuple[int, int],
                                 device: str,
                                 batch_size: int,
                                 warmup: int,
                                 repeat: int,
                                 progress: Progress = None,
                                 timer: str = 'wall',
                                 seed: int = 0) -> Dict[str, Any]:
    """Time and peak memory of a training step in THIS process (call it in a fresh one)."""
    torch.manual_seed(seed)  # the same random draws (e.g. DINO's denoising noise) in every run
    model = build_model(cfg, device).train()
    batch = make_batch(model, shape, batch_size, training=True)
    step = train_step_fn(model, batch)
    for i in range(max(warmup, 1)):  # the first step allocates lazily built state
        if progress:
            progress(f'train warm-up {i + 1}/{max(warmup, 1)}')
        step()
    # What the model really ran on: a config's batch augments (e.g. LSJ's fixed-size pad) may change the shape.
    out: Dict[str, Any] = dict(batch_size=batch_size, input_shape=list(batch['inputs'].shape[-2:]))
    before = reset_peak(device)
    losses = []
    first_time = time_once(lambda: losses.append(step()), device, timer)
    peak = peak_since_reset(device)
    if device.startswith('cuda'):
        out.update(
            peak_mem_bytes=peak, peak_mem_increase_bytes=peak - before, mem_method='torch.cuda.max_memory_allocated')
    else:
        out.update(
            peak_mem_increase_bytes=peak - before,
            rss_before_bytes=before,
            peak_rss_bytes=peak,
            mem_method=cpu_method())
    out['loss'] = losses[0]
    # The measured step is timed too; ``repeat - 1`` more steps join it.
    more = median_time(step, 0, max(repeat - 1, 0), device, progress, 'train step', timer)
    times = [first_time] + more['times_s']
    out.update(timer=timer, times_s=times, median_s=statistics.median(times), min_s=min(times))
    return out


def measure_train_step(config: ConfigLike,
                       shape: Tuple[int, int],
                       device: str,
                       batch_size: int,
                       warmup: int,
                       repeat: int,
                       cfg_options: Optional[dict] = None,
                       verbose: bool = True,
                       timer: str = 'wall',
                       threads: Optional[int] = None) -> Dict[str, Any]:
    """:func:`measure_train_step_inprocess` in a fresh subprocess; ``config`` may be an in-memory Config.

    Raises:
        RuntimeError: when the worker fails (with the end of its stderr when ``verbose`` is False).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = config
        if isinstance(config, Config):  # the worker loads a file: dump the (merged) config
            path = os.path.join(tmp, 'config.py')
            config.dump(path)
        spec = dict(
            config=path,
            cfg_options=cfg_options or {},
            shape=list(shape),
            device=device,
            batch_size=batch_size,
            warmup=warmup,
            repeat=repeat,
            timer=timer,
            threads=threads,
            name=os.path.basename(config_label(config)))
        proc = subprocess.run([sys.executable, '-m', WORKER_MODULE,
                               json.dumps(spec)],
                              env=cpu_measurement_env(),
                              stdout=subprocess.PIPE,
                              stderr=None if verbose else subprocess.PIPE,
                              text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    raise RuntimeError(f'training-step worker for {config_label(config)!r} failed (exit {proc.returncode})' +
                       (f':\n{proc.stderr[-3000:]}' if proc.stderr else ''))


def run_worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The worker's side: load the config, set the threads, measure."""
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    cfg = load_config(spec['config'], spec.get('cfg_options'))
    name = spec.get('name') or os.path.basename(str(spec['config']))

    def progress(msg: str) -> None:
        print(f'{name}: {msg}', file=sys.stderr, flush=True)

    return measure_train_step_inprocess(cfg, tuple(spec['shape']), spec['device'], int(spec['batch_size']),
                                        int(spec['warmup']), int(spec['repeat']), progress, spec['timer'])
