"""Soft-NMS in the RCNN test_cfg, as the CBNetV2 Swin-L HTC recipe uses it (iou 0.5, score_thr 0.001).

mmcv's soft_nms is CPU-only; these tests pin down that box and mask detectors still predict valid,
score-sorted results with it, and that it keeps more (decayed) boxes than hard NMS does.
"""
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.models.layers import multiclass_nms
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from PIL import Image

from tests.test_tta import build_tiny_detector  # tiny narrow-ResNet-18 zoo detectors, shared with the TTA tests

SOFT_NMS = dict(type='soft_nms', iou_threshold=0.5)
HARD_NMS = dict(type='nms', iou_threshold=0.5)
DETECTORS = {
    'faster_rcnn': ('_base_/models/faster-rcnn_r50_fpn.py', False),
    'mask_rcnn': ('_base_/models/mask-rcnn_r50_fpn.py', True),
    'htc': ('htc/htc-without-semantic_r50_fpn_1x_coco.py', True),
}


def test_soft_nms_keeps_more_boxes_than_nms_with_decayed_scores():
    # 3 heavily overlapping boxes of class 0 and one separate box of class 1
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [30, 30, 40, 40]], dtype=torch.float32)
    cls_scores = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.0, 0.6]])
    multi_scores = torch.cat([cls_scores, torch.zeros((4, 1))], 1)  # + background column
    multi_bboxes = boxes.repeat(1, 2)
    hard, hard_labels = multiclass_nms(multi_bboxes, multi_scores, 0.001, ConfigDict(HARD_NMS), max_num=100)
    soft, soft_labels = multiclass_nms(multi_bboxes, multi_scores, 0.001, ConfigDict(SOFT_NMS), max_num=100)
    assert len(hard) == 2 and len(soft) == 4
    assert soft[:, -1].tolist() == sorted(soft[:, -1].tolist(), reverse=True)
    assert soft[0, -1] == pytest.approx(0.9) and hard[0, -1] == pytest.approx(0.9)
    duplicates = soft[soft_labels == 0][1:, -1]
    assert (duplicates < torch.tensor([0.8, 0.7])).all() and (duplicates > 0).all()  # decayed, not removed
    assert sorted(soft_labels.tolist()) == [0, 0, 0, 1]


@pytest.fixture(scope='module')
def test_batch(tmp_path_factory):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 80, (72, 96, 3), dtype=np.uint8)
    img[12:50, 20:70] = (40, 220, 60)
    path = tmp_path_factory.mktemp('soft_nms') / 'img.png'
    Image.fromarray(img).save(path)
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 96), keep_ratio=True),
        dict(type='PackDetInputs')
    ])
    return pseudo_collate([pipeline(dict(img_path=str(path), img_id=0))])


def _predict(base: str, nms: dict, batch: dict):
    detector = build_tiny_detector(base, nms=nms, score_thr=0.001, max_per_img=100)
    with torch.no_grad():
        return detector.test_step(batch)[0]


@pytest.mark.parametrize('name', list(DETECTORS))
def test_detectors_predict_valid_sorted_results_with_soft_nms(name, test_batch):
    base, with_masks = DETECTORS[name]
    soft = _predict(base, SOFT_NMS, test_batch)
    hard = _predict(base, HARD_NMS, test_batch)
    inst = soft.pred_instances
    h, w = soft.metainfo['ori_shape']
    n = len(inst)
    assert n > 0 and len(inst.scores) == len(inst.labels) == n
    assert (inst.scores[:-1] >= inst.scores[1:]).all(), 'soft-NMS results must stay sorted by score'
    assert (inst.scores >= 0.001).all()
    assert (inst.bboxes[:, :2] >= 0).all() and (inst.bboxes[:, 2] <= w).all() and (inst.bboxes[:, 3] <= h).all()
    assert (inst.bboxes[:, 0] <= inst.bboxes[:, 2]).all() and (inst.bboxes[:, 1] <= inst.bboxes[:, 3]).all()
    if with_masks:
        assert inst.masks.shape == (n, h, w) and inst.masks.dtype == torch.bool
    # an untrained head predicts many overlapping boxes: soft-NMS decays instead of removing them
    assert len(hard.pred_instances) < n
    assert torch.isin(inst.scores, hard.pred_instances.scores).sum() < n, 'some scores must be decayed'
