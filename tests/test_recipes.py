"""Every config in configs/cbnet trains and tests with the recipe it claims (read with Config.fromfile, no build).

``OFFICIAL`` holds, per config, the values of the official CBNetV2 config it reproduces (MMDetection 2.14 files:
backbone, heads, train/test cfg, pipelines, batch and lr, schedule, weight decay, mixed precision, pretrained
file). Configs without an official counterpart are in ``MMDET_RECIPE``: they must keep the recipe of the mmdet
config they derive from, except for the backbone (and the differences listed there). A config in neither table
fails ``test_every_config_has_a_recipe_row``: a new config cannot be forgotten.
"""
import glob
import inspect
import os.path as osp
import re
from typing import Any, Dict, List, Optional

import pytest
import torch.nn as nn
from mmcv.ops import soft_nms
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, build_optim_wrapper

from cbnet.testing import family, mmdet_config
from cbnet.utils.configs import resolve_config_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs', 'cbnet')
OFFICIAL_GPUS = 8  # the official runs (the official README's command): total batch = 8 x images per GPU

SWIN_RELEASE = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
SWIN_NO_DECAY = ('absolute_pos_embed', 'norm', 'relative_position_bias_table')
NMS = dict(type='nms', iou_threshold=0.5)
SOFT_NMS = dict(type='soft_nms', iou_threshold=0.5, sigma=0.5, min_score=0.001, method='linear')
SCALE_1600 = dict(train=('range', ((1600, 400), (1600, 1400))), test=(1600, 1400))
SCALE_DETR = dict(train=('detr-crop', tuple(range(480, 801, 32)), (384, 600), {1333}, True), test=(1333, 800))
SCALE_1333 = dict(train=('fixed', (1333, 800)), test=(1333, 800))
WARMUP_500 = ('LinearLR', 0.001, 500)
ADAMW = dict(type='AdamW', betas=(0.9, 0.999), weight_decay=0.05)
SGD = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
#: box heads: (kind, class-agnostic, decoded boxes, loss, loss weight, norm) per stage
HEAD_2FC_L1 = ('2fc', False, False, 'L1Loss', 1.0, None)
HEAD_2FC_SMOOTHL1_AGNOSTIC = ('2fc', True, False, 'SmoothL1Loss', 1.0, None)
HEAD_4CONV1FC = ('4conv1fc', False, True, 'GIoULoss', 10.0, 'SyncBN')
HEAD_4CONV1FC_AGNOSTIC = ('4conv1fc', True, True, 'GIoULoss', 10.0, 'SyncBN')

_FASTER = dict(
    detector='CBFasterRCNN',
    backbone='CBResNet',
    del_stages=1,
    drop_path=None,
    dcn=None,
    pretrained='torchvision://resnet50',
    assist_loss_weights=[0.5],
    assist_proposals='lead',
    rpn_loss=('L1Loss', None),
    rpn_proposals=(2000, 1000),
    match_low_quality=(False, ),
    bbox_heads=(HEAD_2FC_L1, ),
    mask_heads=(),
    semantic=None,
    test_nms=NMS,
    score_thr=0.05,
    max_per_img=100,
    scales=SCALE_1333,
    flip=0.5,
    with_seg=False,
    batch_per_gpu=2,
    optimizer=SGD,
    no_decay=(),
    lr_mult=(),
    clip_grad=None,
    amp=None,
    epochs=12,
    milestones=[8, 11],
    warmup=WARMUP_500)
_SWIN_T_MASK = dict(
    _FASTER,
    detector='CBMaskRCNN',
    backbone='CBSwinTransformer',
    arch=(96, [2, 2, 6, 2], [3, 6, 12, 24], 7),
    drop_path=0.2,
    pretrained=SWIN_RELEASE + 'swin_tiny_patch4_window7_224.pth',
    match_low_quality=(True, ),
    mask_heads=(('FCNMaskHead', 4), ),
    scales=SCALE_DETR,
    optimizer=dict(ADAMW, lr=1e-4),
    no_decay=SWIN_NO_DECAY,
    amp='dynamic',
    epochs=36,
    milestones=[27, 33])
