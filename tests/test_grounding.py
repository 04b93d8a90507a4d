"""Grounding detectors (GLIP, Grounding DINO, MM-Grounding-DINO) with composite backbones.

The CB variants encode the text prompt once per training step and share it across branches (each branch keeps its
own visual features, fusion and losses); cbnetify converts their configs and says where the language model comes
from; building without the language model gives one clear error; the toy Grounding DINO trains on the toy data with
its class names as the prompt, and a plain one expanded by single_to_cb predicts the same boxes for the same prompt,
also through mmdet's ``DetInferencer`` with a custom text prompt. The language model is the tiny local BERT of
:mod:`cbnet.testing.language_models` (no download).
"""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict

pytest.importorskip('transformers', reason='the grounding requirements (requirements/grounding.txt) are not installed')

from cbnet import cbnetify  # noqa: E402
from cbnet.models.detectors import LanguageModelNotFound  # noqa: E402
from cbnet.testing import REPO, load_tool, make_tiny_toy, mmdet_config  # noqa: E402
from cbnet.testing.language_models import tiny_bert  # noqa: E402
from cbnet.testing.zoo import copy_plain_weights, tiny_zoo_detector  # noqa: E402
from cbnet.testing.zoo_sweep import batch_needs, sweep_batch  # noqa: E402

GROUNDING_DINO = 'grounding_dino/grounding_dino_r50_scratch_8xb2_1x_coco.py'
GLIP = 'glip/glip_atss_swin-t_b_fpn_dyhead_pretrain_obj365.py'  # early fusion: BERT layers in the head too
TOY = osp.join(REPO, 'configs', '_toy_', 'grounding_dino_r18_toy.py')
DUAL_TOY = osp.join(REPO, 'configs', 'cbnet', 'dual_r18_grounding_dino_toy.py')
PROMPT = 'rectangle . ellipse . triangle .'


def _tiny(rel: str, num_backbones: int = 2, **options):
    plain = tiny_zoo_detector(mmdet_config(rel).model)
    cb = cbnetify(Config(dict(model=plain)), num_backbones=num_backbones).model.to_dict()
    cb.update(options)
    return plain, cb


@pytest.mark.parametrize('rel, num_backbones', [(GROUNDING_DINO, 2), (GROUNDING_DINO, 3), (GLIP, 2)])
def test_the_text_encoder_runs_once_per_batch_and_every_branch_has_its_losses(rel, num_backbones):
    plain_cfg, cb_cfg = _tiny(rel, num_backbones)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cb_cfg))
    model.init_weights()
    model.train()
    encodings = []
    model.language_model.language_backbone.register_forward_hook(lambda *args: encodings.append(1))
    needs = batch_needs(plain_cfg)
    batch = sweep_batch(model, needs, 64, training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert len(encodings) == 1  # not once per branch
    lead = {k for k in losses if not k.startswith('assist')}
    for k in range(1, num_backbones):
        assert {f'assist{k}_{key}' for key in lead} == {key for key in losses if key.startswith(f'assist{k}_')}
    total, _ = model.parse_losses(losses)
    total.backward()
    # the shared text encoding carries the gradient of every branch: its last layer learns from all of them
    bert = model.language_model.language_backbone.body.model
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bert.encoder.layer[-1].parameters())
    encodings.clear()
    model.eval()
    batch = sweep_batch(model, needs, 64, training=False)
    with torch.no_grad():
        results = model.predict(batch['inputs'], batch['data_samples'])
    assert len(encodings) == 1 and len(results[0].pred_instances) > 0
    assert set(results[0].pred_instances.label_names) <= {'rectangle', 'ellipse', 'triangle'}


def test_encoding_once_gives_each_branch_its_own_dict():
    """Grounding DINO replaces ``embedded`` in the dict it gets, GLIP's fusion ``hidden``: the next branch must
    still get the encoder's own output."""
    _, cb_cfg = _tiny(GROUNDING_DINO)
    model = MODELS.build(ConfigDict(cb_cfg)).eval()
    from cbnet.models.detectors.grounding import encoded_once
    with torch.no_grad(), encoded_once(model.language_model):
        first = model.language_model(['rectangle. ellipse.'])
        embedded = first['embedded']
        first['embedded'] = None
        second = model.language_model(['rectangle. ellipse.'])
    assert second['embedded'] is embedded
    assert 'forward' not in vars(model.language_model)  # the method is back


def test_stacked_branch_batching_is_refused_with_the_reason():
    _, cb_cfg = _tiny(GROUNDING_DINO, branch_batching='stacked')
    with pytest.raises(ValueError, match="prepares the text|overrides DetectionTransformer.loss.*'sequential'"):
        MODELS.build(ConfigDict(cb_cfg))


def test_cbnetify_writes_where_the_language_model_comes_from(tmp_path, capsys):
    out = str(tmp_path / 'dual_grounding_dino.py')
    assert load_tool('tools/cbnetify.py').main(['mmdet::' + GROUNDING_DINO, '-o', out]) == 0
    text = open(out).read()
    assert "lang_model_name = 'bert-base-uncased'" in text
    assert 'name=lang_model_name' in text and '# Language model: transformers loads' in text
    assert "set lang_model_name = '/path/to/bert'" in text
    # one line points the written config at a local copy
    local = text.replace("lang_model_name = 'bert-base-uncased'", f'lang_model_name = {tiny_bert()!r}')
    with open(out, 'w') as f:
        f.write(local)
    cfg = Config.fromfile(out)
    assert cfg.model.type == 'CBGroundingDINO' and cfg.model.language_model.name == tiny_bert()
    glip = str(tmp_path / 'dual_glip.py')
    assert load_tool('tools/cbnetify.py').main(['mmdet::' + GLIP, '-o', glip]) == 0
    cfg = Config.fromfile(glip)
    assert cfg.model.type == 'CBGLIP' and 'lang_model_name=lang_model_name' in open(glip).read()


