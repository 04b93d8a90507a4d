"""Two invariants for EVERY CB detector class, generated from ``CB_DETECTORS`` and mmdet's zoo.

For each class, a config of mmdet's own zoo that builds its base class is found, made tiny and converted with
``cbnetify``. Then (1) with zero composite connections and every branch holding the plain detector's
backbone weights (same neck and head weights), the CB detector predicts exactly what the plain detector
predicts (boxes, scores, labels, masks, panoptic maps); (2) one training step gives a full set of losses per
assisting branch (``assist{k}_`` + every lead key) and a gradient for every trainable parameter (apart from
those that the plain mmdet detector itself leaves unused). A class without a case fails; classes that cannot
be checked offline are listed below with the reason, and a test asserts that they fail for that reason.
"""
import copy
import logging

import pytest
import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub, MMLogger
from mmengine.structures import InstanceData

from cbnet import cbnetify
from cbnet.models.detectors import CB_DETECTORS
from cbnet.testing import mmdet_config, tiny_batch
from cbnet.testing.zoo import copy_plain_weights, plain_parameter_name, tiny_zoo_detector, zoo_config_for
from cbnet.testing.zoo_sweep import batch_needs, sweep_batch

#: classes that cannot even be built offline (grounding detectors build with the tiny local BERT of cbnet.testing)
UNBUILDABLE = {}
#: classes whose predictions are checked but whose loss needs a package the project does not install
#: configs of variants that matter beyond one config per class: neck-less R-CNNs, panoptic Mask2Former
EXTRA_CONFIGS = {
    'CBFasterRCNN':
    ['faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py', 'faster_rcnn/faster-rcnn_r50-caffe-dc5_1x_coco.py'],
    'CBMaskRCNN': ['mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py'],
    'CBMask2Former': ['mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'],
    'CBRTMDet': ['rtmdet/rtmdet-ins_s_8xb32-300e_coco.py'],  # its head turns the gt masks into tensors in place
    'CBGLIP': ['glip/glip_atss_swin-t_b_fpn_dyhead_pretrain_obj365.py'],  # early fusion: BERT layers in the head
    'CBGroundingDINO': ['mm_grounding_dino/grounding_dino_swin-t_pretrain_obj365.py'],  # MM-Grounding-DINO
}
#: image side per class where 64 px is too small (mmcv's CPU deformable conv needs >= 3x3 maps, DDOD runs one
#: on the stride-128 level)
IMAGE_SIZE = {'CBDDOD': 384}
#: Triple (K=3) checks for one class of every kind
TRIPLE = ['CBFasterRCNN', 'CBRetinaNet', 'CBDINO', 'CBMask2Former', 'CBSOLOv2', 'CBGroundingDINO']

TESTED = [name for name in CB_DETECTORS if name not in UNBUILDABLE]
CASES = [(name, None, 2) for name in TESTED] + [(name, rel, 2) for name, rels in EXTRA_CONFIGS.items()
                                                for rel in rels] + [(name, None, 3) for name in TRIPLE]


@pytest.fixture(autouse=True)
def _quiet():
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # mmengine logs every initialiser of every module otherwise
    hub = MessageHub.get_current_instance()  # a Runner sets these; TOOD reads the epoch, BoxInst the iteration
    hub.update_info('epoch', 0)
    hub.update_info('iter', 0)
    yield
    logger.setLevel(level)


def _case(name: str, rel=None):
    """(config path, plain model config) of the tiny zoo detector of class ``name``."""
    base = name[len('CB'):]
    if rel is None:
        found = zoo_config_for(base)
        assert found is not None, f'no config of the mmdet zoo builds {base}: add one to this test'
        rel, base_type = found
    else:
        base_type = base
    plain = tiny_zoo_detector(mmdet_config(rel).model)
    plain['type'] = base_type
    return rel, ConfigDict(plain)


def _build_pair(name: str, rel=None, num_backbones: int = 2):
    rel, plain_cfg = _case(name, rel)
    composite_cfg = cbnetify(Config(dict(model=plain_cfg.to_dict())), num_backbones=num_backbones).model
    assert composite_cfg.type == name
    torch.manual_seed(0)
    plain = MODELS.build(copy.deepcopy(plain_cfg))
    plain.init_weights()
    _keep_query_boxes_in_the_image(plain)
    composite = MODELS.build(composite_cfg)
    copy_plain_weights(plain, composite)
    return _needs(plain_cfg), plain, composite


def _keep_query_boxes_in_the_image(detector) -> None:
    """Random Sparse R-CNN/QueryInst regressions move the learned proposals out of the image, where mmdet's
    mask pasting fails (torch.arange of an empty range): their box deltas start at zero here, as a trained
    model's stay small."""
    from mmdet.models.roi_heads import SparseRoIHead
    if isinstance(getattr(detector, 'roi_head', None), SparseRoIHead):
        with torch.no_grad():
            for head in detector.roi_head.bbox_head:
                for p in head.fc_reg.parameters():
                    p.zero_()


