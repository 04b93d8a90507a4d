"""Tiny versions of the detectors of mmdet's own zoo, found by detector class: cases for per-class CB checks.

``zoo_config_for('DINO')`` finds a config of ``mmdet/.mim/configs`` whose model builds that class (a cheap text
scan, then one ``Config.fromfile`` to confirm); ``tiny_zoo_detector(model)`` shrinks its model to a narrow
ResNet-18 backbone, narrow necks/heads/transformers with one layer each and few queries/samples, without
changing what kind of model it is (neck-less stays neck-less, C4 keeps its RoI-head stage).
"""
import copy
import functools
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import torch

from ..utils.configs import package_config_dir, strip_pretrained
from .backbones import family
from .detectors import mmdet_config, shrink_detector
from .language_models import is_grounding, tiny_bert, use_language_model

#: zoo folders whose models need inputs far beyond what a CPU test can afford
SKIPPED_CONFIG_DIRS = {
    'ssd': 'SSD/SSDLite extra levels need inputs of >= 300 px',
    'legacy_1.x': 'mmdet 1.x compatibility configs',
}
#: model parts whose configs need inputs far beyond what a CPU test can afford (found in other folders too)
SKIPPED_TYPES = {'SSDNeck': 'SSD extra levels need inputs of >= 300 px'}
_TYPE = re.compile(r"type\s*=\s*['\"]([\w.]+)['\"]")
_BASE = re.compile(r"_base_\s*=\s*(\[[^\]]*\]|'[^']*'|\"[^\"]*\")", re.S)
_QUOTED = re.compile(r"['\"]([^'\"]+\.py)['\"]")

#: tiny widths of the transformer parts (multiples of 8 heads; positional features are half the width)
_TRANSFORMER = {'embed_dims': {256: 32, 512: 32}, 'num_feats': {128: 16, 256: 16}}
#: 'num_queries' and friends: few queries, proposals, denoising queries
_FEW = {'num_queries': 10, 'num_query': 10, 'num_proposals': 10, 'num_dn_queries': 10}
_CLASS_BOILERPLATE = {
    '__module__', '__doc__', '__qualname__', '__init__', '__abstractmethods__', '_abc_impl', '__annotations__'
}
_DROPOUT_KEYS = ('dropout', 'attn_drop', 'proj_drop', 'ffn_drop', 'drop_path_rate', 'attn_drop_rate', 'drop_rate')


# -- the zoo --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def zoo_index() -> Dict[str, Tuple[str, ...]]:
    """Type name -> configs (relative to mmdet's config folder) whose text or ``_base_`` files mention it."""
    root = package_config_dir('mmdet')
    texts: Dict[str, str] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                with open(path, encoding='utf-8') as f:
                    texts[path] = f.read()

    @functools.lru_cache(maxsize=None)
    def types_of(path: str) -> frozenset:
        text = texts.get(path, '')
        found = set(_TYPE.findall(text))
        for match in _BASE.findall(text):
            for base in _QUOTED.findall(match):
                found |= types_of(osp.normpath(osp.join(osp.dirname(path), base)))
        return frozenset(found)

    index: Dict[str, List[str]] = {}
    for path in texts:
        rel = osp.relpath(path, root)
        types = types_of(path)
        if rel.split(os.sep)[0] in SKIPPED_CONFIG_DIRS or '_base_' in rel.split(os.sep) or types & set(SKIPPED_TYPES):
            continue
        for type_name in types:
            index.setdefault(type_name.rpartition('.')[2], []).append(rel)
    return {k: tuple(sorted(v, key=_preference)) for k, v in index.items()}


def _preference(rel: str) -> Tuple:
    """Plain R-50 1x configs first, short names first."""
    name = osp.basename(rel)
    return ('r50' not in name, '1x' not in name, len(rel), rel)


def _folder_matches(rel: str, class_name: str) -> bool:
    folder = rel.split(os.sep)[0].replace('_', '').replace('-', '').lower()
    return folder == class_name.lower() or folder.startswith(class_name.lower())


