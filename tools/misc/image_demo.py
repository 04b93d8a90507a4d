"""Detect objects in images with a (CB) detector: mmdet's ``DetInferencer`` from the command line.

    python tools/misc/image_demo.py IMAGES CONFIG --weights CKPT [--out-dir outputs] [--pred-score-thr 0.3]

IMAGES is an image file, a folder of images or a URL. CONFIG is a config file or a config an installed package
ships (``cbnet::cbnet/dual_swin_l_htc.py``, ``mmdet::faster_rcnn/...``). Writes the drawn predictions to
``OUT_DIR/vis/`` and, unless ``--no-save-pred``, the boxes/labels/scores (masks as COCO RLE) to
``OUT_DIR/preds/<image>.json``. The class names and palette come from the checkpoint's ``dataset_meta``.
"""
import argparse

import torch
from mmdet.apis import DetInferencer

import cbnet  # noqa: F401  (registers the CB models; full mmengine checkpoints load with weights_only=True)
from cbnet.utils.configs import resolve_config_path
from cbnet.utils.threads import add_threads_argument, configure_cpu_threads


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', help='an image file, a folder of images, or a URL')
    parser.add_argument('model', help='config file or package config name (cbnet::..., mmdet::...)')
    parser.add_argument('--weights', help='checkpoint; without it the model keeps its random initialisation')
    parser.add_argument('--out-dir', default='outputs', help='where vis/ and preds/ are written')
    parser.add_argument('--device', default='cuda:0' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--pred-score-thr', type=float, default=0.3, help='draw predictions above this score')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--show', action='store_true', help='show each image in a window')
    parser.add_argument('--no-save-vis', action='store_true', help='do not write the drawn images')
    parser.add_argument('--no-save-pred', action='store_true', help='do not write the prediction json files')
    parser.add_argument('--print-result', action='store_true', help='print the predictions')
    parser.add_argument(
        '--palette',
        default='none',
        choices=['coco', 'voc', 'citys', 'random', 'none'],
        help="colours; 'none' takes the config's (dataset metainfo) or the checkpoint's")
    add_threads_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    configure_cpu_threads(args.threads, args.device)
    inferencer = DetInferencer(
        model=resolve_config_path(args.model),
        weights=args.weights,
        device=args.device,
        palette=args.palette,
        show_progress=False)
    result = inferencer(
        args.inputs,
        batch_size=args.batch_size,
        out_dir=args.out_dir,
        show=args.show,
        pred_score_thr=args.pred_score_thr,
        no_save_vis=args.no_save_vis,
        no_save_pred=args.no_save_pred,
        print_result=args.print_result)
    if args.out_dir and not (args.no_save_vis and args.no_save_pred):
        print(f'results written to {args.out_dir}/ (vis/: drawn images, preds/: json)')
    return result


if __name__ == '__main__':
    main()
