"""Short training runs on the toy shapes dataset, measured: val COCO bbox mAPs and the cost of every iteration.

Why: whether a training option changes accuracy or step cost, or whether fine-tuning keeps an expanded
checkpoint's accuracy, takes real training runs (one step on generated inputs says nothing about accuracy),
and the toy configs (``configs/_toy_``, ``make demo``) train in minutes on one CPU thread. Used by
``benchmarks/assist_proposals.py`` and ``benchmarks/expansion_finetune.py``.

    from cbnet.analysis.toy_training import ensure_toy_data, evaluate_toy, train_toy
    root = ensure_toy_data('work_dirs/toy_coco')
    run = train_toy('configs/cbnet/dual_r18_faster_rcnn_toy.py', 'work_dirs/run', root, seed=0)
    run['metrics']['bbox_mAP'], run['timing']['wall']['median_s'], run['checkpoint']

Timing: a hook takes the wall clock and this process' CPU time around every training step (forward, losses,
backward, optimizer step; data loading, logging and checkpoints excluded). The data loader's worker is
another process, so the CPU time counts the model's work only; run torch on one thread
(``torch.set_num_threads(1)``) for CPU time to measure work rather than threading.
"""
import contextlib
import itertools
import os
import os.path as osp
import statistics
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence

from mmengine.config import Config
from mmengine.hooks import Hook

from ..testing.toy_coco import make_toy_coco

#: the environment variable the toy configs read their dataset root from (configs/_toy_/toy_coco_detection.py)
DATA_ROOT_ENV = 'CBNET_TOY_DATA_ROOT'
#: the toy schedule's warm-up length and LR step (configs/_toy_/toy_schedule.py)
TOY_WARMUP_ITERS = 50
TOY_STEP_AT = 0.8
_RUN_IDS = itertools.count()


def ensure_toy_data(root: str) -> str:
    """Write the toy COCO dataset (the demo's: 240 train / 40 val images, seed 0) to ``root`` unless it is
    there; returns the root with a trailing '/' (as the toy configs expect it)."""
    if not osp.isfile(osp.join(root, 'annotations', 'instances_val.json')):
        make_toy_coco(root)
    return root.rstrip('/') + '/'


@contextlib.contextmanager
def _data_root(root: str) -> Iterator[None]:
    old = os.environ.get(DATA_ROOT_ENV)
    os.environ[DATA_ROOT_ENV] = root.rstrip('/') + '/'
    try:
        yield
    finally:
        if old is None:
            del os.environ[DATA_ROOT_ENV]
        else:
            os.environ[DATA_ROOT_ENV] = old


def toy_schedule(max_iters: int, warmup_iters: int = TOY_WARMUP_ITERS, step_at: float = TOY_STEP_AT) -> List[dict]:
    """The toy schedule's shape for any length: linear warm-up from 0.01x over ``warmup_iters``, x0.1 at
    ``step_at`` of the run (the config's own list has its milestone fixed at 80% of 300 iterations)."""
    return [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
        dict(
            type='MultiStepLR',
            by_epoch=False,
            begin=0,
            end=max_iters,
            milestones=[int(max_iters * step_at)],
            gamma=0.1)
    ]


def load_toy_config(config: str,
                    data_root: str,
                    work_dir: str,
                    cfg_options: Optional[dict] = None,
                    log_level: str = 'WARNING') -> Config:
    """``config`` reading its data from ``data_root``, writing to ``work_dir``, under a name of its own (mmengine
    keys its message hub, logger and visualizer by the experiment name: runs in one process must differ)."""
    with _data_root(data_root):
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.log_level = log_level
    cfg.experiment_name = f'{osp.basename(osp.normpath(work_dir))}_{os.getpid()}_{next(_RUN_IDS)}'
    return cfg


class IterationTimer(Hook):
    """Wall clock and process CPU time of every training step.

    Highest priority: in ``before_train_iter`` it starts before the other hooks, in ``after_train_iter`` it
    stops before them (logging, LR schedule, checkpoints), so what it times is the step itself.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.wall: List[float] = []
        self.cpu: List[float] = []
        self._start = (0.0, 0.0)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])


def summarize_times(times: Sequence[float], skip: int) -> Dict[str, Any]:
    """Median, minimum and mean of ``times`` after the first ``skip`` (warm-up: allocator, lazily built state)."""
    kept = list(times[skip:]) or list(times)
    return dict(median_s=statistics.median(kept), min_s=min(kept), mean_s=statistics.fmean(kept), iterations=len(kept))


def _logged_history(runner, key: str) -> List[float]:
    """Every value mmengine logged under ``key`` (e.g. ``train/time``: its IterTimerHook's seconds per iteration,
    data loading and hooks included)."""
    if key not in runner.message_hub.log_scalars:
        return []
    return [float(v) for v in runner.message_hub.get_scalar(key).data[0]]


def _bbox_metrics(metrics: Dict[str, Any], prefix: str = '') -> Dict[str, float]:
    """``{'bbox_mAP': ..., 'bbox_mAP_50': ...}`` from mmdet's ``coco/bbox_*`` keys."""
    head = f'{prefix}coco/'
    return {k[len(head):]: float(v) for k, v in metrics.items() if k.startswith(head + 'bbox_')}