def _only_forwards(cls: type) -> bool:
    """A subclass that adds nothing but an ``__init__`` (RetinaNet, FasterRCNN, SOLO, ...): its configs build
    its base class unchanged when ``type`` names the base."""
    return not set(vars(cls)) - _CLASS_BOILERPLATE


@functools.lru_cache(maxsize=None)
def zoo_config_for(class_name: str) -> Optional[Tuple[str, str]]:
    """``(relative config path, type to build)`` for the mmdet detector class ``class_name``: a config whose
    model is of that class, else one of a subclass that only forwards its arguments (for base classes such
    as TwoStageDetector). None if the zoo has neither."""
    from mmdet.registry import MODELS
    index = zoo_index()
    cls = MODELS.get(class_name)
    candidates = sorted(
        index.get(class_name, ()), key=lambda r: (not _folder_matches(r, class_name), ) + _preference(r))
    for rel in candidates[:4]:
        if mmdet_config(rel).model.get('type', '').rpartition('.')[2] == class_name:
            return rel, class_name
    forwarding = [
        zoo_config_for(sub.__name__) for sub in set(MODELS.module_dict.values())
        if isinstance(sub, type) and sub is not cls and cls in sub.__bases__ and _only_forwards(sub)
    ]
    configs = sorted((found[0] for found in forwarding if found is not None), key=_preference)
    return (configs[0], class_name) if configs else None


# -- shrinking ------------------------------------------------------------------------------------------------
def _walk(node, fn, path=()):
    """Call ``fn(parent_dict, key, value, path)`` for every entry of a config tree, depth first."""
    if isinstance(node, dict):
        for k in list(node):
            fn(node, k, node[k], path)
            _walk(node[k], fn, path + (k, ))
    elif isinstance(node, (list, tuple)):
        for item in node:
            _walk(item, fn, path)


def _shrink_rest(node: dict, transformer_widths: bool) -> None:
    """One encoder layer, two decoder layers, few queries, no dropout, no SyncBN; narrow transformers where
    mmdet derives nothing from a fixed width (DETR-family decoders hard-code 128 positional features per
    coordinate, so those keep 256)."""

    def fn(parent, key, value, path):
        if transformer_widths and key in _TRANSFORMER and value in _TRANSFORMER[key]:
            parent[key] = _TRANSFORMER[key][value]
        elif key.endswith('channel') and isinstance(value, int) and value in (256, 512, 1024):
            parent[key] = 32  # SparseRCNN's proposal_feature_channel
        elif key in _FEW and isinstance(value, int):
            parent[key] = min(value, _FEW[key])
        elif key == 'num_layers' and isinstance(value, int) and path and 'encoder' in path[-1]:
            parent[key] = 1
        elif key == 'num_layers' and isinstance(value, int) and path and 'decoder' in path[-1]:
            parent[key] = min(value, 2)
        elif key == 'num_cp' and isinstance(value, int) and value > 1:
            parent[key] = 1  # checkpointed encoder layers (fairscale): at most the one layer left
        elif key == 'stacked_convs' and isinstance(value, int) and value > 1:
            parent[key] = 1
        elif key in _DROPOUT_KEYS and isinstance(value, float):
            parent[key] = 0.0
        elif key == 'type' and value in ('SyncBN', 'MMSyncBN'):
            parent[key] = 'BN'
        elif key == 'num_points' and isinstance(value, int) and value > 64:
            parent[key] = 64  # Mask2Former's point-sampled mask loss
        elif key == 'subdivision_num_points' and isinstance(value, int):
            parent[key] = min(value, 64)
        elif key == 'subdivision_steps' and isinstance(value, int):
            parent[key] = min(value, 2)  # PointRend's mask refinement at test time
        elif key in ('score_thr', 'score_threshold', 'filter_thr') and isinstance(value, float):
            parent[key] = 0.0  # untrained heads score low: keep detections to compare
        elif key == 'mask_thr' and isinstance(value, float) and path and path[-1] == 'test_cfg':
            parent[key] = 0.0  # SOLO drops masks smaller than their level's stride
        elif key == 'max_per_img' and path and path[-1] == 'rcnn' and isinstance(value, int):
            parent[key] = min(value, 10)  # few detections (and masks to paste) per image
        elif key == 'point_feat_channels' and isinstance(value, int) and parent.get('type') == 'GridHead':
            parent[key] = 8  # GridHead: grid_points x 8 channels (GN(36) still divides them)

    _walk(node, fn)


