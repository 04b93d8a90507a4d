# Copyright (c) OpenMMLab. All rights reserved. Adapted for cbnet: imports cbnet (registers the CB models and
# makes full checkpoints loadable on torch >= 2.6), runs distributed on CPU-only machines with gloo, and
# `--tta` uses the config's `tta_model`/`tta_pipeline` (cbnet's mask-capable TTA model where configs name it).
"""Test (and evaluate) a detector (mmdet 3.3's tools/test.py, same arguments)."""
import argparse
import os
import warnings
from copy import deepcopy

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine import ConfigDict
from mmengine.config import DictAction

import cbnet  # noqa: F401  (registers cbnet modules; allowlists mmengine checkpoint globals)
# reliability (cbnet/engine): checkpoint checks (official CBNetV2 keys, no backbone weights), registry hints
from cbnet.engine.tools_support import add_tool_arguments, configure_cpu_threads, load_config, tool_runner


# TODO: support fuse_conv_bn and format_only
def parse_args():
    parser = argparse.ArgumentParser(description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation with the config\'s `tta_model` and '
        '`tta_pipeline` (flip TTA if the config has none); DetTTAModel is '
        'replaced by DetTTAModelWithMasks, which gives the same boxes and also merges masks')
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

    # Reduce the number of repeated compilations and improve
    # testing speed.
    setup_cache_size_limit_of_dynamo()

    # load config; work_dir priority: CLI > segment in file > filename
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.work_dir)

    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:

        if 'tta_model' not in cfg:
            warnings.warn('Cannot find ``tta_model`` in config, '
                          'we will set it as default.')
            cfg.tta_model = dict(
                type='DetTTAModelWithMasks', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        elif cfg.tta_model.get('type') in ('DetTTAModel', 'mmdet.DetTTAModel'):
            # mmdet's DetTTAModel refuses masks; cbnet's subclass merges boxes identically and also masks
            cfg.tta_model.type = 'DetTTAModelWithMasks'
        if 'tta_pipeline' not in cfg:
            warnings.warn('Cannot find ``tta_pipeline`` in config, '
                          'we will set it as default.')
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [dict(type='RandomFlip', prob=1.),
                     dict(type='RandomFlip', prob=0.)],
                    [
                        dict(
                            type='PackDetInputs',
                            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                       'flip_direction'))
                    ],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    # no GPU but a launcher: gloo process group; cbnet's reliability hooks (CheckpointCompatibilityHook);
    # configuration errors before the Runner's config dump; cbnet's own errors as one message (--debug: traceback)
    with tool_runner(cfg, args.debug, training=False) as runner:
        # add `DumpResults` dummy metric
        if args.out is not None:
            assert args.out.endswith(('.pkl', '.pickle')), \
                'The dump file must be a pkl file.'
            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))

        # start testing
        runner.test()


if __name__ == '__main__':
    main()
