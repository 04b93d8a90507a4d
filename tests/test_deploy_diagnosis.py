"""A disagreement between a deployed model and PyTorch comes with its cause (:mod:`cbnet.deploy.diagnosis`): the
exported logic run in PyTorch against mmdet, and PyTorch against itself under float32-level input noise."""
import os.path as osp

import pytest
import torch

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')

from cbnet.deploy import padding  # noqa: E402
from cbnet.deploy.diagnosis import diagnose  # noqa: E402
from cbnet.testing.backbones import torch_threads  # noqa: E402
from cbnet.testing.deploy_cases import DeployCase, write_case, write_image  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DYNAMIC = osp.join(ROOT, 'configs', 'deploy', 'detection_onnxruntime_dynamic.py')


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def padded_case(tmp_path):
    """A tiny Dual Faster R-CNN and a 150x170 image, resized to 141x160 and padded to 160x160."""
    cfg, ckpt = write_case(DeployCase('FasterRCNN'), str(tmp_path), size=(160, 160))
    return cfg, ckpt, write_image(str(tmp_path / 'image.png'), (150, 170), seed=1)


def test_the_export_logic_is_mmdets_and_the_tiny_model_is_stable(padded_case):
    cfg, ckpt, img = padded_case
    (result, ) = diagnose(DYNAMIC, cfg, ckpt, [img])
    assert result.logic is not None and result.logic.ok, result.lines()
    assert result.logic.num_torch > 0 and result.noise.ok, result.lines()
    assert 'the backend computes differently' in result.verdict


def test_an_export_logic_that_is_not_mmdets_is_named(padded_case, monkeypatch):
    """Without the graph padding the exported logic clips boxes at the padded border (what MMDeploy alone does):
    the diagnosis finds it in PyTorch, without any backend."""
    monkeypatch.setattr(padding, 'with_padding_in_graph', lambda deploy_cfg, model_cfg: (deploy_cfg, model_cfg))
    cfg, ckpt, img = padded_case
    (result, ) = diagnose(DYNAMIC, cfg, ckpt, [img])
    assert result.logic is not None and not result.logic.ok, result.lines()
    assert 'the exported logic itself differs' in result.verdict


@pytest.mark.slow
def test_a_full_size_random_r50_is_chaotic_in_pytorch_itself(tmp_path):
    """mmdet's R50 Faster R-CNN with random calibrated weights: 1000 proposals x 80 classes of near-ties, so
    PyTorch moves by more than the tolerance under 1e-6 relative input noise; the export logic still agrees."""
    import mmcv
    import numpy as np
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from cbnet.analysis import load_config
    from cbnet.testing.deploy_cases import randomize
    init_default_scope('mmdet')
    cfg = load_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    for step in cfg.test_pipeline:
        if step['type'] == 'Resize':
            step.update(scale=(170, 150), keep_ratio=True)
    cfg.test_dataloader.dataset.pipeline = cfg.test_pipeline
    model = MODELS.build(cfg.model)
    model.init_weights()
    randomize(model, seed=0, size=(150, 170))
    ckpt = str(tmp_path / 'r50.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    img = str(tmp_path / 'image.jpg')
    mmcv.imwrite(np.random.default_rng(0).integers(0, 255, (150, 170, 3), dtype=np.uint8), img)
    (result, ) = diagnose(DYNAMIC, cfg, ckpt, [img])
    assert result.logic is not None and result.logic.ok and result.logic.num_torch == 100, result.lines()
    assert not result.noise.ok and result.noise.max_score_diff > 1e-4, result.lines()
    assert 'near-ties' in result.verdict
