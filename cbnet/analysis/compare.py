"""Side-by-side training-step cost of a plain detector and its composite variants (the ratios that matter).

Ratios are measured, not assumed: every variant runs in its own fresh subprocess (memory), the variants
alternate within each round (so that load from other jobs hits all of them alike), and the minimum time over
all rounds is kept (the least disturbed run). On CPU, use ``timer='cpu'`` and one thread.
"""
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from mmengine.config import Config

from .models import ConfigLike, load_config
from .train_step import measure_train_step

BRANCH_BATCHING = 'branch_batching'


def supports_option(cfg: Config, option: str) -> bool:
    """Whether the detector class of ``cfg.model`` takes the CB kind option ``option`` (e.g. branch_batching)."""
    from mmdet.registry import MODELS

    cls = MODELS.get(cfg.model.type)
    return cls is not None and option in getattr(cls, 'kind_options', ())


def composite_variants(config: ConfigLike,
                       num_backbones: int = 2,
                       cfg_options: Optional[dict] = None,
                       branch_batchings: Sequence[str] = ('sequential', 'stacked')) -> Dict[str, Config]:
    """``{'single': cfg, 'Dual': cb_cfg}`` (``'Triple'``, ``'K=4'``, ...) built with :func:`cbnet.cbnetify` from one
    plain recipe, so that the pair differs in the backbone only. A CB detector that takes ``branch_batching``
    (the DETR kind) gets one variant per value: ``'Dual sequential'``, ``'Dual stacked'``."""
    from ..cbnetify import cbnetify
    single = load_config(config, cfg_options)
    name = {2: 'Dual', 3: 'Triple'}.get(num_backbones, f'K={num_backbones}')
    cb = cbnetify(single, num_backbones=num_backbones)
    variants = {'single': single}
    if not supports_option(cb, BRANCH_BATCHING):
        variants[name] = cb
        return variants
    for batching in branch_batchings:
        variant = load_config(cb)
        variant.model[BRANCH_BATCHING] = batching
        variants[f'{name} {batching}'] = variant
    return variants


def compare_train_steps(variants: Dict[str, ConfigLike],
                        shape: Tuple[int, int],
                        device: str,
                        batch_size: int,
                        rounds: int = 3,
                        warmup: int = 1,
                        repeat: int = 2,
                        timer: str = 'wall',
                        threads: Optional[int] = None,
                        baseline: Optional[str] = None,
                        log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Train-step time and peak memory of every variant, and their ratios to ``baseline`` (the first variant).

    Returns ``variants`` (per name: ``time_s`` = min over all runs, ``times_s``, ``peak_mem_increase_bytes`` = min
    over rounds, ``mem_s``, ``loss``, ``input_shape``, ``mem_method``), ``ratios`` (per name: ``time``, ``memory``)
    and ``baseline``.
    """
    baseline = baseline or next(iter(variants))
    runs: Dict[str, list] = {name: [] for name in variants}
    for r in range(rounds):
        for name, cfg in variants.items():
            result = measure_train_step(
                cfg, shape, device, batch_size, warmup, repeat, verbose=False, timer=timer, threads=threads)
            runs[name].append(result)
            if log:
                log(f'round {r + 1}/{rounds} {name}: {min(result["times_s"]):.3f} s, '
                    f'{result["peak_mem_increase_bytes"] / 2**20:.0f} MiB')
    out: Dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = dict(
            time_s=min(t for res in results for t in res['times_s']),
            times_s=[t for res in results for t in res['times_s']],
            peak_mem_increase_bytes=min(res['peak_mem_increase_bytes'] for res in results),
            peak_mem_increase_bytes_all=[res['peak_mem_increase_bytes'] for res in results],
            loss=results[0]['loss'],
            input_shape=results[0]['input_shape'],
            mem_method=results[0]['mem_method'],
            timer=results[0]['timer'])
    base = out[baseline]
    ratios = {
        name:
        dict(time=v['time_s'] / base['time_s'], memory=v['peak_mem_increase_bytes'] / base['peak_mem_increase_bytes'])
        for name, v in out.items()
    }
    return dict(
        variants=out,
        ratios=ratios,
        baseline=baseline,
        rounds=rounds,
        warmup=warmup,
        repeat=repeat,
        batch_size=batch_size,
        shape=list(shape),
        device=device)
