"""`make demo`: train a Dual-backbone detector on the toy shapes dataset on the CPU, evaluate, draw predictions.

Steps: write the toy COCO dataset if it is missing (tools/misc/make_toy_coco.py), train the demo config with
mmengine's Runner (as tools/train.py would), print the COCO bbox metrics of the val split, and save a few val
images with ground truth (left) and predicted boxes (right) to ``WORK_DIR/vis/``.

    python tools/misc/demo.py [--config configs/cbnet/dual_r18_faster_rcnn_toy.py] [--work-dir work_dirs/demo]
"""
import argparse
import os
import os.path as osp
import time

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

import cbnet  # noqa: F401  (registers cbnet modules)
from cbnet.testing import make_toy_coco
from cbnet.utils.configs import load_config_file
from cbnet.utils.threads import add_threads_argument, configure_cpu_threads

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = 'configs/cbnet/dual_r18_faster_rcnn_toy.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='toy config to train')
    parser.add_argument('--data-root', default='data/toy_coco', help='toy dataset (written if missing)')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--num-vis', type=int, default=6, help='val images to draw')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw predictions above this score')
    add_threads_argument(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args()


def resolve_config(path: str) -> str:
    """``path`` as given, or relative to the repository (the demo runs from any directory)."""
    for candidate in (path, osp.join(REPO, path)):
        if osp.isfile(candidate):
            return candidate
    raise SystemExit(f'error: config {path} not found')


def ensure_toy_data(data_root: str) -> None:
    if osp.isfile(osp.join(data_root, 'annotations', 'instances_train.json')):
        print(f'toy dataset: {data_root} (exists)')
        return
    print(f'toy dataset: writing {data_root} ...')
    make_toy_coco(data_root)


def _enlarge(instances, scale: int) -> None:
    """Scale boxes and masks (if any) by ``scale``, like the image they are drawn on."""
    if hasattr(instances.bboxes, 'rescale_'):  # mmdet box types (HorizontalBoxes)
        instances.bboxes.rescale_((scale, scale))
    else:
        instances.bboxes = instances.bboxes * scale
    if 'masks' in instances:
        masks = instances.masks
        if isinstance(masks, torch.Tensor):  # predictions: (N, H, W) tensors
            size = (masks.shape[-2] * scale, masks.shape[-1] * scale)
            instances.masks = torch.nn.functional.interpolate(masks[None].float(), size=size)[0].bool()
        else:  # ground truth: mmdet BitmapMasks / PolygonMasks
            instances.masks = masks.rescale(scale)


def draw_predictions(runner: Runner, out_dir: str, num_images: int, score_thr: float) -> list:
    """Run the trained model on the first val images and save ground truth | predictions side by side."""
    import mmcv
    from mmdet.visualization import DetLocalVisualizer

    visualizer = DetLocalVisualizer.get_current_instance()
    visualizer.dataset_meta = runner.val_dataloader.dataset.metainfo
    model = runner.model
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    written = []
    with torch.no_grad():
        for batch in runner.val_dataloader:
            for sample in model.test_step(batch):
                if len(written) >= num_images:
                    return written
                image = mmcv.imread(sample.img_path, channel_order='rgb')
                # toy images are ~128 px: enlarge them (and the boxes) so that labels stay readable
                scale = max(1, round(384 / min(image.shape[:2])))
                image = mmcv.imrescale(image, scale, interpolation='nearest')
                for instances in (sample.gt_instances, sample.pred_instances):
                    _enlarge(instances, scale)
                out_file = osp.join(out_dir, osp.basename(sample.img_path).rsplit('.', 1)[0] + '.png')
                visualizer.add_datasample(
                    osp.basename(sample.img_path),
                    image,
                    sample,
                    draw_gt=True,
                    draw_pred=True,
                    show=False,
                    pred_score_thr=score_thr,
                    out_file=out_file)
                written.append(out_file)
    return written


def main() -> None:
    args = parse_args()
    start = time.time()
    configure_cpu_threads(args.threads)
    config = resolve_config(args.config)
    data_root = osp.abspath(args.data_root)
    ensure_toy_data(data_root)
    # the toy configs read their dataset root from this variable (see configs/_toy_/toy_coco_detection.py)
    os.environ['CBNET_TOY_DATA_ROOT'] = data_root.rstrip('/') + '/'

    cfg = load_config_file(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    print(f'config: {config} | backbone: {cfg.model.backbone.type} | detector: {cfg.model.type} | '
          f'{cfg.train_cfg.max_iters} iterations, batch {cfg.train_dataloader.batch_size}, on '
          f'{"GPU" if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} thread(s))"}')

    runner = Runner.from_cfg(cfg)
    train_start = time.time()
    runner.train()  # validates on the val split at the end of training
    train_time = time.time() - train_start

    hub = runner.message_hub
    metrics = {
        key: hub.get_scalar(f'val/coco/{key}').current()
        for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP') if f'val/coco/{key}' in hub.log_scalars
    }
    if not metrics:
        raise SystemExit('error: validation produced no COCO bbox metrics')
    vis_files = draw_predictions(runner, osp.join(args.work_dir, 'vis'), args.num_vis, args.score_thr)

    total = time.time() - start
    print('\n' + '=' * 72)
    print(f'cbnet demo: {osp.relpath(config, REPO) if config.startswith(REPO) else config}')
    print(f'  val bbox mAP          = {metrics.get("bbox_mAP", float("nan")):.3f}')
    print(f'  val bbox mAP@0.5      = {metrics.get("bbox_mAP_50", float("nan")):.3f}')
    print(f'  val bbox mAP@0.75     = {metrics.get("bbox_mAP_75", float("nan")):.3f}')
    if 'segm_mAP' in metrics:
        print(f'  val mask mAP          = {metrics["segm_mAP"]:.3f}')
    print(f'  training time         = {train_time / 60:.1f} min ({cfg.train_cfg.max_iters} iterations)')
    print(f'  total time            = {total / 60:.1f} min')
    print(f'  checkpoint            = {osp.join(args.work_dir, f"iter_{cfg.train_cfg.max_iters}.pth")}')
    print(f'  {len(vis_files)} images (ground truth | prediction) in {osp.join(args.work_dir, "vis")}/')
    print('=' * 72)


if __name__ == '__main__':
    main()
