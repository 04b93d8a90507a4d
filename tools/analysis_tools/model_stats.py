# Copyright (c) cbnet contributors. All rights reserved.
"""Parameters, FLOPs, latency and training-step cost of detector configs.

    python tools/analysis_tools/model_stats.py CONFIG [CONFIG ...] [--shape H W]
        [--device cpu|cuda] [--train] [--out stats.json]

Answers "what does Dual/Triple cost me?" for any config: one table row per config and a JSON file.

How each number is measured (and why):
- Models are built from the config with every ``init_cfg`` (and ``pretrained``) set to None and
  ``init_weights()`` never called: costs do not depend on the weights, and no checkpoint is needed.
- Params: all parameters, split by top-level module (backbone, neck, heads) and, for a composite
  backbone, per branch and for the composition (the connections).
- FLOPs: mmengine's ``FlopAnalyzer`` (fvcore's counter; one fused multiply-add = one FLOP, the
  convention of the CBNetV2 paper's tables) on the eval-mode tensor forward ``model._forward`` of one
  image, as mmdet's ``tools/analysis_tools/get_flops.py`` does: backbone, neck, RPN and the RoI head
  on all test-time proposals, no post-processing. It does NOT count operators it has no rule for:
  element-wise ops (additions, activations other than the ignored relu, softmax, the composite
  connections' sums), and custom ops that are not traced as aten ops (mmcv RoIAlign, NMS). The
  uncounted operators met in each model are listed in the JSON (``flops_uncounted_ops``).
  Counted: conv, linear, matmul/bmm/einsum (so attention products), norms, nearest/bilinear
  upsampling (so the composite connections' resizes), adaptive pooling.
- Latency: eval-mode ``predict`` (with post-processing, without data loading and preprocessing),
  batch 1, median of ``--repeat`` runs after ``--warmup`` runs. Wall clock by default; on a CPU
  machine shared with other jobs, ``--timer cpu --threads 1`` counts this process' CPU time, which
  the other jobs barely disturb.
- ``--train``: one training step (forward with losses, backward, SGD step) on random images and
  boxes, median of ``--repeat`` steps after ``--warmup`` steps; peak memory of one step measured in a
  fresh subprocess per config so that earlier work cannot mask it:
  on CUDA, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (reported as the
  absolute peak and as the increase over the memory held before the step);
  on CPU, the increase of the process' peak resident set size (VmHWM) over the RSS just before the
  step: the subprocess runs with glibc's mmap threshold fixed (``MALLOC_MMAP_THRESHOLD_``) so freed
  tensors leave the RSS, trims the heap, and resets VmHWM (``/proc/self/clear_refs``) right before the
  step. Gradients are freed between steps (``zero_grad(set_to_none=True)``), so the step's peak
  includes activations, gradients and the step's temporaries, not the weights.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import importlib.util
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

WORKER_MARKER = '@@MODEL_STATS_TRAIN@@'
MMAP_THRESHOLD = 65536


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------
def resolve_config_path(path: str) -> str:
    """Turn ``scope::rel/path.py`` (e.g. ``mmdet::faster_rcnn/x.py``) into the installed file.

    ``Config.fromfile`` does not accept ``mmdet::`` paths (only ``_base_`` does), but users copy
    them from configs, so the command line accepts them too.
    """
    if '::' not in path:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Config file not found: {path!r}')
        return path
    scope, rel = path.split('::', 1)
    spec = importlib.util.find_spec(scope)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f'{path!r}: package {scope!r} is not installed')
    resolved = osp.join(osp.dirname(spec.origin), '.mim', 'configs', rel)
    if not osp.isfile(resolved):
        raise FileNotFoundError(f'{path!r}: no file {resolved!r} in the installed {scope} configs')
    return resolved


def disable_pretrained(node: Any) -> int:
    """Set every ``init_cfg`` and ``pretrained`` key in a config tree to None (in place).

    Returns how many keys were changed. Only existing keys are touched: not every module accepts
    ``init_cfg``.
    """
    changed = 0
    if isinstance(node, dict):
        for key in list(node.keys()):
            if key in ('init_cfg', 'pretrained') and node[key] is not None:
                node[key] = None
                changed += 1
            else:
                changed += disable_pretrained(node[key])
    elif isinstance(node, (list, tuple)):
        for item in node:
            changed += disable_pretrained(item)
    return changed


def load_config(path: str, cfg_options: Optional[dict] = None):
    """Load a config (path or ``scope::path``) with pretrained weights disabled."""
    from mmengine.config import Config
    cfg = Config.fromfile(resolve_config_path(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'{path!r} has no `model` field: model_stats needs a model config')
    disable_pretrained(cfg.model)
    return cfg


def build_model(cfg, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` in the config's default scope, SyncBN turned into BN, on ``device``."""
    import cbnet  # noqa: F401  (registers the CB modules even if the config does not import it)
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(copy.deepcopy(cfg.model))
    model = revert_sync_batchnorm(model)
    return model.to(device)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def is_detector(model: nn.Module) -> bool:
    from mmdet.models.detectors import BaseDetector
    return isinstance(model, BaseDetector)


