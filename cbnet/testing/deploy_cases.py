"""Tiny CB detectors with random, non-trivial weights for deployment tests: a model config, a checkpoint in
mmengine's format and an image, for every detector kind cbnet registers (``KINDS``) and several backbone
families.

The detectors are mmdet zoo configs (:func:`cbnet.testing.zoo.zoo_config_for`) made tiny
(:func:`~cbnet.testing.zoo.tiny_zoo_detector`) and composite (:func:`cbnet.cbnetify`), so a new detector kind
gets cases by naming its detector classes in :data:`DEPLOY_DETECTORS`.
"""
import copy
import functools
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

#: detector kind (the mmdet base class a cbnet kind is registered for) -> detectors whose deployment is tested
DEPLOY_DETECTORS: Dict[str, Tuple[str, ...]] = {
    'TwoStageDetector': ('FasterRCNN', 'MaskRCNN', 'CascadeRCNN'),
    'SingleStageDetector': ('RetinaNet', 'ATSS', 'FCOS', 'YOLOX', 'YOLOV3', 'RTMDet', 'Mask2Former'),
    'DetectionTransformer': ('DINO', ),
    'SingleStageInstanceSegmentor': ('SOLOv2', ),
    # refused before export (cbnet.deploy.support.REFUSED): MMDeploy has no path for text-prompted detectors
    'GLIP': ('GLIP', ),
    'GroundingDINO': ('GroundingDINO', ),
}
#: detectors deployed at their zoo config's test thresholds (the tiny ones, 0, make every SOLOv2 mask the whole image)
ZOO_THRESHOLDS = {'SOLOv2': ('score_thr', 'mask_thr', 'filter_thr')}
#: zoo configs chosen over the first one :func:`zoo_config_for` finds
ZOO_OVERRIDES = {'CascadeMaskRCNN': 'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'}
#: smaller random weights where the boxes are exp(prediction), unclipped (YOLOX), or the scores saturate at 1 and
#: tie (RTMDet: NMS breaks ties by order, which is the implementation's)
WEIGHT_SCALES = {'YOLOX': 0.3, 'RTMDet': 0.05}


@dataclass(frozen=True)
class DeployCase:
    """One CB detector to deploy: ``detector`` (mmdet class name), ``inner`` (a :data:`cbnet.testing.FAMILIES`
    name), ``num_backbones``; ``config``: the zoo config to start from (default: :func:`zoo_config`), for a
    variant of the class (RTMDet-Ins is an ``RTMDet`` with an instance-segmentation head)."""

    detector: str
    inner: str = 'ResNet'
    num_backbones: int = 2
    weight_scale: float = 1.0  # of the random weights (see :func:`randomize`)
    config: str = ''

    @property
    def name(self) -> str:
        prefix = {2: 'dual', 3: 'triple'}.get(self.num_backbones, f'k{self.num_backbones}')
        return f'{prefix}_{self.inner.lower()}_{self.detector.lower()}'

    @property
    def task(self) -> str:
        """MMDeploy's task: ``instance-seg`` where the model predicts masks, from its zoo config."""
        return deploy_task(_zoo_model(self.detector, self.config))


def deploy_task(model_cfg: dict) -> str:
    """``instance-seg`` for a model config with a mask head (``mask_head``, a panoptic head, an instance-seg
    head's ``loss_mask``), else ``detection``: the deploy config whose graph outputs its masks."""
    from .zoo_sweep import batch_needs
    return 'instance-seg' if batch_needs(model_cfg)['with_mask'] else 'detection'


def zoo_config(detector: str) -> str:
    return zoo_source(detector)[0]


def zoo_source(detector: str, config: str = '') -> Tuple[str, Optional[str]]:
    """``(zoo config, model type to build)``: ``config`` or the config :func:`zoo_config_for` finds for
    ``detector`` (a base class such as ``SingleStageDetector`` is built from a subclass's config), with the type
    to set (None: the config's own)."""
    from .zoo import zoo_config_for
    if config or detector in ZOO_OVERRIDES:
        return config or ZOO_OVERRIDES[detector], None
    found = zoo_config_for(detector)
    if found is None:
        raise KeyError(f'mmdet\'s zoo has no config of {detector}')
    return found


@functools.lru_cache(maxsize=None)
def _zoo_model(detector: str, config: str = '') -> dict:
    from .detectors import mmdet_config
    return mmdet_config(zoo_source(detector, config)[0]).model.to_dict()


def _set_inner(model: dict, inner: str) -> None:
    """Swap the composite's inner backbone for the tiny ``inner`` family (same stages returned) and fit the
    consumer's ``in_channels``."""
    from .backbones import family
    from .zoo import _consumer, _set_in_channels, _tiny_widths
    backbone = model['backbone']
    given = backbone['backbone']
    new = family(inner)
    new['out_indices'] = tuple(given.get('out_indices', new.get('out_indices')))
    backbone['backbone'] = new
    consumer = _consumer(model)
    if consumer is not None:
        _set_in_channels(consumer, _tiny_widths(new))


def _test_pipeline(size: Tuple[int, int], zoo_pipeline: Sequence[dict] = ()) -> List[dict]:
    """Load, resize to ``size`` (h, w; keep ratio, so an image of that size is unchanged), the zoo pipeline's own
    ``Pad`` (to ``size`` where it pads to a fixed size: RTMDet; to a square: YOLOX), pack."""
    pads = [
        dict(step, size=(size[1], size[0])) if step.get('size') else dict(step) for step in zoo_pipeline
        if step.get('type') == 'Pad'
    ]
    return [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(size[1], size[0]), keep_ratio=True), *pads,
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
    ]