_SWIN_T_CASCADE = dict(
    _SWIN_T_MASK,
    detector='CBCascadeRCNN',
    rpn_loss=('SmoothL1Loss', 1 / 9),
    rpn_proposals=(2000, 2000),
    match_low_quality=(False, False, False),
    bbox_heads=(HEAD_4CONV1FC, ) * 3)
_SWIN_B_HTC = dict(
    _SWIN_T_CASCADE,
    detector='CBHybridTaskCascade',
    arch=(128, [2, 2, 18, 2], [4, 8, 16, 32], 7),
    drop_path=0.3,
    pretrained=SWIN_RELEASE + 'swin_base_patch4_window7_224_22k.pth',
    match_low_quality=(True, True, True),
    bbox_heads=(HEAD_2FC_SMOOTHL1_AGNOSTIC, ) * 3,
    mask_heads=(('HTCMaskHead', 4), ) * 3,
    semantic=('FusedSemanticHead', 183, 0.2),
    test_nms=SOFT_NMS,
    score_thr=0.001,
    scales=SCALE_1600,
    with_seg=True,
    batch_per_gpu=1,
    optimizer=dict(ADAMW, lr=5e-5),
    epochs=20,
    milestones=[16, 19])
_SWIN_L_HTC = dict(
    _SWIN_B_HTC,
    arch=(192, [2, 2, 18, 2], [6, 12, 24, 48], 7),
    drop_path=0.2,
    pretrained=SWIN_RELEASE + 'swin_large_patch4_window7_224_22k.pth',
    bbox_heads=(HEAD_4CONV1FC_AGNOSTIC, ) * 3,
    epochs=12,
    milestones=[8, 11])
_RES2NET = dict(
    _FASTER,
    detector='CBCascadeRCNN',
    backbone='CBRes2Net',
    dcn=('DCNv2', (False, True, True, True)),
    pretrained='open-mmlab://res2net101_v1d_26w_4s',
    rpn_loss=('SmoothL1Loss', 1 / 9),
    rpn_proposals=(2000, 2000),
    match_low_quality=(False, False, False),
    bbox_heads=(HEAD_2FC_SMOOTHL1_AGNOSTIC, ) * 3,
    test_nms=SOFT_NMS,
    score_thr=0.001,
    scales=SCALE_1600,
    amp='dynamic',
    epochs=20,
    milestones=[16, 19])

#: config -> (official CBNetV2 config name, the recipe values it sets)
HEAD_4CONV1FC_LN = ('4conv1fc', False, False, 'L1Loss', 1.0, 'LN2d')
HEAD_4CONV1FC_LN_AGNOSTIC = ('4conv1fc', True, False, 'SmoothL1Loss', 1.0, 'LN2d')
_VITDET_B = dict(
    detector='CBMaskRCNN',
    backbone='CBNet',
    assist_loss_weights=[0.5],
    assist_proposals='lead',
    bbox_heads=(HEAD_4CONV1FC_LN, ),
    mask_heads=(('FCNMaskHead', 4), ),
    scales=dict(train=('jitter', (1024, 1024), (0.1, 2.0)), test=(1024, 1024)),
    batch_per_gpu=8,
    optimizer=dict(ADAMW, lr=1e-4, weight_decay=0.1),
    constructor='CBLearningRateDecayOptimWrapperConstructor',
    layer_decay=0.7,
    amp='dynamic',
    epochs=None,
    iters=184375,
    milestones=[163889, 177546],
    warmup=('LinearLR', 0.001, 250),
    ema=None)
_CB_EVA02_L = dict(
    _VITDET_B,
    detector='CBCascadeRCNN',
    bbox_heads=(HEAD_4CONV1FC_LN_AGNOSTIC, ) * 3,
    scales=dict(train=('jitter', (1536, 1536), (0.1, 2.0)), test=(1536, 1536)),
    optimizer=dict(ADAMW, lr=4e-5, weight_decay=0.1),
    layer_decay=0.8,
    iters=40000,
    milestones=None,
    warmup=('LinearLR', 0.001, 400),  # 1% of 40k; constant after it
    ema=1e-4)  # decay 0.9999