def _num_classes(model: nn.Module) -> int:
    for module in model.modules():
        num = getattr(module, 'num_classes', None)
        if isinstance(num, int) and num > 1:
            return num
    return 2


def make_batch(model: nn.Module, shape: Tuple[int, int], batch_size: int, training: bool,
               num_boxes: int = 5) -> dict:
    """Random images (uint8, like a loaded image) and boxes, run through the model's preprocessor."""
    h, w = shape
    if not is_detector(model):
        device = next(model.parameters()).device
        return dict(inputs=torch.randn(batch_size, 3, h, w, device=device))
    from mmdet.testing import demo_mm_inputs
    roi_head = getattr(model, 'roi_head', None)
    with_semantic = bool(getattr(roi_head, 'with_semantic', False))
    packed = demo_mm_inputs(
        batch_size=batch_size,
        image_shapes=(3, h, w),
        num_items=[num_boxes] * batch_size,
        num_classes=_num_classes(model),
        with_mask=bool(model.with_mask),
        with_semantic=with_semantic,
        sem_seg_output_strides=8)
    return model.data_preprocessor(packed, training=training)


def flatten_tensors(obj: Any) -> Tuple[torch.Tensor, ...]:
    """All tensors in nested outputs (tuples, dicts, dataclass-like feature containers)."""
    if isinstance(obj, torch.Tensor):
        return (obj, )
    if isinstance(obj, dict):
        obj = list(obj.values())
    elif hasattr(obj, 'branches') and not isinstance(obj, nn.Module):  # MultiBranchFeatures
        obj = list(obj.branches)
    elif not isinstance(obj, (list, tuple)) and hasattr(obj, '__dict__'):
        obj = list(vars(obj).values())
    if isinstance(obj, (list, tuple)):
        out: Tuple[torch.Tensor, ...] = ()
        for item in obj:
            out += flatten_tensors(item)
        return out
    return ()


class TensorForward(nn.Module):
    """The eval-mode tensor forward of a model as ``forward(inputs) -> tuple of tensors``.

    Detectors run ``_forward(inputs, data_samples)`` (mmdet's get_flops does the same); other
    models (bare backbones) run ``forward(inputs)``. Used for FLOP tracing.
    """

    def __init__(self, model: nn.Module, data_samples: Optional[list] = None) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if is_detector(self.model):
            return flatten_tensors(self.model._forward(inputs, self.data_samples))
        return flatten_tensors(self.model(inputs))


# ----------------------------------------------------------------------------------------------
# Params and FLOPs
# ----------------------------------------------------------------------------------------------
def _branch_containers(backbone: nn.Module) -> Dict[str, nn.Module]:
    """Children of a composite backbone that hold one module per branch.

    cbnet's ``CBNet`` keeps its branches in ``branches`` (a ModuleList of K); anything else in the
    backbone (the composite connections) counts as the composition.
    """
    num = getattr(backbone, 'num_backbones', None)
    if not isinstance(num, int):
        return {}
    return {
        name: child
        for name, child in backbone.named_children()
        if 'branch' in name and isinstance(child, nn.ModuleList) and len(child) == num
    }


def _split(totals: Callable[[str], int], model: nn.Module, prefix: str) -> Dict[str, Any]:
    """Total, per top-level module and per backbone branch / composition, for one statistic."""
    pre = prefix + '.' if prefix else ''
    out: Dict[str, Any] = {'total': totals(prefix)}
    out['modules'] = {name: totals(pre + name) for name, _ in model.named_children()}
    backbone = getattr(model, 'backbone', None) if is_detector(model) else model
    if backbone is None:
        return out
    bb_name = pre + 'backbone' if is_detector(model) else prefix
    bb_pre = bb_name + '.' if bb_name else ''
    bb_total = totals(bb_name)
    containers = _branch_containers(backbone)
    num = getattr(backbone, 'num_backbones', 1) if containers else 1
    branches = [0] * num
    for cname, container in containers.items():
        for k in range(len(container)):
            branches[k] += totals(f'{bb_pre}{cname}.{k}')
    if not containers:
        branches = [bb_total]
    out['backbone'] = bb_total
    out['branches'] = branches
    out['composition'] = bb_total - sum(branches)
    return out