def _is_resnet_like(backbone: dict) -> bool:
    from mmdet.models.backbones import ResNet
    from mmdet.registry import MODELS
    cls = MODELS.get(backbone.get('type', ''))
    return isinstance(cls, type) and issubclass(cls, ResNet)


def _finest_prior_stride(model: dict) -> Optional[int]:
    """The finest stride a dense head's prior generator declares (``bbox_head.prior_generator.strides``), if any."""
    found = []

    def visit(parent, key, value, path):
        if key.endswith('generator') and isinstance(value, dict) and value.get('strides'):
            first = value['strides'][0]
            found.append(int(first[0] if isinstance(first, (list, tuple)) else first))

    _walk(model.get('bbox_head') or {}, visit)
    return min(found) if found else None


def _tiny_backbone(original: dict, num_inputs: int, finest_stride: Optional[int] = None) -> dict:
    """A tiny ResNet-18 with the original ResNet's layout (stages, strides, returned stages), or returning its
    last ``num_inputs`` stages for other families, with one more downsampling in its first stage where the head's
    finest prior stride needs it (RTMDet-P6's strides 8-64 from four maps: stages at strides 8-64)."""
    tiny = family('ResNet')
    if _is_resnet_like(original):
        stages = tiny['num_stages'] = original.get('num_stages', 4)
        for key in ('strides', 'dilations', 'out_indices'):
            if key in original:
                tiny[key] = tuple(original[key])
        for key, default in (('strides', (1, 2, 2, 2)), ('dilations', (1, 1, 1, 1))):
            tiny[key] = tuple(tiny.get(key, default))[:stages]
    else:
        tiny['out_indices'] = tuple(range(4 - num_inputs, 4))
        if finest_stride is not None and finest_stride == 2 * 4 * 2**(4 - num_inputs):
            tiny['strides'] = (2, 2, 2, 2)
    return tiny


def _tiny_widths(backbone: dict) -> List[int]:
    from mmdet.registry import MODELS
    net = MODELS.build(copy.deepcopy(backbone))
    net.eval()
    with torch.no_grad():
        return [int(o.shape[1]) for o in net(torch.zeros(1, 3, 64, 64))]


def _set_in_channels(consumer: dict, widths: List[int]) -> None:
    given = consumer.get('in_channels')
    if isinstance(given, int):
        consumer['in_channels'] = widths[-1]
    elif isinstance(given, (list, tuple)):
        descending = len(given) > 1 and list(given) == sorted(given, reverse=True)  # YOLOv3: deepest first
        consumer['in_channels'] = list(reversed(widths)) if descending else list(widths)


def _consumer(model: dict) -> Optional[dict]:
    """What reads the backbone's features: the (first) neck, else a head with ``in_channels``."""
    neck = model.get('neck')
    if neck:
        return neck[0] if isinstance(neck, (list, tuple)) else neck
    for key in ('panoptic_head', 'bbox_head', 'rpn_head', 'mask_head'):
        if isinstance(model.get(key), dict) and 'in_channels' in model[key]:
            return model[key]
    return None


def _num_inputs(consumer: Optional[dict]) -> int:
    given = (consumer or {}).get('in_channels')
    return len(given) if isinstance(given, (list, tuple)) else 1


