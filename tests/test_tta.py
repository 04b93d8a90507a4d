"""Test-time augmentation with mask merging (cbnet.models.tta).

Synthetic predictions check the merge itself (un-flipping, voting, NMS); tiny untrained detectors check that
the whole path (TTA pipeline -> views -> merge) gives valid boxes and original-size masks, and that box-only
models get exactly mmdet's DetTTAModel result.
"""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData
from PIL import Image
from torch import nn

import cbnet  # noqa: F401  (registers DetTTAModelWithMasks)
from cbnet.models.tta import DetTTAModelWithMasks, find_voters, flip_masks, vote_masks
from cbnet.testing import mmdet_config

REPO = Path(__file__).resolve().parents[1]
H, W = 24, 32
NMS_CFG = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)

register_all_modules(init_default_scope=True)


# ----------------------------------------------------------------------------- tiny detectors (shared helpers)
def tiny_detector_cfg(base: str, num_classes: int = 3) -> ConfigDict:
    """A narrow ResNet-18 version of an mmdet zoo detector (random init): fast enough for CPU tests."""
    model = mmdet_config(base).model
    model.backbone = dict(
        type='ResNet',
        depth=18,
        base_channels=8,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=None)
    model.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    model.rpn_head.update(in_channels=16, feat_channels=16)
    roi_head = model.roi_head
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractors = roi_head.get(key) or []
        for extractor in extractors if isinstance(extractors, list) else [extractors]:
            extractor.out_channels = 16
    for head in roi_head.bbox_head if isinstance(roi_head.bbox_head, list) else [roi_head.bbox_head]:
        head.update(in_channels=16, fc_out_channels=32, num_classes=num_classes)
    mask_heads = roi_head.get('mask_head') or []
    for head in mask_heads if isinstance(mask_heads, list) else [mask_heads]:
        head.update(in_channels=16, conv_out_channels=16, num_classes=num_classes)
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    model.test_cfg.rcnn.update(max_per_img=20)
    return model


def build_tiny_detector(base: str, **rcnn_test_cfg) -> nn.Module:
    cfg = tiny_detector_cfg(base)
    cfg.test_cfg.rcnn.update(rcnn_test_cfg)
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def tta_pipeline(scales, flip: bool = True) -> list:
    flips = [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)] if flip else \
        [dict(type='RandomFlip', prob=0.)]
    resizes = [dict(type='Resize', scale=s, keep_ratio=True) for s in scales]
    meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction')
    pack = [dict(type='PackDetInputs', meta_keys=meta_keys)]
    return [
        dict(type='LoadImageFromFile', backend_args=None),
        dict(type='TestTimeAug', transforms=[resizes, flips, pack]),
    ]


def tta_batch(image_paths, scales, flip: bool = True) -> dict:
    """What the test dataloader gives a TTA model: pseudo-collated TestTimeAug outputs."""
    pipeline = Compose(tta_pipeline(scales, flip))
    return pseudo_collate([pipeline(dict(img_path=str(p), img_id=i)) for i, p in enumerate(image_paths)])


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Two small images (different sizes, one not a multiple of 32) with bright blobs."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(70, 90), (64, 64)]):
        img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        img[10:40, 15:50] = (230, 40, 40)
        path = tmp_path_factory.mktemp('imgs') / f'{i}.png'
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- synthetic predictions
class _NoModel(nn.Module):
    """BaseTTAModel wants a module with test_step; merge tests never call it."""

    def test_step(self, data):
        raise AssertionError('not used')


def _view(boxes, scores, labels, masks=None, flip=False, direction='horizontal') -> DetDataSample:
    sample = DetDataSample(
        metainfo=dict(
            ori_shape=(H, W),
            img_shape=(H, W),
            scale_factor=(1., 1.),
            flip=flip,
            flip_direction=direction if flip else None))
    inst = InstanceData()
    inst.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.labels = torch.tensor(labels, dtype=torch.long)
    if masks is not None:
        inst.masks = torch.stack(masks) if masks else torch.zeros((0, H, W), dtype=torch.bool)
    sample.pred_instances = inst
    return sample


