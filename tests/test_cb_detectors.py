"""Assistant supervision for two- and single-stage detectors: losses, weights, gradients, eval path, the lead's
proposals for every RoI head, errors."""
import pytest
import torch
from mmdet.registry import MODELS

from cbnet.models import MultiBranchFeatures
from cbnet.models.detectors import CB_DETECTORS
from cbnet.testing import tiny_batch, tiny_detector_cfg

DETECTORS = {
    'CBFasterRCNN': ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', False),
    'CBMaskRCNN': ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', True),
    'CBCascadeRCNN': ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', True),
    'CBHybridTaskCascade': ('htc/htc-without-semantic_r50_fpn_1x_coco.py', True),
    'CBRetinaNet': ('retinanet/retinanet_r50_fpn_1x_coco.py', False),
    'CBATSS': ('atss/atss_r50_fpn_1x_coco.py', False),
    'CBFCOS': ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', False),
}


def build(name, num_backbones=2, **kwargs):
    path, _ = DETECTORS[name]
    model = MODELS.build(tiny_detector_cfg(path, name, num_backbones, **kwargs))
    model.init_weights()
    return model


def losses_of(model, batch, seed=0):
    torch.manual_seed(seed)
    return model.loss(batch['inputs'], batch['data_samples'])


def test_contract_names_registered():
    for name in list(DETECTORS) + ['CBGFL', 'CBTOOD', 'CBPAA', 'CBGridRCNN', 'CBSparseRCNN']:
        assert name in CB_DETECTORS and MODELS.get(name) is not None, name


def test_register_all_is_idempotent_and_picks_the_kind_of_each_detector():
    from cbnet.models.detectors import AssistedDetectorMixin, DETRAssistedMixin, TwoStageAssistedMixin, register_all
    before = dict(MODELS.module_dict)
    assert register_all() == CB_DETECTORS and dict(MODELS.module_dict) == before
    kinds = {
        'CBFasterRCNN': TwoStageAssistedMixin,
        'CBHybridTaskCascade': TwoStageAssistedMixin,
        'CBDINO': DETRAssistedMixin,
        'CBDETR': DETRAssistedMixin,
        'CBMask2Former': AssistedDetectorMixin,
        'CBSOLOv2': AssistedDetectorMixin,
        'CBRetinaNet': AssistedDetectorMixin
    }
    for name, kind in kinds.items():
        assert MODELS.get(name).__mro__[1] is kind, name
    assert 'CBTridentFasterRCNN' not in CB_DETECTORS and 'CBDetectionTransformer' not in CB_DETECTORS


@pytest.mark.parametrize('num_backbones', [2, 3])
@pytest.mark.parametrize('name', list(DETECTORS))
def test_losses_per_branch_and_gradients_everywhere(name, num_backbones):
    model = build(name, num_backbones)
    model.train()
    batch = tiny_batch(model, with_mask=DETECTORS[name][1])
    losses = losses_of(model, batch)
    lead_keys = {k for k in losses if not k.startswith('assist')}
    assert any('loss' in k for k in lead_keys)
    for k in range(1, num_backbones):
        assert {f'assist{k}_{key}' for key in lead_keys} <= set(losses), k
    assert not any(k.startswith(f'assist{num_backbones}_') for k in losses)
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize('name', ['CBFasterRCNN', 'CBRetinaNet'])
def test_assisting_losses_are_scaled_by_their_weight(name):
    model = build(name, 3, assist_loss_weights=[1.0, 1.0])
    model.train()
    batch = tiny_batch(model)
    unweighted = losses_of(model, batch)
    model.assist_loss_weights = [0.5, 0.25]
    weighted = losses_of(model, batch)
    checked = 0
    for key, value in unweighted.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        got = weighted[key] if isinstance(weighted[key], (list, tuple)) else [weighted[key]]
        factor = 0.5 if key.startswith('assist1_') else 0.25 if key.startswith('assist2_') else 1.0
        if 'loss' not in key:
            factor = 1.0
        for a, b in zip(values, got):
            assert torch.allclose(b, a * factor, rtol=1e-5, atol=1e-7), key
            checked += factor != 1.0
    assert checked > 0