def model_config(case: DeployCase, size: Tuple[int, int] = (64, 96)) -> Config:
    """The zoo config of ``case.detector`` with the tiny composite model and a test pipeline for ``size``."""
    from ..cbnetify import cbnetify
    from .detectors import mmdet_config
    from .zoo import tiny_zoo_detector
    from .zoo_sweep import few_detections
    rel, model_type = zoo_source(case.detector, case.config)
    cfg = mmdet_config(rel)
    zoo_test_cfg = copy.deepcopy(cfg.model.get('test_cfg'))
    model = tiny_zoo_detector(cfg.model)
    for key in ZOO_THRESHOLDS.get(case.detector, ()):
        model['test_cfg'][key] = zoo_test_cfg[key]
    if model_type:
        model['type'] = model_type
    few_detections(model, proposals=50, detections=20)
    cfg.model = Config(dict(model=model)).model
    cfg = cbnetify(cfg, num_backbones=case.num_backbones)
    model = cfg.model.to_dict()
    if case.inner != 'ResNet':
        _set_inner(model, case.inner)
    cfg.model = Config(dict(model=model)).model
    cfg.test_pipeline = _test_pipeline(size, cfg.test_dataloader.dataset.get('pipeline', ()))
    cfg.test_dataloader.dataset.pipeline = cfg.test_pipeline
    return cfg


def randomize(model: torch.nn.Module, seed: int = 0, size: Tuple[int, int] = (64, 96), scale: float = 1.0) -> None:
    """Random weights that give detections with distinct scores: conv/linear weights LeCun-normal (no ReLU
    gain, so scores do not saturate into ties), biases and norm affines jittered, the composite connections
    live, query-based R-CNN box deltas zero, then every BatchNorm's statistics measured on random images
    (activations of order one in eval mode, through any depth)."""
    from torch.nn.modules.batchnorm import _BatchNorm
    g = torch.Generator().manual_seed(seed)
    norms = (_BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm)
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=g)
                if isinstance(module, norms):
                    p.copy_(noise * 0.1 + (1.0 if name == 'weight' else 0.0))
                elif p.dim() > 1:
                    p.copy_(noise * scale * (1.0 / p[0].numel())**0.5)
                else:
                    p.copy_(noise * 0.1)
    _keep_query_boxes_in_the_image(model, g)
    batch_norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if batch_norms:
        model.eval()
        for m in batch_norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
            m.train()
        images = [torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8) for _ in range(2)]
        inputs = model.data_preprocessor(dict(inputs=images), False)['inputs']  # the model's own normalisation
        samples = [
            DetDataSample(
                metainfo=dict(
                    img_shape=size,
                    ori_shape=size,
                    scale_factor=(1.0, 1.0),
                    batch_input_shape=tuple(inputs.shape[-2:]),
                    pad_shape=size)) for _ in range(2)
        ]
        with torch.no_grad():
            try:
                model(inputs, samples, mode='tensor')
            except (AttributeError, AssertionError):  # CondInst, BoxInst, QueryInst: their tensor mode needs targets
                for m in batch_norms:
                    m.reset_running_stats()
                model(inputs, samples, mode='predict')
        for m in batch_norms:
            m.momentum = 0.1
    model.eval()


def _keep_query_boxes_in_the_image(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Random Sparse R-CNN/QueryInst proposals and regressions lie outside the image (inverted RoIs that RoIAlign
    rejects): here the learned proposals are boxes inside the image (centres in its middle half, sides 20-50 %)
    and the box deltas are zero, as a trained model's stay small."""
    from mmdet.models.roi_heads import SparseRoIHead
    roi_head = getattr(model, 'roi_head', None)
    if not isinstance(roi_head, SparseRoIHead):
        return
    with torch.no_grad():
        proposals = model.rpn_head.init_proposal_bboxes.weight  # (cx, cy, w, h) of the image size
        proposals[:, :2] = 0.25 + 0.5 * torch.rand(proposals[:, :2].shape, generator=generator)
        proposals[:, 2:] = 0.2 + 0.3 * torch.rand(proposals[:, 2:].shape, generator=generator)
        for head in roi_head.bbox_head:
            for p in head.fc_reg.parameters():
                p.zero_()


def write_case(case: DeployCase, out_dir: str, size: Tuple[int, int] = (64, 96), seed: int = 0) -> Tuple[Config, str]:
    """``(model config, checkpoint path)`` of ``case`` with random weights (mmengine checkpoint format)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    cfg = model_config(case, size)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    randomize(model, seed, size, case.weight_scale)
    path = osp.join(out_dir, f'{case.name}.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=None)), path)
    return cfg, path


def write_image(path: str, size: Tuple[int, int] = (64, 96), seed: int = 0) -> str:
    """A random-colour image with a few filled rectangles (h, w = ``size``) saved as PNG."""
    import mmcv
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    for _ in range(4):
        y0, x0 = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        img[y0:y0 + size[0] // 3, x0:x0 + size[1] // 3] = rng.integers(0, 255, 3, dtype=np.uint8)
    mmcv.imwrite(img, path)
    return path


def deploy_cases(inner: Optional[str] = 'ResNet') -> List[DeployCase]:
    """One case per detector of :data:`DEPLOY_DETECTORS` (with ``inner`` as the backbone family and the detector's
    :data:`WEIGHT_SCALES`)."""
    return [
        DeployCase(d, inner, weight_scale=WEIGHT_SCALES.get(d, 1.0)) for detectors in DEPLOY_DETECTORS.values()
        for d in detectors
    ]