OFFLINE_BUILD = r'''
import cbnet
from mmengine.config import Config
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope
from cbnet.testing import mmdet_config
from cbnet.testing.zoo import tiny_zoo_detector
DefaultScope.get_instance('offline', scope_name='mmdet')
model = tiny_zoo_detector(mmdet_config('%s').model)
model['language_model']['name'] = 'bert-base-uncased'
MODELS.build(cbnet.cbnetify(Config(dict(model=model))).model)
''' % GROUNDING_DINO


@pytest.mark.slow
def test_building_offline_without_the_language_model_is_one_clear_error(tmp_path):
    env = dict(
        os.environ,
        HF_HUB_OFFLINE='1',
        HF_HOME=str(tmp_path / 'hf'),
        OMP_NUM_THREADS='1',
        PYTHONWARNINGS='ignore',
        PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get('PYTHONPATH', '')) if p))
    proc = subprocess.run([sys.executable, '-c', OFFLINE_BUILD],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600,
                          cwd=REPO)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('cbnet.models.detectors.grounding.LanguageModelNotFound: CBGroundingDINO: the language '
                           "model 'bert-base-uncased' cannot be loaded"), last
    assert "set lang_model_name = '/path/to/bert'" in last and 'HF_HUB_OFFLINE' in last
    assert 'During handling of the above exception' not in proc.stderr  # not the hub client's stack trace
    assert issubclass(LanguageModelNotFound, OSError)


# -- the toy Grounding DINO: training, single_to_cb, DetInferencer with a text prompt ------------------------------
def _toy_config(path: str, base: str, data_root: str, max_iters: int) -> str:
    text = f'''
_base_ = {base!r}
data_root = {data_root!r}
lang_model_name = {tiny_bert()!r}
model = dict(language_model=dict(name=lang_model_name), test_cfg=dict(max_per_img=10))
img_scale = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                          'flip_direction', 'text', 'custom_entities'))
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
param_scheduler = []
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={max_iters}))
log_processor = dict(window_size=1)
'''
    with open(path, 'w') as f:
        f.write(text)
    return path


def _train(config: str, work_dir: str):
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.val_cfg = cfg.test_cfg = None  # training only (DetInferencer reads the test pipeline from the file)
    cfg.val_dataloader = cfg.val_evaluator = cfg.test_dataloader = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('grounding_toy')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    plain = _toy_config(str(tmp / 'plain.py'), TOY, data_root, max_iters=2)
    dual = _toy_config(str(tmp / 'dual.py'), DUAL_TOY, data_root, max_iters=2)
    runner = _train(plain, str(tmp / 'plain'))
    images = sorted(glob.glob(osp.join(data_root, 'val', '*.jpg')))
    return dict(
        tmp=tmp,
        plain=plain,
        dual=dual,
        checkpoint=osp.join(str(tmp / 'plain'), 'iter_2.pth'),
        images=images,
        plain_runner=runner)


@pytest.mark.slow
def test_the_dual_toy_grounding_dino_trains_with_the_class_names_as_prompt(toy):
    runner = _train(toy['dual'], str(toy['tmp'] / 'dual'))
    hub = runner.message_hub
    losses = np.array(hub.get_scalar('train/loss')._log_history)
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert len(hub.get_scalar('train/assist1_loss_cls')._log_history) == 2  # the assisting branch is supervised
    assert type(runner.model).__name__ == 'CBGroundingDINO'


@pytest.mark.slow
def test_single_to_cb_expands_a_trained_plain_grounding_dino_with_the_same_predictions(toy):
    from mmdet.apis import DetInferencer
    dst = str(toy['tmp'] / 'dual_from_plain.pth')
    assert load_tool('tools/model_converters/single_to_cb.py').main([toy['checkpoint'], dst, '--config',
                                                                     toy['dual']]) == 0
    results = {}
    for name, config, weights in (('plain', toy['plain'], toy['checkpoint']), ('dual', toy['dual'], dst)):
        inferencer = DetInferencer(model=config, weights=weights, device='cpu', show_progress=False)
        results[name] = [
            inferencer(toy['images'], texts=PROMPT, custom_entities=True, pred_score_thr=0.0, no_save_pred=True),
            inferencer(toy['images'][:1], texts='triangle', custom_entities=True, pred_score_thr=0.0)
        ]
    assert type(inferencer.model).__name__ == 'CBGroundingDINO'
    for plain, dual in zip(results['plain'], results['dual']):
        for a, b in zip(plain['predictions'], dual['predictions']):
            assert len(a['bboxes']) == len(b['bboxes']) > 0
            np.testing.assert_allclose(b['bboxes'], a['bboxes'], atol=1e-3)
            np.testing.assert_allclose(b['scores'], a['scores'], atol=1e-5)
            assert b['labels'] == a['labels']
    assert set(results['dual'][1]['predictions'][0]['labels']) == {0}  # one entity in the custom prompt


def test_copy_plain_weights_covers_the_language_model():
    """The CB detector's text encoder is the plain one's (same keys): what single_to_cb relies on."""
    plain_cfg, cb_cfg = _tiny(GROUNDING_DINO)
    plain, cb = MODELS.build(ConfigDict(plain_cfg)), MODELS.build(ConfigDict(cb_cfg))
    copy_plain_weights(plain, cb)
    for key, value in plain.state_dict().items():
        if key.startswith(('language_model.', 'text_feat_map.')):
            assert torch.equal(cb.state_dict()[key], value), key