OFFICIAL: Dict[str, tuple] = {
    'dual_r50_faster_rcnn.py': ('faster_rcnn_cbv2d1_r50_fpn_1x_coco.py', _FASTER),
    'triple_r50_faster_rcnn.py': (None, dict(_FASTER, assist_loss_weights=[0.5, 0.5])),  # official recipe, K=3
    'dual_res2net101_dcn_cascade_rcnn.py':
    ('cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_coco.py', _RES2NET),
    'dual_res2net101_dcn_cascade_rcnn_4conv1fc.py':
    ('cascade_rcnn_cbv2d1_r2_101_mdconv_fpn_20e_fp16_ms400-1400_giou_4conv1f_coco.py',
     dict(_RES2NET, bbox_heads=(HEAD_4CONV1FC, ) * 3)),
    'dual_swin_t_mask_rcnn.py': ('mask_rcnn_cbv2_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py',
                                 _SWIN_T_MASK),
    'dual_swin_t_cascade_mask_rcnn.py':
    ('cascade_mask_rcnn_cbv2_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py',
     dict(_SWIN_T_CASCADE, mask_heads=(('FCNMaskHead', 4), ))),
    'dual_swin_s_cascade_mask_rcnn.py':
    ('cascade_mask_rcnn_cbv2_swin_small_patch4_window7_mstrain_400-1400_adamw_3x_coco.py',
     dict(
         _SWIN_T_CASCADE,
         arch=(96, [2, 2, 18, 2], [3, 6, 12, 24], 7),
         pretrained=SWIN_RELEASE + 'swin_small_patch4_window7_224.pth',
         mask_heads=(('FCNMaskHead', 4), ),
         test_nms=SOFT_NMS,
         score_thr=0.001,
         scales=SCALE_1600,
         batch_per_gpu=1,
         optimizer=dict(ADAMW, lr=5e-5))),
    'dual_swin_b_htc.py': ('htc_cbv2_swin_base_patch4_window7_mstrain_400-1400_adamw_20e_coco.py', _SWIN_B_HTC),
    'dual_swin_b_htc_4conv1fc.py': ('htc_cbv2_swin_base_patch4_window7_mstrain_400-1400_giou_4conv1f_adamw_20e_coco.py',
                                    dict(_SWIN_B_HTC, bbox_heads=(HEAD_4CONV1FC_AGNOSTIC, ) * 3)),
    'dual_swin_l_htc.py': ('htc_cbv2_swin_large_patch4_window7_mstrain_400-1400_giou_4conv1f_adamw_1x_coco.py',
                           _SWIN_L_HTC),
    # the paper's models without HTC's semantic branch (no COCO-stuff maps needed); the rest of the recipe as above
    'dual_swin_b_htc_without_semantic.py': (None, dict(_SWIN_B_HTC, semantic=None, with_seg=False)),
    'dual_swin_l_htc_without_semantic.py': (None, dict(_SWIN_L_HTC, semantic=None, with_seg=False)),
    # plain ViTs: ViTDet's 100-epoch ViT-B recipe and the CBNetV2 authors' CB-EVA02-L recipe (no mmdet 2 config)
    'dual_vit_b_mask_rcnn_simple_fpn.py': (None, _VITDET_B),
    'dual_eva02_l_cascade_mask_rcnn_1536.py': (None, _CB_EVA02_L),
}
#: config -> (the mmdet config whose recipe it keeps, the recipe keys that differ: their value, or a function of
#: the mmdet value that gives it)
_DUAL = dict(del_stages=1, assist_loss_weights=[0.5])


def _with_composition_at_full_lr(mmdet_lr_mult: tuple) -> tuple:
    """The recipe's lr multipliers, plus the new composite connections at the full lr."""
    return tuple(sorted(set(mmdet_lr_mult) | {('backbone.composition', 1.0)}))


