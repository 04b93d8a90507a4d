"""The paper configs (configs/cbnet/*.py, toy ones excluded) load, build, have the paper's parameter counts and,
for a representative subset, predict at a small size.

Counts are of all parameters (the reported tables round to the million); each model is built once, counted,
optionally run, and deleted. Every ``Pretrained`` init_cfg is dropped (``strip_pretrained``): no checkpoint is
downloaded.
"""
import gc
import glob
import os.path as osp
import re
from typing import Optional

import pytest
import torch
from mmdet.models.backbones import ResNet, SwinTransformer
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dataset import Compose
from mmpretrain.models.backbones import ConvNeXt

from cbnet.testing import tiny_batch
from cbnet.testing.language_models import is_grounding, tiny_bert, use_language_model
from cbnet.utils.configs import strip_pretrained

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs', 'cbnet')

#: parameter counts reported by the CBNetV2 paper / official README (millions)
PAPER_PARAMS_M = {
    'dual_r50_faster_rcnn.py': 69,
    'dual_res2net101_dcn_cascade_rcnn.py': 141,  # Shared2FC cascade heads
    'dual_res2net101_dcn_cascade_rcnn_4conv1fc.py': 146,  # 4conv1fc GIoU heads
    'dual_swin_t_mask_rcnn.py': 76,
    'dual_swin_t_cascade_mask_rcnn.py': 114,
    'dual_swin_s_cascade_mask_rcnn.py': 156,
    'dual_swin_b_htc.py': 231,
    'dual_swin_b_htc_4conv1fc.py': 235,
    'dual_swin_l_htc.py': 453,
    'dual_eva02_l_cascade_mask_rcnn_1536.py': 674,  # CB-EVA02 (official README)
}
#: configs that also predict a 1x3x128x128 image (DINO: 256x256) in eval mode: two-stage, single-stage,
#: Triple, cascade with masks, HTC with its semantic branch; ResNet, Res2Net with DCN, ConvNeXt and Swin backbones
FORWARD = {
    'dual_r50_faster_rcnn.py', 'triple_r50_faster_rcnn.py', 'dual_r50_atss.py', 'dual_res2net101_dcn_cascade_rcnn.py',
    'dual_convnext_t_cascade_mask_rcnn.py', 'dual_swin_l_htc.py', 'dual_r50_dino.py', 'dual_cspnext_l_rtmdet.py',
    'dual_vit_b_mask_rcnn_simple_fpn.py', 'dual_eva02_l_cascade_mask_rcnn_1536.py'
}
#: builds (+ predicts) that take more than ~15 s on 2 loaded cores
SLOW = {
    'dual_res2net101_dcn_cascade_rcnn.py', 'dual_res2net101_dcn_cascade_rcnn_4conv1fc.py',
    'dual_convnext_t_cascade_mask_rcnn.py', 'dual_swin_l_htc.py', 'dual_swin_l_htc_without_semantic.py',
    'dual_eva02_l_cascade_mask_rcnn_1536.py'
}
TOLERANCE = 0.01


