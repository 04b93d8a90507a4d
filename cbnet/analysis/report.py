"""All statistics of one config (params, FLOPs, latency, training step) and their table."""
import gc
import os.path as osp
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .flops import FLOP_CONVENTION, count_flops
from .inputs import make_batch
from .models import ConfigLike, backbone_of, build_model, config_label, load_config, num_backbones
from .params import count_params
from .timing import Progress, measure_latency
from .train_step import measure_train_step


def collect_stats(config: ConfigLike,
                  shape: Tuple[int, int] = (800, 1333),
                  device: str = 'cpu',
                  flops: bool = True,
                  latency: bool = True,
                  train: bool = False,
                  warmup: int = 2,
                  repeat: int = 10,
                  train_batch_size: int = 2,
                  cfg_options: Optional[dict] = None,
                  progress: Progress = None,
                  timer: str = 'wall',
                  threads: Optional[int] = None) -> Dict[str, Any]:
    """Params, FLOPs (batch 1, eval), latency (``predict``, batch 1) and optionally a training step (subprocess).

    ``config``: a path, ``scope::path`` or an in-memory Config; ``cfg_options``: overrides (dotted keys).
    """

    def say(msg: str) -> None:
        if progress:
            progress(msg)

    say('building')
    cfg = load_config(config, cfg_options)
    model = build_model(cfg, device)
    row: Dict[str, Any] = dict(
        config=config_label(config),
        model_type=type(model).__name__,
        shape=list(shape),
        device=device,
        backbone_type=type(backbone_of(model)).__name__,
        num_backbones=num_backbones(model),
        params=count_params(model))
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
        row['train'] = measure_train_step(
            cfg, shape, device, train_batch_size, warmup, repeat, timer=timer, threads=threads)
    return row


def _g(x: Optional[float], scale: float, fmt: str) -> str:
    return '-' if x is None else format(x / scale, fmt)


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A markdown table, one row per config.

    Training memory, two columns: ``train peak mem`` is the whole peak (CUDA: ``max_memory_allocated``, weights
    included; CPU: the peak resident set size of the measuring process during the step, which also holds the
    Python runtime and libraries); ``train step +mem`` is how much the step added over what was held before it
    (activations, gradients, temporaries).
    """
    header = [
        'config', 'K', 'params (M)', 'backbone (M)', 'GFLOPs', 'backbone GFLOPs', 'latency (ms)', 'train step (s)',
        'train peak mem (MiB)', 'train step +mem (MiB)'
    ]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in rows:
        fl, tr, lat = r.get('flops', {}), r.get('train', {}), r.get('latency', {})
        mem = tr.get('peak_mem_bytes', tr.get('peak_rss_bytes'))
        cells = [
            osp.basename(r['config']),
            str(r.get('num_backbones', 1)),
            _g(r['params']['total'], 1e6, '.2f'),
            _g(r['params'].get('backbone'), 1e6, '.2f'),
            _g(fl.get('total'), 1e9, '.1f'),
            _g(fl.get('backbone'), 1e9, '.1f'),
            _g(lat.get('median_s'), 1e-3, '.0f'),
            _g(tr.get('median_s'), 1, '.2f'),
            _g(mem, 2**20, '.0f'),
            _g(tr.get('peak_mem_increase_bytes'), 2**20, '.0f')
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def uncounted_note(rows: Sequence[Dict[str, Any]]) -> str:
    """What the FLOPs of ``rows`` do not count, and what was counted from the shapes instead."""
    ops = sorted({op for r in rows for op in r.get('flops', {}).get('uncounted_ops', {})})
    analytic = sorted({kind for r in rows for kind in r.get('flops', {}).get('analytic', {})})
    note = []
    if ops:
        note.append(f'FLOPs: {FLOP_CONVENTION} (mmengine FlopAnalyzer, eval-mode tensor forward). '
                    'Not counted (no rule in the counter): ' + ', '.join(ops) + '.')
    if analytic:
        note.append('Counted from the shapes (the tracer misses them): ' + ', '.join(analytic) +
                    ' (see cbnet.analysis.deformable).')
    return ' '.join(note)


def progress_printer(index: int, total: int, config: ConfigLike) -> Callable[[str], None]:
    """``[i/n] config: message`` lines on stderr."""
    name = osp.basename(config_label(config))

    def show(msg: str) -> None:
        print(f'[{index}/{total}] {name}: {msg}', file=sys.stderr, flush=True)

    return show
