"""Inference like mmdet: ``DetInferencer`` (and ``tools/misc/image_demo.py`` over it) with a CB config and its
checkpoint gives the CB detector's own predictions (boxes, labels, scores, masks), draws them and writes them.

The model is a Dual Mask R-CNN trained for 2 iterations in the test on tiny toy data: enough for the API.
"""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.apis import DetInferencer
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint
from pycocotools import mask as mask_utils

from cbnet.testing import CLASS_NAMES, MASK_TOY, load_tool, make_tiny_toy, write_tiny_config

DUAL_MASK = """
model = dict(
    type='CBMaskRCNN',
    backbone=dict(_delete_=True, type='CBNet', backbone={{_base_.backbone}}, num_backbones=2),
    test_cfg=dict(rcnn=dict(score_thr=0.0, max_per_img=10)))
"""


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('inference')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    config = write_tiny_config(str(tmp / 'dual_mask_rcnn.py'), data_root, base=MASK_TOY, max_iters=2, extra=DUAL_MASK)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp / 'work')
    cfg.experiment_name = 'inference_dual_mask_rcnn'
    cfg.val_cfg = cfg.test_cfg = None  # no evaluation needed
    cfg.val_dataloader = cfg.val_evaluator = cfg.test_dataloader = cfg.test_evaluator = None
    Runner.from_cfg(cfg).train()
    checkpoint = osp.join(cfg.work_dir, 'iter_2.pth')
    images = sorted(glob.glob(osp.join(data_root, 'val', '*.jpg')))
    assert osp.isfile(checkpoint) and images
    return dict(tmp=tmp, config=config, checkpoint=checkpoint, images=images)


def _expected(trained):
    """The CB detector's own predictions: the model built from the config, the checkpoint, the val loader."""
    cfg = Config.fromfile(trained['config'])
    model = MODELS.build(cfg.model)
    load_checkpoint(model, trained['checkpoint'], map_location='cpu', strict=True)
    model.eval()
    out = {}
    with torch.no_grad():
        for data in Runner.build_dataloader(cfg.val_dataloader):
            for sample in model.test_step(data):
                out[osp.basename(sample.img_path)] = sample.pred_instances
    return out


def _check_same(prediction: dict, expected) -> None:
    assert len(prediction['labels']) == len(expected) > 0
    torch.testing.assert_close(torch.tensor(prediction['bboxes']), expected.bboxes, rtol=0, atol=1e-3)
    torch.testing.assert_close(torch.tensor(prediction['scores']), expected.scores, rtol=0, atol=1e-5)
    assert prediction['labels'] == expected.labels.tolist()
    masks = np.stack([mask_utils.decode(rle) for rle in prediction['masks']])
    assert np.array_equal(masks.astype(bool), expected.masks.numpy())


def test_det_inferencer_with_a_cb_config_and_checkpoint(trained):
    out_dir = str(trained['tmp'] / 'inferencer')
    inferencer = DetInferencer(
        model=trained['config'], weights=trained['checkpoint'], device='cpu', show_progress=False)
    assert type(inferencer.model).__name__ == 'CBMaskRCNN'
    assert tuple(inferencer.model.dataset_meta['classes']) == tuple(CLASS_NAMES)  # from the checkpoint's meta
    result = inferencer(trained['images'], out_dir=out_dir, no_save_pred=False, pred_score_thr=0.0)
    expected = _expected(trained)
    for image, prediction in zip(trained['images'], result['predictions']):
        name = osp.basename(image)
        _check_same(prediction, expected[name])
        assert osp.getsize(osp.join(out_dir, 'vis', name)) > 0
        with open(osp.join(out_dir, 'preds', osp.splitext(name)[0] + '.json')) as f:
            assert json.load(f)['labels'] == prediction['labels']


def test_image_demo_tool(trained, capsys):
    module = load_tool('tools/misc/image_demo.py')
    out_dir = str(trained['tmp'] / 'demo')
    folder = osp.dirname(trained['images'][0])
    result = module.main([
        folder, trained['config'], '--weights', trained['checkpoint'], '--out-dir', out_dir, '--device', 'cpu',
        '--pred-score-thr', '0'
    ])
    assert f'results written to {out_dir}/' in capsys.readouterr().out
    written = sorted(osp.basename(p) for p in glob.glob(osp.join(out_dir, 'vis', '*.jpg')))
    assert written == sorted(osp.basename(p) for p in trained['images'])
    assert len(glob.glob(osp.join(out_dir, 'preds', '*.json'))) == len(written)
    assert len(result['predictions']) == len(written)
    for name, instances in _expected(trained).items():
        with open(osp.join(out_dir, 'preds', osp.splitext(name)[0] + '.json')) as f:
            _check_same(json.load(f), instances)