def _box_mask(x1, y1, x2, y2) -> torch.Tensor:
    mask = torch.zeros((H, W), dtype=torch.bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _hflip_box(box):
    x1, y1, x2, y2 = box
    return [W - x2, y1, W - x1, y2]


def _merge(views, **tta_cfg):
    model = DetTTAModelWithMasks(module=_NoModel(), tta_cfg={**NMS_CFG, **tta_cfg})
    return model.merge_preds([views])[0].pred_instances


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flip_masks_undoes_the_flip_of_its_box(direction):
    mask = _box_mask(3, 2, 9, 7)
    flipped = torch.flip(mask, {'horizontal': [1], 'vertical': [0], 'diagonal': [0, 1]}[direction])
    assert torch.equal(flip_masks(flipped, direction), mask)
    assert torch.equal(flip_masks(flip_masks(mask, direction), direction), mask)
    with pytest.raises(ValueError, match='flip direction'):
        flip_masks(mask, 'sideways')


def test_flipped_view_mask_lands_where_unflipped_view_mask_is():
    box, mask = [3, 2, 9, 7], _box_mask(3, 2, 9, 7)
    views = [_view([box], [0.9], [1], [mask]), _view([_hflip_box(box)], [0.8], [1], [torch.flip(mask, [1])], flip=True)]
    merged = _merge(views)
    assert len(merged) == 1
    assert merged.masks.shape == (1, H, W) and merged.masks.dtype == torch.bool
    assert torch.equal(merged.masks[0], mask)  # a wrongly un-flipped mask would vote pixels at x in 23..28
    torch.testing.assert_close(merged.bboxes[0], torch.tensor(box, dtype=torch.float32))


def test_nms_keeps_the_best_box_and_each_class_and_far_box_survives():
    views = [
        _view([[2, 2, 12, 12], [20, 4, 30, 14]], [0.6, 0.5], [0, 0],
              [_box_mask(2, 2, 12, 12), _box_mask(20, 4, 30, 14)]),
        _view([_hflip_box([3, 2, 12, 12]), _hflip_box([2, 2, 12, 12])], [0.95, 0.4], [0, 2],
              [torch.flip(_box_mask(3, 2, 12, 12), [1]),
               torch.flip(_box_mask(2, 2, 12, 12), [1])],
              flip=True)
    ]
    merged = _merge(views)
    # class 0 near (2,2,12,12): best is the flipped view's 0.95 box; far box and the class-2 box survive.
    assert merged.scores.tolist() == pytest.approx([0.95, 0.5, 0.4])
    assert merged.labels.tolist() == [0, 0, 2]
    torch.testing.assert_close(merged.bboxes[0], torch.tensor([3., 2., 12., 12.]))
    assert len(merged.masks) == len(merged.bboxes) == len(merged.scores)


def test_mask_is_the_score_weighted_vote_of_same_class_overlapping_detections():
    box = [0, 0, 20, 20]
    left, right, top = torch.zeros((H, W), dtype=torch.bool), torch.zeros((H, W), dtype=torch.bool), \
        torch.zeros((H, W), dtype=torch.bool)
    left[0:20, 0:12] = True  # voter A, score 0.5
    right[0:20, 8:20] = True  # voter B, score 0.3
    top[0:10, 0:20] = True  # voter C, score 0.2
    other_class = torch.ones((H, W), dtype=torch.bool)
    far = torch.ones((H, W), dtype=torch.bool)
    views = [
        _view([box, [1, 1, 20, 20], [0, 0, 20, 20], [0, 0, 6, 6]], [0.5, 0.3, 0.9, 0.45], [0, 0, 1, 0],
              [left, right, other_class, far]),
        _view([box], [0.2], [0], [top])
    ]
    merged = _merge(views)
    class0 = merged.masks[(merged.labels == 0) & (merged.scores == 0.5)]
    assert len(class0) == 1
    expected = (0.5 * left.float() + 0.3 * right.float() + 0.2 * top.float()) / 1.0 >= 0.5
    # the class-1 box (all ones) and the small far box (IoU < 0.5) must not vote
    assert torch.equal(class0[0], expected)
    assert expected[15, 4] and not expected[15, 15] and expected[5, 15] and expected[15, 10]


def test_vote_masks_uses_only_the_voters_window_and_handles_soft_masks():
    soft = torch.zeros((2, H, W))
    soft[0, 5:10, 5:10] = 0.9
    soft[1, 5:10, 5:10] = 0.2
    voters = find_voters(
        torch.tensor([[5., 5., 10., 10.]]), torch.tensor([0]), torch.tensor([[5., 5., 10., 10.], [5., 5., 10., 10.]]),
        torch.tensor([0, 0]), 0.5)
    merged = vote_masks(voters, torch.tensor([0.5, 0.5]), [soft], [None])
    assert merged.dtype == torch.bool and merged.sum() == 25  # (0.9 + 0.2) / 2 = 0.55 >= 0.5


def test_soft_nms_merge_keeps_decayed_duplicates_with_their_masks():
    mask = _box_mask(2, 2, 12, 12)
    views = [
        _view([[2, 2, 12, 12]], [0.9], [0], [mask]),
        _view([_hflip_box([2, 2, 12, 13])], [0.8], [0], [torch.flip(mask, [1])], flip=True)
    ]
    hard = _merge(copy.deepcopy(views))
    soft = _merge(copy.deepcopy(views), nms=dict(type='soft_nms', iou_threshold=0.5, min_score=0.001))
    assert len(hard) == 1 and len(soft) == 2
    assert soft.scores[0] == pytest.approx(0.9) and soft.scores[1] < 0.8  # decayed, still sorted
    assert soft.masks.shape == (2, H, W) and torch.equal(soft.masks[0], mask)


def test_no_detections_and_bad_inputs_give_clear_results_or_errors():
    empty = _merge([_view([], [], [], []), _view([], [], [], [], flip=True)])
    assert len(empty) == 0 and empty.masks.shape == (0, H, W)
    with pytest.raises(ValueError, match='predicted masks and others did not'):
        _merge([_view([[1, 1, 5, 5]], [0.5], [0], [_box_mask(1, 1, 5, 5)]), _view([[1, 1, 5, 5]], [0.5], [0])])
    small = _view([[1, 1, 5, 5]], [0.5], [0], [_box_mask(1, 1, 5, 5)])
    small.pred_instances.masks = small.pred_instances.masks[:, :10]
    with pytest.raises(ValueError, match='original image size'):
        _merge([small])
    no_flip_key = _view([[1, 1, 5, 5]], [0.5], [0])
    no_flip_key.set_metainfo(dict(ori_shape=(H, W)))
    del no_flip_key.flip
    with pytest.raises(KeyError, match='PackDetInputs'):
        _merge([no_flip_key])
    defaults = DetTTAModelWithMasks(module=_NoModel()).tta_cfg  # a config may say just dict(type=...)
    assert defaults.nms.iou_threshold == 0.5 and defaults.max_per_img == 100
    assert defaults.mask_voting.iou_threshold == 0.5 and defaults.mask_voting.mask_thr == 0.5
    with pytest.raises(ValueError, match='mask_voting'):
        DetTTAModelWithMasks(module=_NoModel(), tta_cfg={**NMS_CFG, 'mask_voting': dict(thr=0.3)})


def test_box_only_predictions_merge_exactly_like_mmdet():
    rng = torch.Generator().manual_seed(0)
    views = []
    for flip in (False, True):
        xy = torch.rand((30, 2), generator=rng) * 20
        boxes = torch.cat([xy, xy + 2 + torch.rand((30, 2), generator=rng) * 10], 1)
        views.append(
            _view(
                boxes.tolist(),
                torch.rand(30, generator=rng).tolist(),
                torch.randint(0, 3, (30, ), generator=rng).tolist(),
                flip=flip))
    ours = _merge(copy.deepcopy(views))
    theirs = DetTTAModel(module=_NoModel(), tta_cfg=ConfigDict(NMS_CFG)).merge_preds([copy.deepcopy(views)])[0]
    for key in ('bboxes', 'scores', 'labels'):
        assert torch.equal(ours.get(key), theirs.pred_instances.get(key)), key
    assert 'masks' not in ours


# ----------------------------------------------------------------------------- tiny detectors end to end
def test_tiny_faster_rcnn_tta_equals_mmdet_det_tta_model(images):
    detector = build_tiny_detector('_base_/models/faster-rcnn_r50_fpn.py', score_thr=0.0)
    batch = tta_batch(images, scales=[(96, 64), (128, 96)])
    with torch.no_grad():
        ours = DetTTAModelWithMasks(module=detector, tta_cfg=NMS_CFG).test_step(copy.deepcopy(batch))
        theirs = DetTTAModel(module=detector, tta_cfg=ConfigDict(NMS_CFG)).test_step(copy.deepcopy(batch))
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert len(a.pred_instances) > 0
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(a.pred_instances.get(key), b.pred_instances.get(key)), key


def _assert_valid_instances(sample: DetDataSample, with_masks: bool):
    inst = sample.pred_instances
    h, w = sample.metainfo['ori_shape'][:2]
    n = len(inst.bboxes)
    assert n > 0 and len(inst.scores) == len(inst.labels) == n
    boxes = inst.bboxes
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert (inst.scores[:-1] >= inst.scores[1:]).all(), 'merged detections must be sorted by score'
    if with_masks:
        assert inst.masks.shape == (n, h, w) and inst.masks.dtype == torch.bool


def test_tiny_mask_rcnn_two_scales_and_flip(images):
    detector = build_tiny_detector('_base_/models/mask-rcnn_r50_fpn.py', score_thr=0.0)
    batch = tta_batch(images, scales=[(96, 64), (128, 96)])
    assert len(batch['inputs']) == 4  # 2 scales x 2 flips
    with torch.no_grad():  # the views once, merged with both NMS types
        views = list(
            zip(*[
                detector.test_step(dict(inputs=inputs, data_samples=samples))
                for inputs, samples in zip(batch['inputs'], batch['data_samples'])
            ]))
    for nms_type in ('nms', 'soft_nms'):
        tta = DetTTAModelWithMasks(
            module=detector, tta_cfg=dict(nms=dict(type=nms_type, iou_threshold=0.5), max_per_img=15))
        merged = tta.merge_preds(copy.deepcopy(views))
        assert [s.metainfo['ori_shape'][:2] for s in merged] == [(70, 90), (64, 64)]
        for sample, image_views in zip(merged, views):
            _assert_valid_instances(sample, with_masks=True)
            assert len(sample.pred_instances) <= min(15, sum(len(view.pred_instances) for view in image_views))
            assert sample.pred_instances.masks.any(), 'voting lost every mask pixel'


@pytest.mark.parametrize(
    'base', ['htc/htc-without-semantic_r50_fpn_1x_coco.py', 'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'])
def test_tiny_cascade_and_htc_flip_tta(images, base):
    detector = build_tiny_detector(base, score_thr=0.0)
    batch = tta_batch(images[1:], scales=[(96, 64)])
    with torch.no_grad():
        merged = DetTTAModelWithMasks(module=detector, tta_cfg=NMS_CFG).test_step(batch)
    _assert_valid_instances(merged[0], with_masks=True)


def test_paper_tta_config_builds_the_mask_tta_model_with_eight_views(images):
    cfg = Config.fromfile(str(REPO / 'configs/_base_/tta_htc_swin_l.py'))
    assert cfg.tta_model.type == 'DetTTAModelWithMasks'
    scales = [t.scale for t in cfg.tta_pipeline[1].transforms[0]]
    assert scales == [(1600, 1000), (1600, 1400), (1800, 1200), (1800, 1600)]
    sample = Compose(cfg.tta_pipeline)(dict(img_path=str(images[1]), img_id=0))
    assert len(sample['inputs']) == 8
    assert sorted(s.flip for s in sample['data_samples']) == [False] * 4 + [True] * 4
    # what tools/test.py --tta does with it
    model = MODELS.build(ConfigDict(**cfg.tta_model, module=tiny_detector_cfg('_base_/models/mask-rcnn_r50_fpn.py')))
    assert isinstance(model, DetTTAModelWithMasks) and model.tta_cfg.nms.type == 'soft_nms'