def _needs(model_cfg) -> dict:
    """What the detector's data samples must carry: masks, semantic maps (with their heads)."""
    needs = batch_needs(model_cfg)
    if needs['text_prompts']:  # grounding detectors: a few classes, their names as the text prompt
        return needs
    return dict(with_mask=needs['with_mask'], with_semantic=needs['with_semantic'])


def _batch(model, name: str, needs: dict, training: bool, seed: int = 0):
    if needs.get('text_prompts'):
        return sweep_batch(model, needs, IMAGE_SIZE.get(name, 64), training=training, seed=seed)
    batch = tiny_batch(model, size=IMAGE_SIZE.get(name, 64), training=training, seed=seed, **needs)
    if isinstance(model, TwoStageDetector) and not model.with_rpn:  # Fast R-CNN: precomputed proposals
        g = torch.Generator().manual_seed(seed)
        for sample in batch['data_samples']:
            gt = sample.gt_instances.bboxes
            boxes = torch.cat([gt + torch.randn(gt.shape, generator=g) * 2, gt])
            sample.proposals = InstanceData(bboxes=boxes, scores=torch.ones(len(boxes)))
    return batch


def _assert_same_predictions(expected, got) -> None:
    instances = [len(a.pred_instances) for a in expected if 'pred_instances' in a]
    assert not instances or sum(instances) > 0, 'no detections to compare: lower the test score thresholds'
    for a, b in zip(expected, got):
        for field in ('pred_instances', 'pred_panoptic_seg', 'pred_sem_seg'):
            if field not in a:
                continue
            assert field in b, field
            for key, value in a.get(field).items():
                other = b.get(field).get(key)
                if hasattr(value, 'to_tensor'):  # BitmapMasks
                    value, other = value.to_tensor(torch.float32, 'cpu'), other.to_tensor(torch.float32, 'cpu')
                if isinstance(value, torch.Tensor):
                    torch.testing.assert_close(other, value, rtol=1e-5, atol=1e-5, msg=f'{field}.{key}')


@pytest.mark.parametrize(
    'name, rel, num_backbones',
    CASES,
    ids=[f'{n}-{rel.split("/")[-1][:-3] if rel else "zoo"}-K{k}' for n, rel, k in CASES])
def test_cb_detector_invariants(name, rel, num_backbones):
    needs, plain, composite = _build_pair(name, rel, num_backbones)

    # (1) zero connections + the plain weights in every branch: the plain detector's predictions
    plain.eval()
    composite.eval()
    batch = _batch(plain, name, needs, training=False)
    with torch.no_grad():
        expected = plain.predict(batch['inputs'], copy.deepcopy(batch['data_samples']))
        got = composite.predict(batch['inputs'], copy.deepcopy(batch['data_samples']))
    _assert_same_predictions(expected, got)

    # (2) one training step: every loss per branch, a gradient for every trainable parameter
    composite.train()
    batch = _batch(composite, name, needs, training=True)
    torch.manual_seed(0)
    losses = composite.loss(batch['inputs'], batch['data_samples'])
    lead = {k for k in losses if not k.startswith('assist')}
    assert any('loss' in k for k in lead), sorted(losses)
    for k in range(1, num_backbones):
        assert {f'assist{k}_{key}' for key in lead} == {key for key in losses if key.startswith(f'assist{k}_')}
    assert not any(key.startswith(f'assist{num_backbones}_') for key in losses)
    total, _ = composite.parse_losses(losses)
    assert torch.isfinite(total), {k: v for k, v in losses.items() if 'loss' in k}
    total.backward()
    missing = {n for n, p in composite.named_parameters() if p.requires_grad and p.grad is None}
    if missing:  # allowed only where the plain detector leaves the same parameter unused
        unused = _unused_in_plain(plain, name, needs)
        assert not {n for n in missing if plain_parameter_name(n) not in unused or '.composition.' in n}, \
            sorted(missing)[:10]


def _unused_in_plain(plain, name: str, needs: dict) -> set:
    plain.train()
    batch = _batch(plain, name, needs, training=True)
    torch.manual_seed(0)
    total, _ = plain.parse_losses(plain.loss(batch['inputs'], batch['data_samples']))
    total.backward()
    return {n for n, p in plain.named_parameters() if p.requires_grad and p.grad is None}


# -- the lists above are exact ------------------------------------------------------------------------------
def test_every_cb_class_is_tested_or_listed_with_its_reason():
    assert set(UNBUILDABLE) <= set(CB_DETECTORS)
    assert set(TESTED) | set(UNBUILDABLE) == set(CB_DETECTORS)
    assert len(CB_DETECTORS) >= 50  # every mmdet detector of the known kinds, not a hand-picked few
    for family in ('CBDINO', 'CBDeformableDETR', 'CBDETR', 'CBMask2Former', 'CBMaskFormer', 'CBSOLOv2', 'CBCondInst',
                   'CBYOLACT', 'CBCornerNet', 'CBFasterRCNN', 'CBRetinaNet', 'CBGLIP', 'CBGroundingDINO'):
        assert family in TESTED, family