def count_params(model: nn.Module) -> Dict[str, Any]:
    from mmengine.analysis import parameter_count
    counts = parameter_count(model)
    stats = _split(lambda name: int(counts.get(name, 0)), model, '')
    stats['trainable'] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return stats


def count_flops_module(module: nn.Module, inputs: torch.Tensor) -> int:
    """Total FLOPs of ``module(inputs)`` in the module's current (train or eval) mode."""
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad():
        analyzer = FlopAnalyzer(TensorForward(module), (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        return int(analyzer.total())


def count_flops(model: nn.Module, batch: dict) -> Dict[str, Any]:
    """FLOPs of the eval-mode tensor forward on ``batch`` (batch size 1)."""
    from mmengine.analysis import FlopAnalyzer
    model.eval()
    wrapper = TensorForward(model, batch.get('data_samples'))
    with torch.no_grad():
        analyzer = FlopAnalyzer(wrapper, (batch['inputs'], ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        by_module = analyzer.by_module()
        stats = _split(lambda name: int(by_module.get(name, 0)), model, 'model')
        stats['total'] = int(analyzer.total())
        roi_head = getattr(model, 'roi_head', None)
        if isinstance(roi_head, nn.Module):  # e.g. to tell box heads from mask heads
            stats['roi_head'] = {name: int(by_module.get(f'model.roi_head.{name}', 0))
                                 for name, _ in roi_head.named_children()}
        stats['uncounted_ops'] = dict(sorted(analyzer.unsupported_ops().items()))
    return stats


# ----------------------------------------------------------------------------------------------
# Timing and memory
# ----------------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


TIMERS = {'wall': time.perf_counter, 'cpu': time.process_time}


def median_time(fn: Callable[[], Any], warmup: int, repeat: int, device: str,
                progress: Optional[Callable[[str], None]] = None, what: str = '',
                timer: str = 'wall') -> Dict[str, Any]:
    """Median (and min, all) time of ``fn`` over ``repeat`` runs after ``warmup`` runs.

    ``timer='cpu'`` counts this process' CPU time instead of wall time: on a CPU machine shared
    with other jobs (use one thread, ``--threads 1``) it measures the model's work, not the load.
    """
    clock = TIMERS[timer]
    for i in range(warmup):
        if progress:
            progress(f'{what} warm-up {i + 1}/{warmup}')
        fn()
    times = []
    for i in range(repeat):
        if progress:
            progress(f'{what} {i + 1}/{repeat}')
        _sync(device)
        start = clock()
        fn()
        _sync(device)
        times.append(clock() - start)
    return dict(median_s=statistics.median(times), min_s=min(times), times_s=times, timer=timer)


def measure_latency(model: nn.Module, batch: dict, device: str, warmup: int, repeat: int,
                    progress: Optional[Callable[[str], None]] = None,
                    timer: str = 'wall') -> Dict[str, Any]:
    model.eval()

    def run() -> None:
        with torch.no_grad():
            if is_detector(model):
                model(batch['inputs'], batch['data_samples'], mode='predict')
            else:
                model(batch['inputs'])

    return median_time(run, warmup, repeat, device, progress, 'latency', timer)


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _hwm_bytes() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('VmHWM not found in /proc/self/status')


def _reset_cpu_peak() -> int:
    """Free what can be freed, reset the peak RSS to the current RSS and return it."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM (Linux >= 4.0)
    return _rss_bytes()


def train_step_fn(model: nn.Module, batch: dict) -> Callable[[], float]:
    """One training step: forward with losses, backward, SGD step; returns the loss."""
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


def measure_train_step_inprocess(cfg, shape: Tuple[int, int], device: str, batch_size: int,
                                 warmup: int, repeat: int,
                                 progress: Optional[Callable[[str], None]] = None,
                                 timer: str = 'wall') -> Dict[str, Any]:
    """Time and peak memory of a training step in THIS process (call it in a fresh one)."""
    model = build_model(cfg, device)
    model.train()
    batch = make_batch(model, shape, batch_size, training=True)
    step = train_step_fn(model, batch)
    for i in range(max(warmup, 1)):  # the first step allocates lazily-built state
        if progress:
            progress(f'train warm-up {i + 1}/{max(warmup, 1)}')
        step()
    out: Dict[str, Any] = dict(batch_size=batch_size)
    clock = TIMERS[timer]
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start = clock()
        loss = step()
        torch.cuda.synchronize()
        first_time = clock() - start
        peak = torch.cuda.max_memory_allocated()
        out.update(peak_mem_bytes=peak, peak_mem_increase_bytes=peak - before,
                   mem_method='torch.cuda.max_memory_allocated')
    else:
        before = _reset_cpu_peak()
        start = clock()
        loss = step()
        first_time = clock() - start
        out.update(peak_mem_increase_bytes=_hwm_bytes() - before, rss_before_bytes=before,
                   peak_rss_bytes=_hwm_bytes(),
                   mem_method='VmHWM - RSS before the step (fresh process, '
                   f'MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD})')
    out['loss'] = loss
    # The measured step is timed too; ``repeat - 1`` more steps join it for the median.
    timing = median_time(step, 0, max(repeat - 1, 0), device, progress, 'train step', timer) \
        if repeat > 1 else dict(timer=timer, times_s=[])
    times = [first_time] + timing['times_s']
    out.update(timing, times_s=times, median_s=statistics.median(times), min_s=min(times))
    return out


def measure_train_step(config: str, shape: Tuple[int, int], device: str, batch_size: int,
                       warmup: int, repeat: int, cfg_options: Optional[List[str]] = None,
                       verbose: bool = True, timer: str = 'wall',
                       threads: Optional[int] = None) -> Dict[str, Any]:
    """Run :func:`measure_train_step_inprocess` in a fresh subprocess and return its result."""
    cmd = [sys.executable, osp.abspath(__file__), config, '--train-worker', '--device', device,
           '--shape', str(shape[0]), str(shape[1]), '--train-batch-size', str(batch_size),
           '--warmup', str(warmup), '--repeat', str(repeat), '--timer', timer]
    if threads:
        cmd += ['--threads', str(threads)]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                          stderr=None if verbose else subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(WORKER_MARKER):
            return json.loads(line[len(WORKER_MARKER):])
    raise RuntimeError(f'training-step worker for {config!r} failed (exit {proc.returncode})'
                       + (f':\n{proc.stderr[-3000:]}' if proc.stderr else ''))


# ----------------------------------------------------------------------------------------------
# Whole report
# ----------------------------------------------------------------------------------------------
def environment() -> Dict[str, Any]:
    """Machine and library versions, recorded beside every measurement."""
    import mmcv
    import mmdet
    import mmengine
    env: Dict[str, Any] = dict(
        python=platform.python_version(), torch=torch.__version__, mmcv=mmcv.__version__,
        mmengine=mmengine.__version__, mmdet=mmdet.__version__, machine=platform.machine(),
        cpu=_cpu_name(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads())
    try:
        import mmpretrain
        env['mmpretrain'] = mmpretrain.__version__
    except ImportError:
        pass
    try:  # which code was measured (a dirty tree means uncommitted changes were measured too)
        env['git'] = subprocess.run(
            ['git', 'describe', '--always', '--dirty'], capture_output=True, text=True, timeout=10,
            cwd=osp.dirname(osp.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env['git'] = None
    if torch.cuda.is_available():
        env['cuda'] = torch.version.cuda
        env['gpu'] = torch.cuda.get_device_name()
    return env


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _options_list(cfg_options: Optional[dict]) -> List[str]:
    return [f'{k}={json.dumps(v) if not isinstance(v, str) else v}'
            for k, v in (cfg_options or {}).items()]


def collect_stats(config: str, shape: Tuple[int, int] = (800, 1333), device: str = 'cpu',
                  flops: bool = True, latency: bool = True, train: bool = False,
                  warmup: int = 2, repeat: int = 10, train_batch_size: int = 2,
                  cfg_options: Optional[dict] = None,
                  progress: Optional[Callable[[str], None]] = None,
                  timer: str = 'wall', threads: Optional[int] = None) -> Dict[str, Any]:
    """All statistics of one config (see the module docstring for the methods)."""
    def say(msg: str) -> None:
        if progress:
            progress(msg)

    say('building')
    cfg = load_config(config, cfg_options)
    model = build_model(cfg, device)
    row: Dict[str, Any] = dict(config=config, model_type=type(model).__name__,
                               shape=list(shape), device=device)
    backbone = model.backbone if is_detector(model) else model
    row['backbone_type'] = type(backbone).__name__
    row['num_backbones'] = int(getattr(backbone, 'num_backbones', 1))
    row['params'] = count_params(model)
    batch = make_batch(model, shape, 1, training=False)
    row['input_shape'] = list(batch['inputs'].shape[-2:])  # after padding
    if flops:
        say('counting FLOPs')
        row['flops'] = count_flops(model, batch)
    if latency:
        row['latency'] = measure_latency(model, batch, device, warmup, repeat, say, timer)
    del model, batch
    gc.collect()
    if train:
        say('training step (subprocess)')
        row['train'] = measure_train_step(config, shape, device, train_batch_size, warmup,
                                          repeat, _options_list(cfg_options), timer=timer,
                                          threads=threads)
    return row


def _g(x: Optional[float], scale: float, fmt: str) -> str:
    return '-' if x is None else format(x / scale, fmt)


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A markdown table, one row per config."""
    header = ['config', 'K', 'params (M)', 'backbone (M)', 'GFLOPs', 'backbone GFLOPs',
              'latency (ms)', 'train step (s)', 'train peak mem (MiB)']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in rows:
        fl = r.get('flops', {})
        tr = r.get('train', {})
        lat = r.get('latency', {})
        mem = tr.get('peak_mem_bytes', tr.get('peak_mem_increase_bytes'))
        cells = [osp.basename(r['config']), str(r.get('num_backbones', 1)),
                 _g(r['params']['total'], 1e6, '.2f'), _g(r['params'].get('backbone'), 1e6, '.2f'),
                 _g(fl.get('total'), 1e9, '.1f'), _g(fl.get('backbone'), 1e9, '.1f'),
                 _g(lat.get('median_s'), 1e-3, '.0f'), _g(tr.get('median_s'), 1, '.2f'),
                 _g(mem, 2**20, '.0f')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def uncounted_note(rows: Sequence[Dict[str, Any]]) -> str:
    ops = sorted({op for r in rows for op in r.get('flops', {}).get('uncounted_ops', {})})
    if not ops:
        return ''
    return ('FLOPs: 1 multiply-add = 1 FLOP (mmengine FlopAnalyzer, eval-mode tensor forward). '
            'Not counted (no rule in the counter): ' + ', '.join(ops))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Params, FLOPs, latency and training-step cost of detector configs.')
    parser.add_argument('configs', nargs='+', help='config files, or scope::path (mmdet::...)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input image height and width (default 800 1333)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--train', action='store_true',
                        help='also time one training step and measure its peak memory')
    parser.add_argument('--train-batch-size', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first')
    parser.add_argument('--repeat', type=int, default=10, help='timed runs (median reported)')
    parser.add_argument('--timer', choices=list(TIMERS), default='wall',
                        help='wall clock (default) or this process\' CPU time (for shared CPU '
                        'machines, with --threads 1)')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    parser.add_argument('--no-latency', action='store_true', help='skip the latency measurement')
    parser.add_argument('--out', help='write the statistics as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.with_cp=True')
    parser.add_argument('--train-worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda given but CUDA is not available; use --device cpu')
    return args


def _progress_printer(index: int, total: int, config: str) -> Callable[[str], None]:
    def show(msg: str) -> None:
        print(f'[{index}/{total}] {osp.basename(config)}: {msg}', file=sys.stderr, flush=True)
    return show


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    args = parse_args(argv)
    shape = (args.shape[0], args.shape[1])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_worker:
        cfg = load_config(args.configs[0], args.cfg_options)
        result = measure_train_step_inprocess(
            cfg, shape, args.device, args.train_batch_size, args.warmup, args.repeat,
            _progress_printer(1, 1, args.configs[0]), args.timer)
        print(WORKER_MARKER + json.dumps(result), flush=True)
        return [result]
    rows = []
    for i, config in enumerate(args.configs, 1):
        rows.append(collect_stats(
            config, shape, args.device, flops=not args.no_flops, latency=not args.no_latency,
            train=args.train, warmup=args.warmup, repeat=args.repeat,
            train_batch_size=args.train_batch_size, cfg_options=args.cfg_options,
            progress=_progress_printer(i, len(args.configs), config), timer=args.timer,
            threads=args.threads))
    print(format_table(rows))
    note = uncounted_note(rows)
    if note:
        print('\n' + note)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(environment=environment(), flops_convention='1 multiply-add = 1 FLOP',
                           results=rows), f, indent=2)
        print(f'wrote {args.out}', file=sys.stderr)
    return rows


if __name__ == '__main__':
    main()