def test_eval_runs_neck_and_heads_once_on_the_lead():
    model = build('CBMaskRCNN', 3)
    calls = {'neck': 0, 'rpn': 0, 'bbox': 0, 'branches': 0}
    model.neck.register_forward_hook(lambda *a: calls.__setitem__('neck', calls['neck'] + 1))
    model.rpn_head.register_forward_hook(lambda *a: calls.__setitem__('rpn', calls['rpn'] + 1))
    model.roi_head.bbox_head.register_forward_hook(lambda *a: calls.__setitem__('bbox', calls['bbox'] + 1))
    model.eval()
    batch = tiny_batch(model, training=False, with_mask=True)
    with torch.no_grad():
        results = model.predict(batch['inputs'], batch['data_samples'])
    assert calls['neck'] == 1 and calls['rpn'] == 1 and calls['bbox'] == 1, calls
    assert len(results) == 2 and 'masks' in results[0].pred_instances
    # training runs them once per branch
    for key in calls:
        calls[key] = 0
    model.train()
    losses_of(model, tiny_batch(model, with_mask=True))
    assert calls['neck'] == 3 and calls['rpn'] == 3, calls


def test_extract_feat_in_eval_is_the_leads_neck_features():
    model = build('CBFasterRCNN', 2)
    model.eval()
    x = tiny_batch(model, training=False)['inputs']
    with torch.no_grad():
        feats = model.extract_feat(x)
        expected = model.neck(model.backbone(x))
    assert isinstance(feats, tuple) and all(torch.equal(a, b) for a, b in zip(feats, expected))
    model.train()
    assert isinstance(model.extract_feat(x), MultiBranchFeatures)


