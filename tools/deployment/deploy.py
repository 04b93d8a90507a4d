"""Export a (CB) detector to an inference backend with MMDeploy and check it against PyTorch.

    python tools/deployment/deploy.py configs/deploy/detection_onnxruntime_dynamic.py \
        configs/cbnet/dual_r50_faster_rcnn.py CHECKPOINT demo.jpg --work-dir work_dirs/deploy --device cpu

MMDeploy's ``tools/deploy.py`` arguments. Writes ``WORK_DIR/end2end.onnx`` (and the backend's files, e.g.
``end2end.engine`` for TensorRT), runs the backend model and PyTorch on ``--test-img`` (default IMG), prints
their agreement (detections, boxes, scores, labels, masks) and exits with status 1 when they disagree, saying
why: whether the exported logic run in PyTorch agrees with mmdet, and whether PyTorch disagrees with itself as
much when its input moves by float32 rounding (near-ties). ``WORK_DIR/parity.json`` keeps it all;
``WORK_DIR/deployed_model_cfg.py`` is the model config to run the backend model with in MMDeploy's tools.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import DictAction

if __package__ in (None, ''):  # run as a script from a checkout: import this checkout's cbnet
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from cbnet.deploy import ParityError, Tolerance, deploy, load_configs  # noqa: E402
from cbnet.deploy.support import NotDeployableError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a model to a backend with MMDeploy and compare it '
                                     'with PyTorch.')
    parser.add_argument('deploy_cfg', help='deploy config path (configs/deploy/...)')
    parser.add_argument('model_cfg', help='model config path (or mmdet::/cbnet:: name)')
    parser.add_argument('checkpoint', help='model checkpoint path')
    parser.add_argument('img', help='image used to convert the model')
    parser.add_argument('--test-img', nargs='+', help='images to compare the backend and PyTorch on (default: img)')
    parser.add_argument('--work-dir', default=os.getcwd(), help='where the model files and the report go')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N] (TensorRT needs cuda)')
    parser.add_argument('--dump-info', action='store_true', help='write the MMDeploy SDK files too')
    parser.add_argument('--box-tol', type=float, default=Tolerance.box, help='box tolerance, fraction of image size')
    parser.add_argument('--score-tol', type=float, default=Tolerance.score)
    parser.add_argument('--mask-iou', type=float, default=Tolerance.mask_iou, help='smallest mask IoU')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the model config, as in tools/train.py (e.g. model.test_cfg.rcnn.nms.type=nms)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    tolerance = Tolerance(box=args.box_tol, score=args.score_tol, mask_iou=args.mask_iou)
    model_cfg = args.model_cfg
    if args.cfg_options:
        model_cfg = load_configs(args.deploy_cfg, args.model_cfg)[1]
        model_cfg.merge_from_dict(args.cfg_options)
    try:
        result = deploy(
            args.deploy_cfg,
            model_cfg,
            args.checkpoint,
            args.img,
            args.work_dir,
            device=args.device,
            test_imgs=args.test_img,
            dump_info=args.dump_info,
            tolerance=tolerance,
            strict=False)
    except NotDeployableError as e:
        print(f'cannot deploy: {e}', file=sys.stderr)
        return 2
    print(f'compatibility fixes applied while exporting: {", ".join(result.fixes) or "none"}')
    print('files: ' + ', '.join([result.ir_file] + [f for f in result.backend_files if f != result.ir_file]))
    for agreement in result.agreements:
        print(agreement.line())
    if result.diagnoses:
        print('why they disagree:')
        for diagnosis in result.diagnoses:
            print(diagnosis.image)
            print('\n'.join(diagnosis.lines()))
    with open(osp.join(args.work_dir, 'parity.json'), 'w') as f:
        json.dump(result.as_dict(), f, indent=2)
    if not result.ok:
        print(ParityError.__doc__, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
