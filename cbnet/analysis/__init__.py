"""Cost of a (composite-backbone) detector: parameters, FLOPs, latency, training-step time and peak memory.

The library behind ``tools/analysis_tools/model_stats.py``, ``battle.py`` and ``benchmarks/``. Every model is
built from its config with random weights (no checkpoint) and measured on generated inputs of its task; every
statistic is split the same way (per top-level module, per head part, per backbone branch and composition).

    from cbnet.analysis import collect_stats
    row = collect_stats('configs/cbnet/dual_r50_faster_rcnn.py', shape=(800, 1333), train=True)

Methods: :mod:`~cbnet.analysis.flops` (what FLOPs count), :mod:`~cbnet.analysis.deformable` (deformable
attention), :mod:`~cbnet.analysis.timing`, :mod:`~cbnet.analysis.memory`, :mod:`~cbnet.analysis.train_step`,
:mod:`~cbnet.analysis.compare` (side-by-side ratios), :mod:`~cbnet.analysis.metrics` (COCO mAPs of past runs).
"""
from .breakdown import branch_containers, split_by_module
from .compare import compare_train_steps, composite_variants, supports_option
from .deformable import DeformableAttentionCounter
from .environment import environment, markdown_header, run_record, start_run, versions_line, write_results
from .flops import EXTRA_OP_HANDLES, FLOP_CONVENTION, count_flops, count_flops_module, trace_flops
from .inputs import TensorForward, flatten_tensors, ground_truth_kind, make_batch, num_classes
from .memory import GIB, peak_rss_bytes, peak_since_reset, reset_cpu_peak, reset_peak
from .models import ConfigLike, backbone_of, build_model, config_label, is_detector, load_config, num_backbones
from .params import count_params
from .report import collect_stats, format_table, progress_printer, uncounted_note
from .timing import TIMERS, alternating_times, default_timer, measure_latency, median_time, predict_fn, sync, time_once
from .train_step import measure_train_step, measure_train_step_inprocess, train_step_fn

__all__ = [
    'collect_stats', 'format_table', 'uncounted_note', 'progress_printer', 'load_config', 'build_model', 'config_label',
    'is_detector', 'backbone_of', 'num_backbones', 'ConfigLike', 'make_batch', 'num_classes', 'ground_truth_kind',
    'flatten_tensors', 'TensorForward', 'count_params', 'count_flops', 'count_flops_module', 'trace_flops',
    'FLOP_CONVENTION', 'EXTRA_OP_HANDLES', 'DeformableAttentionCounter', 'split_by_module', 'branch_containers',
    'TIMERS', 'sync', 'default_timer', 'time_once', 'median_time', 'measure_latency', 'alternating_times', 'predict_fn',
    'reset_peak', 'peak_since_reset', 'reset_cpu_peak', 'peak_rss_bytes', 'GIB', 'train_step_fn', 'measure_train_step',
    'measure_train_step_inprocess', 'environment', 'versions_line', 'write_results', 'start_run', 'run_record',
    'markdown_header', 'composite_variants', 'compare_train_steps', 'supports_option'
]