def tiny_zoo_detector(model: dict) -> dict:
    """``model`` (a zoo detector's model config, plain backbone) made tiny for a 64 px CPU step; see module doc."""
    model = copy.deepcopy(model.to_dict() if hasattr(model, 'to_dict') else model)
    strip_pretrained(model)
    _fix_teachers(model)
    preprocessor = model.get('data_preprocessor')
    if isinstance(preprocessor, dict):
        preprocessor['batch_augments'] = None  # random resizes / 1024 px pads
    original = model['backbone']
    shared_head = (model.get('roi_head') or {}).get('shared_head')
    corner = (model.get('bbox_head') or {}).get('type', '').endswith(('CornerHead', 'CentripetalHead'))
    consumer = _consumer(model)
    tiny = _tiny_backbone(original, _num_inputs(consumer), _finest_prior_stride(model))
    if shared_head:  # C4: the RoI head holds the last ResNet stage (fixed widths: a BasicBlock stage of 512)
        tiny.update(base_channels=64, stem_channels=64)
        shared_head['depth'] = 18
    if corner:  # CornerNet reads two same-sized maps of one width (two hourglass stacks)
        tiny.update(strides=(1, 2, 1, 1), out_indices=(1, 2))
        model['neck'] = dict(type='ChannelMapper', in_channels=[16, 32], out_channels=256, kernel_size=1)
        consumer = model['neck']
    model['backbone'] = tiny
    detr_like = 'encoder' in model or 'decoder' in model
    neck_width = (model.get('neck') or {}).get('out_channels') if detr_like else None
    shrink_detector(model)  # narrow '*channels' (not the backbone), few sampled RoIs
    _shrink_rest(model, transformer_widths=not detr_like)
    if neck_width:  # the transformer's width
        model['neck']['out_channels'] = neck_width
    widths = _tiny_widths(tiny)
    if consumer is not None and not corner:
        _set_in_channels(consumer, widths)
    if corner:
        model['neck']['in_channels'] = widths
    if shared_head:
        _fit_c4_heads(model, widths[-1])
    _fewer_query_stages(model)
    _fit_transformer_heads(model)
    if is_grounding(model):
        use_language_model(model, tiny_bert())
        _fit_grounding(model)
    return model


#: the head width GLIP needs: mmdet's ATSSVLFusionHead sizes its token targets by feat_channels (256 = the text's
#: max tokens) and its early-fusion layers (VLFuse) hard-code 256 visual channels
_GLIP_WIDTH = 256
#: what mmdet's own fine-tuning configs of the family set for training, where an evaluation-only (zero-shot)
#: config leaves it out: GLIP's box loss (the head's default SmoothL1 does not take GLIP's per-box centerness
#: weights), Grounding DINO's assigner (``train_cfg=None``)
_GLIP_LOSS_BBOX = dict(type='GIoULoss', loss_weight=2.0)
_GROUNDING_DINO_TRAIN_CFG = dict(
    assigner=dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type='BinaryFocalLossCost', weight=2.0),
            dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0)
        ]))


def _fit_grounding(model: dict) -> None:
    """GLIP: one DyHead block (of 6 or 8), no checkpointing, the neck and head at the width GLIP needs. Both: what
    training needs where the config is evaluation-only (see above)."""
    head = model.get('bbox_head') or {}
    if head.get('type') == 'ATSSVLFusionHead':
        head.update(num_dyhead_blocks=1, use_checkpoint=False, in_channels=_GLIP_WIDTH, feat_channels=_GLIP_WIDTH)
        head.setdefault('loss_bbox', copy.deepcopy(_GLIP_LOSS_BBOX))
        model['neck']['out_channels'] = _GLIP_WIDTH
    elif head.get('type') == 'GroundingDINOHead' and not model.get('train_cfg'):
        model['train_cfg'] = copy.deepcopy(_GROUNDING_DINO_TRAIN_CFG)


def _fit_c4_heads(model: dict, width: int) -> None:
    """C4 heads read the backbone's last returned stage (``width``) and the shared stage's output (2x)."""
    model['rpn_head']['in_channels'] = width
    model['rpn_head']['feat_channels'] = width
    roi_head = model['roi_head']
    roi_head['bbox_roi_extractor']['out_channels'] = width
    roi_head['bbox_head']['in_channels'] = 2 * width
    if roi_head.get('mask_head'):
        roi_head['mask_head']['in_channels'] = 2 * width