def train_toy(config: str,
              work_dir: str,
              data_root: str,
              seed: int = 0,
              max_iters: Optional[int] = None,
              lr: Optional[float] = None,
              warmup_iters: Optional[int] = None,
              load_from: Optional[str] = None,
              cfg_options: Optional[dict] = None,
              skip: int = 20,
              log_level: str = 'WARNING') -> Dict[str, Any]:
    """Train a toy ``config`` with mmengine's Runner (as ``tools/train.py``), validate at the end, and time it.

    Args:
        config: a toy config (its data root is read from ``$CBNET_TOY_DATA_ROOT``, set here to ``data_root``).
        seed: ``randomness=dict(seed=seed, deterministic=True)``.
        max_iters / warmup_iters: when either is given, the schedule becomes :func:`toy_schedule` of that
            length (warm-up default 50); otherwise the config's own.
        lr: the optimizer's base learning rate (default: the config's).
        load_from: weights to start from (optimizer state and schedule start fresh, as ``load_from`` does).
        skip: iterations left out of the timing summaries (warm-up).

    Returns a JSON-ready dict: ``metrics`` (val ``bbox_mAP``, ``bbox_mAP_50``, ...), ``timing`` (``wall`` and
    ``cpu``: :func:`summarize_times` of the training steps; ``logged``: of mmengine's logged ``time``; the
    per-iteration lists), ``checkpoint`` (the last one), and the settings used.
    """
    from mmengine.runner import Runner

    cfg = load_toy_config(config, data_root, work_dir, cfg_options, log_level)
    if max_iters is not None or warmup_iters is not None:
        max_iters = max_iters or cfg.train_cfg.max_iters
        cfg.param_scheduler = toy_schedule(max_iters, TOY_WARMUP_ITERS if warmup_iters is None else warmup_iters)
    max_iters = max_iters or cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    cfg.load_from = load_from
    cfg.resume = False
    cfg.randomness = dict(seed=seed, deterministic=True)

    runner = Runner.from_cfg(cfg)
    timer = IterationTimer()
    runner.register_hook(timer)
    wall, cpu = time.perf_counter(), time.process_time()
    runner.train()  # validates on the val split at the end (val_interval = max_iters)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    hub = runner.message_hub
    metrics = _bbox_metrics({k: hub.get_scalar(k).current() for k in hub.log_scalars}, prefix='val/')
    if 'bbox_mAP' not in metrics:
        raise RuntimeError(f'{config}: validation produced no COCO bbox metrics')
    logged = _logged_history(runner, 'train/time')
    result = dict(
        config=config,
        seed=seed,
        max_iters=max_iters,
        lr=cfg.optim_wrapper.optimizer.lr,
        param_scheduler=[dict(s) for s in cfg.param_scheduler],
        load_from=load_from,
        cfg_options=cfg_options or {},
        metrics=metrics,
        timing=dict(
            skip=skip,
            wall=summarize_times(timer.wall, skip),
            cpu=summarize_times(timer.cpu, skip),
            logged=summarize_times(logged, skip) if logged else None,
            run_wall_s=wall,
            run_cpu_s=cpu,
            wall_s=[round(t, 5) for t in timer.wall],
            cpu_s=[round(t, 5) for t in timer.cpu],
            logged_s=[round(t, 5) for t in logged]),
        checkpoint=osp.join(work_dir, f'iter_{max_iters}.pth'))
    del runner
    return result


def evaluate_toy(config: str,
                 checkpoint: str,
                 data_root: str,
                 work_dir: str,
                 detections: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 log_level: str = 'WARNING') -> Dict[str, float]:
    """Val bbox metrics of ``checkpoint`` in ``config``'s model (mmengine's ``Runner.val``, as ``tools/test.py``
    does with the val split). ``detections``: a path prefix; the COCO json of every detection is written to
    ``<detections>.bbox.json``, to compare two models' predictions box by box."""
    from mmengine.runner import Runner

    cfg = load_toy_config(config, data_root, work_dir, cfg_options, log_level)
    cfg.load_from = checkpoint
    cfg.resume = False
    if detections:
        cfg.val_evaluator.outfile_prefix = detections
    metrics = _bbox_metrics(Runner.from_cfg(cfg).val())
    if 'bbox_mAP' not in metrics:
        raise RuntimeError(f'{config} with {checkpoint}: validation produced no COCO bbox metrics')
    return metrics
