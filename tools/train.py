# Copyright (c) OpenMMLab. All rights reserved. Adapted for cbnet: imports cbnet (registers the CB models and
# makes full checkpoints resumable on torch >= 2.6), runs distributed on CPU-only machines with gloo, and
# refuses --amp where there is no GPU with a clear message.
"""Train a detector (mmdet 3.3's tools/train.py, same arguments)."""
import argparse
import os

from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.config import DictAction

import cbnet  # noqa: F401  (registers cbnet modules; allowlists mmengine checkpoint globals)
# reliability (cbnet/engine): NaN/inf loss guard, checkpoint checks, atomic checkpoints, safe auto-resume
from cbnet.engine.tools_support import (add_tool_arguments, configure_cpu_threads, load_config, resolve_auto_resume,
                                        tool_runner)
from cbnet.utils import check_amp_supported


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', default=False, help='enable automatic-mixed-precision training (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_tool_arguments(parser)  # cbnet: --threads (CPU runs), --debug
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)

    return args


def main():
    args = parse_args()
    configure_cpu_threads(args.threads)  # CPU runs: free cores, OMP_NUM_THREADS or --threads
    if args.amp:
        check_amp_supported()

    # Reduce the number of repeated compilations and improve
    # training speed.
    setup_cache_size_limit_of_dynamo()

    # load config; work_dir priority: CLI > segment in file > filename
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.work_dir)

    # enable automatic-mixed-precision training
    if args.amp is True:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    # enable automatically scaling LR
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and \
                'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        resolve_auto_resume(cfg)  # the newest readable checkpoint (a truncated one is skipped)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    # no GPU but a launcher: gloo process group; cbnet's reliability hooks (NonFiniteLossHook,
    # CheckpointCompatibilityHook, AtomicCheckpointHook); configuration errors before the Runner's config dump;
    # cbnet's own errors as one message (--debug: the traceback)
    with tool_runner(cfg, args.debug, training=True) as runner:
        runner.train()


if __name__ == '__main__':
    main()