def test_htc_semantic_branch_supervised_per_branch():
    cfg = tiny_detector_cfg('htc/htc_r50_fpn_1x_coco.py', 'CBHybridTaskCascade', 2)
    model = MODELS.build(cfg)
    model.train()
    batch = tiny_batch(model, with_mask=True, with_semantic=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert 'loss_semantic_seg' in losses and 'assist1_loss_semantic_seg' in losses


def test_training_reduces_the_loss():
    model = build('CBFasterRCNN', 2)
    model.train()
    batch = tiny_batch(model, seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    history = []
    for step in range(12):
        loss, _ = model.parse_losses(losses_of(model, batch, seed=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-3:]) / 3 < sum(history[:3]) / 3, history


# -- two-stage: the RoI heads of all branches on the lead's proposals ('lead', CBNetV2) or their own ---------
def _record_roi_inputs(model):
    """The proposal boxes the RoI head's ``loss`` receives, one list per call (= per branch), and the features."""
    calls = []
    own = model.roi_head.loss

    def loss(x, rpn_results_list, batch_data_samples):
        calls.append(dict(x=x, bboxes=[r.bboxes.detach().clone() for r in rpn_results_list]))
        return own(x, rpn_results_list, batch_data_samples)

    model.roi_head.loss = loss
    return calls


def _distinct_branches(model):
    """Non-zero connections: the lead's features (and so its RPN's proposals) differ from the assisting ones'."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.backbone.composition.parameters():
            p.normal_(0, 0.5)


@pytest.mark.parametrize('num_backbones', [2, 3])
def test_lead_proposals_train_every_roi_head(num_backbones):
    import copy
    model = build('CBFasterRCNN', num_backbones)
    assert model.assist_proposals == 'lead'  # the official CBNetV2 training is the default
    _distinct_branches(model)
    model.train()
    batch = tiny_batch(model)
    calls = _record_roi_inputs(model)
    losses = losses_of(model, batch)
    assert len(calls) == num_backbones
    lead = calls[0]  # the lead runs first, so that its proposals exist for the others
    with torch.no_grad():  # the lead's RPN proposals, computed independently from the lead's features
        feats = model.neck(model.backbone(batch['inputs']).lead)
        samples = copy.deepcopy(batch['data_samples'])
        for s in samples:
            s.gt_instances.labels = torch.zeros_like(s.gt_instances.labels)
        _, expected = model.rpn_head.loss_and_predict(feats, samples, proposal_cfg=model.train_cfg.rpn_proposal)
    assert all(torch.allclose(a, e.bboxes) for a, e in zip(lead['bboxes'], expected))
    assert torch.equal(lead['x'][0], feats[0])
    for assisting in calls[1:]:
        assert not torch.equal(assisting['x'][0], lead['x'][0])  # other features ...
        assert all(torch.equal(a, b) for a, b in zip(assisting['bboxes'], lead['bboxes']))  # ... same proposals
    for k in range(1, num_backbones):  # every branch's RPN is still supervised
        assert f'assist{k}_loss_rpn_cls' in losses and f'assist{k}_loss_rpn_bbox' in losses


def test_own_proposals_and_the_same_loss_keys_and_weights():
    model = build('CBFasterRCNN', 2, assist_proposals='own', assist_loss_weights=1.0)
    _distinct_branches(model)
    model.train()
    batch = tiny_batch(model)
    calls = _record_roi_inputs(model)
    own = losses_of(model, batch)
    assert len(calls) == 2 and not all(torch.equal(a, b) for a, b in zip(calls[0]['bboxes'], calls[1]['bboxes']))
    model.assist_proposals = 'lead'
    lead = losses_of(model, batch)
    assert list(lead) == list(own)  # same keys in the same order
    model.assist_loss_weights = [0.5]
    weighted = losses_of(model, batch)
    for key in ('assist1_loss_rpn_cls', 'assist1_loss_rpn_bbox'):  # RPN losses do not depend on proposals
        assert torch.allclose(sum(weighted[key]), 0.5 * sum(lead[key]), rtol=1e-4), key


def test_lead_proposals_with_cascade_and_htc():
    for name in ('CBCascadeRCNN', 'CBHybridTaskCascade'):
        model = build(name, 2)
        model.train()
        calls = _record_roi_inputs(model)
        losses = losses_of(model, tiny_batch(model, with_mask=True))
        assert len(calls) == 2 and all(torch.equal(a, b) for a, b in zip(calls[0]['bboxes'], calls[1]['bboxes']))
        assert {k[len('assist1_'):]
                for k in losses if k.startswith('assist1_')} == {k
                                                                 for k in losses if not k.startswith('assist')}, name


def test_kind_options_are_checked():
    with pytest.raises(ValueError, match="assist_proposals must be 'lead'"):
        build('CBFasterRCNN', 2, assist_proposals='first')
    with pytest.raises(TypeError, match='assist_proposals is an option of CB TwoStageDetector'):
        build('CBRetinaNet', 2, assist_proposals='lead')


# -- DETR kind: all branches stacked along the batch = one pass per branch ------------------------------------
def _tiny_dino(num_backbones=2, **kwargs):
    from mmengine.config import Config

    from cbnet import cbnetify
    from cbnet.testing import mmdet_config
    from cbnet.testing.zoo import tiny_zoo_detector
    plain = tiny_zoo_detector(mmdet_config('dino/dino-4scale_r50_8xb2-12e_coco.py').model)
    plain['dn_cfg'].update(label_noise_scale=1e-8, box_noise_scale=1e-8)  # (almost) noise-free denoising queries
    cfg = cbnetify(Config(dict(model=plain)), num_backbones=num_backbones).model
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    _distinct_branches(model)
    return model


@pytest.mark.parametrize('num_backbones', [2, 3])
def test_stacked_branch_batching_gives_the_per_branch_losses_of_sequential(num_backbones):
    model = _tiny_dino(num_backbones, assist_loss_weights=1.0)
    assert model.branch_batching == 'sequential'
    model.train()
    batch = tiny_batch(model, batch_size=2)
    batch['data_samples'][1].gt_instances = batch['data_samples'][1].gt_instances[:1]  # unequal gt counts
    sequential = losses_of(model, batch)
    model.branch_batching = 'stacked'
    stacked = losses_of(model, batch)
    assert list(stacked) == list(sequential) and any(k.startswith(f'assist{num_backbones - 1}_') for k in stacked)
    for key, value in sequential.items():  # normalised per branch (not over a K-times bigger batch)
        torch.testing.assert_close(stacked[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert not torch.allclose(sequential['loss_cls'], sequential['assist1_loss_cls'])  # the branches differ
    loss, _ = model.parse_losses(stacked)
    loss.backward()
    assert not [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_stacked_branch_batching_runs_neck_and_transformer_once():
    model = _tiny_dino(2, branch_batching='stacked')
    calls = {'neck': [], 'encoder': 0}
    model.neck.register_forward_hook(lambda m, i, o: calls['neck'].append(o[0].shape[0]))
    model.encoder.register_forward_hook(lambda *a: calls.__setitem__('encoder', calls['encoder'] + 1))
    model.train()
    losses_of(model, tiny_batch(model, batch_size=2))
    assert calls == {'neck': [4], 'encoder': 1}  # 2 branches x 2 images in one pass


def test_stacked_branch_batching_is_refused_where_it_cannot_be_split():
    from mmengine.config import Config

    from cbnet import cbnetify
    from cbnet.testing import mmdet_config
    from cbnet.testing.zoo import tiny_zoo_detector
    plain = tiny_zoo_detector(mmdet_config('ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py').model)
    cfg = cbnetify(Config(dict(model=plain))).model
    cfg.branch_batching = 'stacked'
    with pytest.raises(ValueError, match="'stacked' does not work for CBDDQDETR: its distinct-query selection"):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match="branch_batching must be 'sequential'"):
        _tiny_dino(2, branch_batching='batched')


# -- errors ---------------------------------------------------------------------------------------------------
def test_cb_detector_with_plain_backbone_names_the_fix():
    cfg = tiny_detector_cfg(DETECTORS['CBFasterRCNN'][0])
    cfg['type'] = 'CBFasterRCNN'
    with pytest.raises(TypeError, match="needs a composite backbone.*type='CBNet'"):
        MODELS.build(cfg)


def test_plain_detector_with_cb_backbone_in_training_names_the_fix():
    cfg = tiny_detector_cfg(DETECTORS['CBFasterRCNN'][0], 'CBFasterRCNN')
    cfg['type'] = 'FasterRCNN'
    model = MODELS.build(cfg)
    model.train()
    with pytest.raises(TypeError, match='CBFasterRCNN'):
        losses_of(model, tiny_batch(model))


def test_assist_weights_must_match_branches():
    with pytest.raises(ValueError, match='one value per assisting branch'):
        build('CBFasterRCNN', 3, assist_loss_weights=[0.5])


@pytest.mark.slow
@pytest.mark.parametrize('config', ['dual_r18_faster_rcnn_toy.py', 'triple_r18_faster_rcnn_toy.py'])
def test_a_few_iterations_on_the_toy_data_reduce_the_loss(tmp_path, config):
    """The demo model (and its Triple version) through mmengine's Runner on generated toy images."""
    import os.path as osp

    import numpy as np
    from mmengine.config import Config
    from mmengine.runner import Runner

    from cbnet.testing import REPO, make_tiny_toy, write_tiny_config

    data_root = make_tiny_toy(str(tmp_path / 'toy'))
    path = write_tiny_config(
        str(tmp_path / 'cfg.py'),
        data_root,
        osp.join(REPO, 'configs', 'cbnet', config),
        max_iters=24,
        flip_prob=0.0,
        extra='param_scheduler = []\nval_cfg = None\nval_dataloader = None\n'
        'val_evaluator = None\nrandomness = dict(seed=0)\n')
    cfg = Config.fromfile(path)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    losses = np.array(hub.get_scalar('train/loss')._log_history)
    assert len(losses) == 24 and np.isfinite(losses).all()
    assert losses[-6:].mean() < 0.7 * losses[:6].mean(), losses
    assisting = hub.get_scalar('train/assist1_loss_cls')._log_history
    assert len(assisting) == 24  # the assisting branch is supervised in every step