def _fewer_query_stages(model: dict, keep: int = 2) -> None:
    """Sparse R-CNN / QueryInst: 2 of the 6 refinement stages (random boxes refined 6 times leave the image
    far behind, and mask pasting then fails in mmdet)."""
    roi_head = model.get('roi_head') or {}
    if roi_head.get('type') != 'SparseRoIHead' or roi_head.get('num_stages', 0) <= keep:
        return
    stages = roi_head['num_stages']
    roi_head['num_stages'] = keep
    roi_head['stage_loss_weights'] = roi_head['stage_loss_weights'][:keep]
    for key in ('bbox_head', 'mask_head'):
        if isinstance(roi_head.get(key), list) and len(roi_head[key]) == stages:
            roi_head[key] = roi_head[key][:keep]
    rcnn = (model.get('train_cfg') or {}).get('rcnn')
    if isinstance(rcnn, list) and len(rcnn) == stages:
        model['train_cfg']['rcnn'] = rcnn[:keep]


def _fit_transformer_heads(model: dict) -> None:
    """Keep what one layer and few queries must still agree with: DETR heads and QueryInst cannot return more
    boxes than queries; Mask2Former cycles its decoder layers over the pixel decoder's levels (one layer each)."""
    queries = model.get('num_queries')
    test_cfg = model.get('test_cfg') or {}
    if queries and test_cfg.get('max_per_img', 0) > queries:
        test_cfg['max_per_img'] = queries
    proposals = (model.get('rpn_head') or {}).get('num_proposals')  # Sparse R-CNN, QueryInst
    rcnn_test = test_cfg.get('rcnn') or {}
    if proposals and rcnn_test.get('max_per_img', 0) > proposals:
        rcnn_test['max_per_img'] = proposals
    head = model.get('panoptic_head') or {}
    levels = head.get('num_transformer_feat_level')
    if levels and 'transformer_decoder' in head:
        head['transformer_decoder']['num_layers'] = levels


def _fix_teachers(model: dict) -> None:
    """Knowledge distillation: the teacher is a zoo config path (made tiny, built in memory) and a checkpoint
    URL (dropped); LAD's inline teacher parts get the tiny backbone like the student."""
    if isinstance(model.get('teacher_config'), str):
        rel = model['teacher_config'].split('configs/', 1)[-1]
        model['teacher_config'] = dict(model=tiny_zoo_detector(mmdet_config(rel).model))
    if 'teacher_ckpt' in model:
        model['teacher_ckpt'] = None
    if isinstance(model.get('teacher_backbone'), dict):
        teacher = tiny_zoo_detector(
            dict(
                type='RetinaNet',
                backbone=model['teacher_backbone'],
                neck=model['teacher_neck'],
                bbox_head=model['teacher_bbox_head']))
        model.update(
            teacher_backbone=teacher['backbone'], teacher_neck=teacher['neck'], teacher_bbox_head=teacher['bbox_head'])


# -- plain detector -> composite detector -----------------------------------------------------------------------
def copy_plain_weights(plain: torch.nn.Module, composite: torch.nn.Module) -> None:
    """Load ``plain``'s weights into ``composite``: its backbone into every branch (what a pruned branch lacks is
    skipped), neck and heads as they are; the composite connections keep their (zero) values."""
    source = plain.state_dict()
    target = {}
    for key, value in composite.state_dict().items():
        if key.startswith('backbone.composition.'):
            target[key] = value
            continue
        plain_key = re.sub(r'^backbone\.branches\.\d+\.', 'backbone.', key)
        if plain_key not in source:
            raise KeyError(f'{key} of the composite detector has no counterpart {plain_key} in the plain one')
        target[key] = source[plain_key]
    composite.load_state_dict(target, strict=True)


def plain_parameter_name(composite_name: str) -> str:
    """``backbone.branches.<k>.x`` -> ``backbone.x``; other names are shared by both detectors."""
    return re.sub(r'^backbone\.branches\.\d+\.', 'backbone.', composite_name)