MMDET_RECIPE: Dict[str, tuple] = {
    'dual_r50_mask_rcnn.py': ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
                              dict(_DUAL, detector='CBMaskRCNN', backbone='CBResNet', assist_proposals='lead')),
    'dual_r50_cascade_rcnn.py': ('mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
                                 dict(_DUAL, detector='CBCascadeRCNN', backbone='CBResNet', assist_proposals='lead')),
    'dual_r50_atss.py': ('mmdet::atss/atss_r50_fpn_1x_coco.py', dict(_DUAL, detector='CBATSS', backbone='CBResNet')),
    'dual_convnext_t_cascade_mask_rcnn.py':
    ('mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py',
     dict(
         _DUAL,
         detector='CBCascadeRCNN',
         backbone='CBConvNeXt',
         assist_proposals='lead',
         constructor='CBLearningRateDecayOptimizerConstructor')),
    'dual_cspnext_l_rtmdet.py': ('mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
                                 dict(_DUAL, detector='CBRTMDet', backbone='CBNet')),
    'dual_hrnet_w32_cascade_rcnn.py': ('mmdet::hrnet/cascade-rcnn_hrnetv2p-w32-20e_coco.py',
                                       dict(_DUAL, detector='CBCascadeRCNN', backbone='CBNet',
                                            assist_proposals='lead')),
    'dual_r50_dino.py': ('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
                         dict(_DUAL, detector='CBDINO', backbone='CBResNet', lr_mult=_with_composition_at_full_lr)),
    'dual_swin_l_dino.py':
    ('mmdet::dino/dino-5scale_swin-l_8xb2-36e_coco.py',
     dict(_DUAL, detector='CBDINO', backbone='CBSwinTransformer', lr_mult=_with_composition_at_full_lr)),
    'dual_swin_s_mask2former_instance.py':
    ('mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py',
     dict(_DUAL, detector='CBMask2Former', backbone='CBSwinTransformer', lr_mult=_with_composition_at_full_lr)),
    'dual_swin_t_grounding_dino_finetune.py':
    ('mmdet::grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py',
     dict(_DUAL, detector='CBGroundingDINO', backbone='CBSwinTransformer', lr_mult=_with_composition_at_full_lr)),
    'dual_swin_t_mm_grounding_dino_finetune.py':
    ('mmdet::mm_grounding_dino/coco/grounding_dino_swin-t_finetune_16xb4_1x_coco.py',
     dict(_DUAL, detector='CBGroundingDINO', backbone='CBSwinTransformer', lr_mult=_with_composition_at_full_lr)),
}


# -- reading a recipe out of a config -------------------------------------------------------------------------------
def _transforms(pipeline: List[dict]) -> List[dict]:
    """The transforms of a pipeline, RandomChoice branches flattened."""
    out = []
    for t in pipeline:
        out.append(t)
        for branch in t.get('transforms', []) if t['type'] == 'RandomChoice' else []:
            out += _transforms(branch)
    return out


def train_scales(pipeline: List[dict]) -> tuple:
    """('range', (lo, hi)) | ('detr-crop', short sides, crop size) | ('fixed', scale) | ('jitter', scale, ratios)."""
    transforms = _transforms(pipeline)
    types = {t['type']: t for t in transforms}
    if 'RandomChoice' in types:
        choices = [t for t in transforms if t['type'] == 'RandomChoiceResize']
        shorts = tuple(min(s) for s in choices[0]['scales'])
        longs = {max(s) for c in choices for s in c['scales']}
        same_end = tuple(min(s) for s in choices[-1]['scales']) == shorts  # both DETR branches end at these scales
        return 'detr-crop', shorts, tuple(types['RandomCrop']['crop_size']), longs, same_end
    if 'RandomResize' in types:
        resize = types['RandomResize']
        if resize.get('ratio_range') is not None:
            return 'jitter', tuple(resize['scale']), tuple(resize['ratio_range'])
        assert resize['keep_ratio']
        return 'range', tuple(tuple(s) for s in resize['scale'])
    return 'fixed', tuple(types['Resize']['scale'])


def eval_scale(pipeline: List[dict]) -> tuple:
    resizes = [t for t in pipeline if t['type'] in ('Resize', 'FixScaleResize')]  # the latter: grounding configs
    assert len(resizes) == 1 and resizes[0]['keep_ratio'] and 'RandomFlip' not in {t['type'] for t in pipeline}
    return tuple(resizes[0]['scale'])


def _nms(cfg: Optional[dict]) -> Optional[dict]:
    """The test NMS with mmcv's defaults of soft_nms filled in (the official configs relied on them)."""
    if cfg is None:
        return None
    nms = dict(cfg)
    if nms['type'] == 'soft_nms':
        defaults = inspect.signature(soft_nms).parameters
        for key in ('sigma', 'min_score', 'method'):
            nms.setdefault(key, defaults[key].default)
    return nms