def paper_configs():
    return sorted(osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')) if not p.endswith('_toy.py'))


def built_configs():
    """The paper configs whose models and pipelines are built here: an SWA config (``*_swa.py``) trains its normal
    config's model on its data, which ``tests/test_swa_ema.py`` checks (same ``model`` and dataloader dicts), so they
    are not built twice."""
    return [name for name in paper_configs() if not name.endswith('_swa.py')]


def few_detections(test_cfg) -> None:
    """Few proposals/detections: the 4conv1fc cascades on 1000 RoIs would dominate the test's time."""
    for stage in ('rpn', 'rcnn', None):
        node = test_cfg.get(stage) if stage else test_cfg
        if node is not None and 'max_per_img' in node:
            node.update(max_per_img=20, **({'nms_pre': 100} if 'nms_pre' in node else {}))


def build(name: str):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    if name in FORWARD:
        few_detections(cfg.model.test_cfg)
    assert cfg.get('custom_imports', {}).get('imports') and 'cbnet' in cfg.custom_imports['imports'], \
        f'{name} must import cbnet (custom_imports)'
    strip_pretrained(cfg.model)
    use_language_model(cfg.model, tiny_bert())  # grounding detectors: no download (counted without it)
    return cfg, MODELS.build(cfg.model)


def header_count(name: str) -> Optional[float]:
    """The parameter count a config's header states (``Measured: 75.58M parameters``), if it states one."""
    with open(osp.join(CONFIG_DIR, name)) as f:
        found = re.search(r'Measured: ([0-9.]+)M parameters', f.read())
    return float(found.group(1)) if found else None


def within(count: int, paper_m: Optional[float]) -> bool:
    return paper_m is None or abs(count / 1e6 - paper_m) <= TOLERANCE * paper_m


def test_every_paper_config_is_checked():
    names = paper_configs()
    assert set(PAPER_PARAMS_M) <= set(names), f'missing paper configs: {set(PAPER_PARAMS_M) - set(names)}'
    assert FORWARD <= set(names) and SLOW <= set(names)


def test_tolerance_check_rejects_a_wrong_count():
    assert within(453_010_000, 453) and within(68_310_000, 69) and not within(68_300_000, 69)
    assert not within(228_090_000, 231)  # Swin-B HTC without its semantic head: 1.3% short of the paper


@pytest.mark.parametrize('name', built_configs())
def test_paper_config_pipelines_build(name):
    """The train/val/test pipelines (multi-scale resizes, semantic maps) are valid transforms."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = Compose(cfg[loader].dataset.pipeline)
        assert pipeline.transforms, f'{name}: empty {loader} pipeline'
    loads = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'LoadAnnotations']
    with_semantic = cfg.model.get('roi_head', {}).get('semantic_head') is not None
    assert loads and loads[0].get('with_seg', False) == with_semantic, \
        f'{name}: load semantic maps in training iff the model has a semantic head'
    assert (cfg.model.data_preprocessor.get('pad_seg', False)) == with_semantic


@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in built_configs()])
def test_paper_config(name):
    cfg, model = build(name)
    try:
        assert type(model).__name__.startswith('CB'), f'{name}: the detector type must be a CB detector'
        official_family = isinstance(model.backbone.branches[0], (ResNet, SwinTransformer, ConvNeXt))
        assert type(model.backbone).__name__ in ('CBResNet', 'CBRes2Net', 'CBSwinTransformer', 'CBConvNeXt') or (
            type(model.backbone).__name__ == 'CBNet' and not official_family), \
            f'{name}: use the official-argument backbone alias (CBNet only for families the official code lacks)'
        count = sum(p.numel() for p in model.parameters())
        if is_grounding(cfg.model):  # the header states the count without the language model
            count -= sum(p.numel() for p in model.language_model.parameters())
        paper_m = PAPER_PARAMS_M.get(name)
        paper = f'paper {paper_m}M' if paper_m else 'no paper count'
        print(f'\n{name}: {count / 1e6:.2f}M parameters ({paper})')
        assert within(count, paper_m), \
            f'{name}: {count / 1e6:.2f}M parameters, more than {TOLERANCE:.0%} from the paper\'s {paper_m}M'
        stated = header_count(name)
        assert stated is None or abs(count / 1e6 - stated) < 0.006, \
            f'{name}: its header says {stated}M parameters, the model has {count / 1e6:.2f}M'

        if name in FORWARD:
            model.eval()
            # DINO selects its 900 queries among the encoder's tokens: 256 px gives enough of them
            batch = tiny_batch(model, batch_size=1, size=256 if 'dino' in name else 128, training=False)
            with torch.no_grad():
                results = model.predict(batch['inputs'], batch['data_samples'])
            assert len(results) == 1
            pred = results[0].pred_instances
            assert pred.bboxes.shape[-1] == 4 and len(pred.scores) == len(pred.labels) <= 20
            assert ('masks' in pred) == ('mask_head' in cfg.model.get('roi_head', {})), \
                f'{name}: masks predicted iff the detector has a mask head'
    finally:
        del model
        gc.collect()