def _head_kind(head: dict) -> str:
    kinds = {'Shared2FCBBoxHead': '2fc', 'Shared4Conv1FCBBoxHead': '4conv1fc'}
    if head['type'] == 'ConvFCBBoxHead':
        return f"{head.get('num_shared_convs', 0)}conv{head.get('num_shared_fcs', 0)}fc"
    return kinds.get(head['type'], head['type'])


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [] if x is None else [x]


def recipe(cfg: Config) -> Dict[str, Any]:
    """The recipe values of a config, normalised so that mmdet 3 spellings compare with the official ones.

    Works for every detector kind (keys that do not apply are None or empty), so that configs derived from any
    mmdet recipe can be compared with it.
    """
    model, backbone = cfg.model, cfg.model.backbone
    train_cfg, test_cfg = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    roi = model.get('roi_head') or {}
    rcnn_test = test_cfg.get('rcnn', test_cfg)
    rpn = model.get('rpn_head')
    ow = cfg.optim_wrapper
    wrapper = AmpOptimWrapper if ow.get('type') == 'AmpOptimWrapper' else None
    schedulers = {s['type']: s for s in _as_list(cfg.param_scheduler)}
    warmup = schedulers.get('LinearLR')
    paramwise = ow.get('paramwise_cfg') or {}
    # a composite's parameter names have a branch index: backbone.branches.<k>.stages... = backbone.stages...
    custom_keys = {
        re.sub(r'^backbone\.branches\.\d+\.', 'backbone.', k): v
        for k, v in paramwise.get('custom_keys', {}).items()
    }
    train_pipeline = cfg.train_dataloader.dataset.pipeline
    loads = [t for t in train_pipeline if t['type'] == 'LoadAnnotations']
    flips = [t for t in _transforms(train_pipeline) if t['type'] == 'RandomFlip']
    semantic = roi.get('semantic_head')
    out = dict(
        detector=model.type,
        backbone=backbone.type,
        del_stages=backbone.get('cb_del_stages', backbone.get('del_stages')),
        drop_path=backbone.get('drop_path_rate'),
        dcn=(backbone.dcn.type, tuple(backbone.stage_with_dcn)) if backbone.get('dcn') else None,
        pretrained=(backbone.get('init_cfg') or {}).get('checkpoint'),
        assist_loss_weights=_as_list(model.get('assist_loss_weights', 0.5)),
        assist_proposals=model.get('assist_proposals'),
        rpn_loss=(rpn.loss_bbox.type, rpn.loss_bbox.get('beta')) if rpn else None,
        rpn_proposals=(train_cfg.rpn_proposal.nms_pre, train_cfg.rpn_proposal.max_per_img) if rpn else None,
        match_low_quality=tuple(a.assigner.get('match_low_quality', True) for a in _as_list(train_cfg.get('rcnn'))),
        bbox_heads=tuple((_head_kind(h), h.reg_class_agnostic, h.get('reg_decoded_bbox', False), h.loss_bbox.type,
                          h.loss_bbox.loss_weight, (h.get('norm_cfg') or {}).get('type'))
                         for h in _as_list(roi.get('bbox_head'))),
        mask_heads=tuple((h.type, h.num_convs) for h in _as_list(roi.get('mask_head'))),
        semantic=(semantic.type, semantic.num_classes, semantic.loss_seg.loss_weight) if semantic else None,
        test_nms=_nms(rcnn_test.get('nms')),
        score_thr=rcnn_test.get('score_thr'),
        max_per_img=rcnn_test.get('max_per_img'),
        scales=dict(train=train_scales(train_pipeline), test=eval_scale(cfg.test_dataloader.dataset.pipeline)),
        flip=flips[0]['prob'] if flips else None,
        with_seg=bool(loads and loads[0].get('with_seg', False)),
        batch_per_gpu=cfg.train_dataloader.batch_size,
        optimizer={
            k: v
            for k, v in ow.optimizer.items() if k != '_scope_'
        },
        constructor=ow.get('constructor'),
        no_decay=tuple(sorted({k
                               for k, v in custom_keys.items() if v.get('decay_mult') == 0})),
        lr_mult=tuple(sorted({(k, v['lr_mult'])
                              for k, v in custom_keys.items() if 'lr_mult' in v})),
        clip_grad=ow.get('clip_grad'),
        amp=(ow.get('loss_scale') or inspect.signature(wrapper).parameters['loss_scale'].default) if wrapper else None,
        epochs=cfg.train_cfg.get('max_epochs'),
        iters=cfg.train_cfg.get('max_iters'),
        milestones=list(schedulers['MultiStepLR']['milestones']) if 'MultiStepLR' in schedulers else None,
        warmup=(warmup['type'], warmup['start_factor'], warmup['end']) if warmup and not warmup['by_epoch'] else None,
        base_batch_size=(cfg.get('auto_scale_lr') or {}).get('base_batch_size'),
        layer_decay=paramwise.get('layer_decay_rate', paramwise.get('decay_rate')),
        ema=next((h.get('momentum') for h in cfg.get('custom_hooks', []) if h['type'] == 'EMAHook'), None))
    if backbone.type == 'CBSwinTransformer':
        out['arch'] = (backbone.get('embed_dim'), backbone.get('depths'), backbone.get('num_heads'),
                       backbone.get('window_size'))
    return out


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def configs() -> List[str]:
    """The configs with a recipe row. An SWA config (``*_swa.py``) is its normal config (checked here) with the SWA
    stage of ``configs/_base_/swa_12e.py``; ``tests/test_swa_ema.py`` checks both halves."""
    return sorted(
        osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')) if not p.endswith(('_toy.py', '_swa.py')))


# -- the tests ------------------------------------------------------------------------------------------------------
def test_every_config_has_a_recipe_row():
    missing = [n for n in configs() if n not in OFFICIAL and n not in MMDET_RECIPE]
    assert not missing, (f'{missing}: add a row to tests/test_recipes.py, OFFICIAL (the official CBNetV2 values) or '
                         'MMDET_RECIPE (the mmdet config whose recipe it keeps)')
    assert not (set(OFFICIAL) | set(MMDET_RECIPE)) - set(configs()), 'rows for configs that do not exist'


@pytest.mark.parametrize('name', sorted(OFFICIAL))
def test_paper_config_has_the_official_recipe(name):
    official_file, expected = OFFICIAL[name]
    cfg = load(name)
    got = recipe(cfg)
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, f'{name} differs from {official_file or "the official recipe"}: {{key: (config, official)}} ' \
                      f'{wrong}'
    # the official runs: 8 GPUs; mmdet 3 states the total batch the lr is for in auto_scale_lr
    assert got['base_batch_size'] == OFFICIAL_GPUS * got['batch_per_gpu'], \
        f'{name}: auto_scale_lr.base_batch_size must be {OFFICIAL_GPUS} GPUs x {got["batch_per_gpu"]} images'
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    if official_file:
        header = open(osp.join(CONFIG_DIR, name)).read().split('\n_base_ =')[0]
        named = official_file in ''.join(header.replace('#', ' ').split())
        assert named, f'{name}: its header comment must name the official config {official_file}'


@pytest.mark.parametrize('name', sorted(MMDET_RECIPE))
def test_config_keeps_its_mmdet_recipe(name):
    source, allowed = MMDET_RECIPE[name]
    got, base = recipe(load(name)), recipe(Config.fromfile(resolve_config_path(source)))
    for key in ('arch', 'pretrained', 'drop_path'):  # the backbone is what changes
        got.pop(key, None), base.pop(key, None)
    wrong = {k: (got[k], base[k]) for k in got if got[k] != base[k] and k not in allowed}
    assert not wrong, f'{name} differs from the recipe of {source}: {{key: (config, mmdet)}} {wrong}'
    for key, value in allowed.items():
        value = value(base[key]) if callable(value) else value
        assert got[key] == value, f'{name}: {key} is {got[key]!r}, expected {value!r}'


def test_recipe_reader_tells_the_recipes_apart():
    """The reader is not blind: it sees soft-NMS, batch, warm-up, heads and scales where the recipes differ."""
    names = ('dual_r50_faster_rcnn.py', 'dual_swin_s_cascade_mask_rcnn.py', 'dual_swin_l_htc.py')
    faster, swin_s, htc_l = (recipe(load(n)) for n in names)
    mmdet_swin = recipe(mmdet_config('swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'))
    assert faster['test_nms'] == NMS and swin_s['test_nms'] == SOFT_NMS and faster['amp'] is None
    assert mmdet_swin['warmup'] == ('LinearLR', 0.001, 1000) and mmdet_swin['amp'] == 'dynamic'
    assert swin_s['bbox_heads'][0][1] is False and htc_l['bbox_heads'][0][1] is True  # class-specific vs agnostic
    assert swin_s['scales'] == SCALE_1600 and mmdet_swin['scales'] == SCALE_DETR
    assert swin_s['batch_per_gpu'] == 1 and faster['batch_per_gpu'] == 2


def test_swin_weight_decay_exempts_norms_and_position_tables_but_not_head_syncbn():
    """The substring custom_keys of the Swin recipe, applied by mmengine to a tiny Dual-Swin + 4conv1fc head."""
    from mmdet.registry import MODELS
    cfg = load('dual_swin_t_cascade_mask_rcnn.py')
    swin = {k: v for k, v in family('Swin').items() if k not in ('type', 'embed_dims')}
    model = nn.Module()
    model.backbone = MODELS.build(dict(type='CBSwinTransformer', embed_dim=8, **swin))
    model.roi_head = MODELS.build(
        dict(cfg.model.roi_head.bbox_head[0], in_channels=8, conv_out_channels=8, fc_out_channels=16, num_classes=3))
    ow = cfg.optim_wrapper.to_dict()
    ow.update(type='OptimWrapper')  # the AMP wrapper needs a GPU; the parameter groups do not depend on it
    ow.pop('loss_scale')
    optimizer = build_optim_wrapper(model, ow).optimizer
    decay = {id(p): g['weight_decay'] for g in optimizer.param_groups for p in g['params']}
    by_name = {n: decay[id(p)] for n, p in model.named_parameters()}
    exempt = {n for n, wd in by_name.items() if wd == 0}
    assert exempt and all(any(k in n for k in SWIN_NO_DECAY) for n in exempt)
    assert {n for n in by_name if any(k in n for k in SWIN_NO_DECAY)} == exempt
    assert any('relative_position_bias_table' in n for n in exempt) and any('.norm' in n for n in exempt)
    head_bn = [n for n in by_name if n.startswith('roi_head.') and '.bn.' in n]
    assert head_bn and all(by_name[n] == 0.05 for n in head_bn), 'the SyncBN of the 4conv1fc heads keeps wd 0.05'
    assert all(by_name[n] == 0.05 for n in by_name if 'composition' in n)  # composite connections decay


def test_tta_of_the_swin_l_recipe():
    """Official TTA: 4 scales x flip, merged with the RCNN test settings (soft-NMS 0.5, score 0.001, 100)."""
    cfg = load('dual_swin_l_htc.py')
    assert cfg.tta_img_scales == [(1600, 1000), (1600, 1400), (1800, 1200), (1800, 1600)]
    views = cfg.tta_pipeline[1]['transforms']
    assert [t['scale'] for t in views[0]] == cfg.tta_img_scales and [t['prob'] for t in views[1]] == [1., 0.]
    nms = cfg.tta_model.tta_cfg.nms
    assert (nms.type, nms.iou_threshold, nms.min_score, cfg.tta_model.tta_cfg.max_per_img) == \
        ('soft_nms', 0.5, 0.001, 100)


def test_shared_pieces_are_used_not_copied():
    """The Swin backbones, 1600x1400 pipelines, 4conv1fc heads and soft-NMS settings live in configs/_base_ once."""
    pieces = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'cb_swin_backbones.py'))
    for name, arch in (('cb_swin_t', 'dual_swin_t_mask_rcnn.py'), ('cb_swin_s', 'dual_swin_s_cascade_mask_rcnn.py'),
                       ('cb_swin_b', 'dual_swin_b_htc.py'), ('cb_swin_l', 'dual_swin_l_htc.py')):
        assert load(arch).model.backbone == pieces[name], f'{arch} must use {name} of cb_swin_backbones.py'
    for name in OFFICIAL:
        text = open(osp.join(CONFIG_DIR, name)).read()
        assert "'soft_nms'" not in text and 'GIoULoss' not in text and 'RandomResize' not in text, \
            f'{name}: use the pieces in configs/_base_ (soft_nms.py, heads_4conv1fc_giou.py, ms_1600x1400.py)'
