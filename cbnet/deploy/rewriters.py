"""Rewriters that make MMDeploy's ONNX Runtime graphs of two-stage detectors post-process as mmdet does.

MMDeploy 1.3.1 exports the RPN and the R-CNN box head with simplifications that change the detections of a
detector whose scores are not sharp (every class and level competes), which is what made its Mask R-CNN
disagree with PyTorch. Measured causes and their fixes here (ONNX Runtime only; TensorRT keeps MMDeploy's
``TRTBatchedNMS``, see ``configs/deploy/``):

1. RPN: one NMS over all FPN levels; mmdet suppresses within each level (``batched_nms`` on the level ids).
   Fixed: the levels are offset apart before one NMS, exactly as ``mmcv.ops.batched_nms`` does.
2. RPN: MMDeploy drops proposals scoring below ``post_processing.score_threshold`` (0.05); mmdet keeps all.
3. RPN: ``min_bbox_size`` is ignored (mmdet drops proposals of zero width or height).
4. RPN and R-CNN: a zero row is appended to the NMS output (against empty tensors) and becomes an extra RoI
   (0, 0, 0, 0) that the box head scores like any other, adding a detection mmdet never makes.
5. R-CNN: every RoI keeps only the box of its best class, which then stands for all classes in the
   multi-class NMS; mmdet uses each class's own regressed box (``reg_class_agnostic=False``).
6. Dense heads (RetinaNet, ATSS, FCOS, RTMDet, ...; YOLOX; YOLOv3): candidates ranked per prior instead of per
   (prior, class) pair, score factors applied before the ranking, per-class caps and ``keep_top_k`` instead of
   mmdet's ``nms_pre``/``max_per_img`` (YOLOX: none), the zero row of 4.
7. Cascade masks: the stages' mask logits averaged instead of their probabilities.

Both rewriters register for the ``onnxruntime`` backend only and are active only inside MMDeploy's
``RewriterContext`` (during export): importing this module changes nothing else.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.mmcv.ops.nms import ONNXNMSop
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

BACKEND = 'onnxruntime'
#: "keep every detection" for ONNX's NonMaxSuppression, which needs a number
_ALL = 1 << 20


def nms_per_group(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float, score_threshold: float,
                  max_num: int) -> Tuple[Tensor, Tensor]:
    """mmcv's ``batched_nms`` in ONNX for one image: NMS within each group (class or FPN level), the groups
    kept apart by offsetting their boxes by ``group * (max coordinate + 1)`` as mmcv does; boxes at or below
    ``score_threshold`` take no part (and do not set the offset). Returns the kept indices, best first, and their
    scores. ``boxes`` (N, 4), ``scores`` (N,), ``groups`` (N,)."""
    valid = scores > score_threshold
    max_coordinate = torch.where(valid[:, None], boxes, boxes.new_zeros(())).max()
    offsets = groups.to(boxes) * (max_coordinate + 1)
    shifted = boxes + offsets[:, None]
    # max_num is a plain int for ONNX's NonMaxSuppression (it keeps the best max_num, as mmdet's [:max_num])
    selected = ONNXNMSop.apply(shifted[None], scores[None, None], max_num, iou_threshold, score_threshold)
    keep = selected[:, 2]
    return keep, scores[keep]


def _decode(coder, priors: Tensor, deltas: Tensor, img_shape) -> Tensor:
    """Decoded and clipped boxes of one image, through MMDeploy's batched decode rewriters."""
    return get_box_tensor(coder.decode(priors[None], deltas[None], max_shape=img_shape))[0]


def _single_image(tensor: Tensor, what: str) -> Tensor:
    if tensor.shape[0] != 1:  # only reached during tracing, where the export batch is known
        raise NotImplementedError(f'cbnet\'s ONNX Runtime {what} post-processing exports batch 1 (got a batch of '
                                  f'{tensor.shape[0]}): deploy with one image per call.')
    return tensor[0]


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat', backend=BACKEND)
def rpn_head__predict_by_feat__as_mmdet(self,
                                        cls_scores: List[Tensor],
                                        bbox_preds: List[Tensor],
                                        score_factors: Optional[List[Tensor]] = None,
                                        batch_img_metas: Optional[List[dict]] = None,
                                        cfg=None,
                                        rescale: bool = False,
                                        with_nms: bool = True,
                                        **kwargs):
    """Proposals as mmdet's ``RPNHead.predict_by_feat`` makes them (fixes 1 to 4): top ``nms_pre`` per level,
    decoded and clipped, ``min_bbox_size`` filter, NMS within each level, best ``max_per_img``; (1, K, 5) dets
    and (1, K) labels as MMDeploy's RoI-head rewriters expect."""
    cfg = self.test_cfg if cfg is None else cfg
    img_shape = batch_img_metas[0]['img_shape']
    featmap_sizes = [score.shape[-2:] for score in cls_scores]
    priors = self.prior_generator.grid_priors(featmap_sizes, device=cls_scores[0].device)
    nms_pre = cfg.get('nms_pre', -1)
    level_scores, level_deltas, level_priors, level_ids = [], [], [], []
    for level, (score, delta, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
        score = _single_image(score, 'RPN').permute(1, 2, 0).reshape(-1, self.cls_out_channels)
        score = score.sigmoid()[:, 0] if self.use_sigmoid_cls else score.softmax(-1)[:, 0]
        delta = _single_image(delta, 'RPN').permute(1, 2, 0).reshape(-1, self.bbox_coder.encode_size)
        prior = get_box_tensor(prior)
        if nms_pre > 0:  # MMDeploy's topk rewriter keeps k within the level's size
            score, inds = score.topk(nms_pre)
            delta, prior = delta[inds], prior[inds]
        level_scores.append(score)
        level_deltas.append(delta)
        level_priors.append(prior)
        level_ids.append(torch.full_like(score, level, dtype=torch.long))
    scores = torch.cat(level_scores)
    boxes = _decode(self.bbox_coder, torch.cat(level_priors), torch.cat(level_deltas), img_shape)
    if cfg.get('min_bbox_size', -1) >= 0:
        wide = (boxes[:, 2] - boxes[:, 0] > cfg.min_bbox_size) & (boxes[:, 3] - boxes[:, 1] > cfg.min_bbox_size)
        scores = torch.where(wide, scores, scores.new_zeros(()))  # out of the NMS below (score threshold 0)
    keep, kept_scores = nms_per_group(boxes, scores, torch.cat(level_ids), cfg.nms.get('iou_threshold', 0.7), 0.0,
                                      cfg.max_per_img)
    dets = torch.cat([boxes[keep], kept_scores[:, None]], dim=-1)[None]
    return dets, dets.new_zeros(dets.shape[:2], dtype=torch.long)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.predict_by_feat', backend=BACKEND)
def bbox_head__predict_by_feat__as_mmdet(self,
                                         rois: Tensor,
                                         cls_scores: Tensor,
                                         bbox_preds: Tensor,
                                         batch_img_metas: List[dict],
                                         rcnn_test_cfg=None,
                                         rescale: bool = False):
    """Detections as mmdet's ``BBoxHead.predict_by_feat`` + ``multiclass_nms`` make them (fixes 4 and 5): every
    (RoI, class) pair above ``score_thr`` with its own class's box, NMS within each class, best ``max_per_img``.
    ``rois`` (1, N, 5), ``cls_scores`` (1, N, C + 1), ``bbox_preds`` (1, N, C * 4 or 4)."""
    img_shape = batch_img_metas[0]['img_shape']
    if self.custom_cls_channels:
        scores = self.loss_cls.get_activation(cls_scores)
    else:
        scores = F.softmax(cls_scores, dim=-1)
    scores = _single_image(scores, 'R-CNN')[:, :self.num_classes]
    rois = _single_image(rois, 'R-CNN')[:, 1:]
    boxes = _decode(self.bbox_coder, rois, _single_image(bbox_preds, 'R-CNN'), img_shape)
    size = self.bbox_coder.encode_size  # (no Python sizes below: the number of RoIs stays dynamic)
    boxes = boxes.reshape(-1, boxes.shape[-1] // size, size).expand_as(scores[..., None].expand(-1, -1, size))
    boxes = boxes.reshape(-1, size)
    labels = torch.arange(self.num_classes, device=scores.device)[None].expand_as(scores).reshape(-1)
    keep, kept_scores = nms_per_group(boxes, scores.reshape(-1), labels, rcnn_test_cfg.nms.get('iou_threshold', 0.5),
                                      rcnn_test_cfg.score_thr, rcnn_test_cfg.max_per_img)
    dets = torch.cat([boxes[keep], kept_scores[:, None]], dim=-1)[None]
    return dets, labels[keep][None]


def base_post_processing(cls: type) -> bool:
    """Whether the dense head class post-processes with mmdet's ``BaseDenseHead`` code (RetinaNet, ATSS, FCOS,
    RTMDet, ...) through ``BaseDenseHead.predict_by_feat`` or RTMDet's (the same with its own priors)."""
    from mmdet.models.dense_heads import RTMDetHead
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    return (isinstance(cls, type) and issubclass(cls, BaseDenseHead)
            and cls.predict_by_feat in (BaseDenseHead.predict_by_feat, RTMDetHead.predict_by_feat) and all(
                getattr(cls, name) is getattr(BaseDenseHead, name)
                for name in ('_predict_by_feat_single', '_bbox_post_process')))


def heads_with_base_post_processing() -> List[str]:
    """The ``predict_by_feat`` import paths of mmdet's registered dense heads that :func:`base_post_processing`
    holds for. The rewriter below registers for each of them, not for ``BaseDenseHead.predict_by_feat``: heads
    with their own post-processing (PAA, TOOD, LAD, ...) then keep MMDeploy's rewriter, called by MMDeploy itself
    (its rewriters find their context only when MMDeploy calls them)."""
    import mmdet.models  # noqa: F401  (fills the registry)
    from mmdet.registry import MODELS
    classes = {cls for cls in MODELS.module_dict.values() if base_post_processing(cls)}
    return sorted(f'{cls.__module__}.{cls.__qualname__}.predict_by_feat' for cls in classes)


def _flat(tensor: Tensor, width: int) -> Tensor:
    """(1, A * width, H, W) -> (H * W * A, width), mmdet's order of priors."""
    return _single_image(tensor, 'dense head').permute(1, 2, 0).reshape(-1, width)


def _activation(head, cls_score: Tensor) -> Tensor:
    if getattr(head.loss_cls, 'custom_cls_channels', False):
        return head.loss_cls.get_activation(cls_score)
    return cls_score.sigmoid() if head.use_sigmoid_cls else cls_score.softmax(-1)[:, :-1]


def top_pairs(scores: Tensor, score_thr: float, nms_pre: int) -> Tuple[Tensor, Tensor, Tensor]:
    """mmdet's ``filter_scores_and_topk`` in ONNX: of the (N, C) scores, the best ``nms_pre`` (prior, class)
    pairs, those above ``score_thr`` first (``nms_pre`` pairs are kept in any case: the caller masks out those
    at or below ``score_thr``). Returns their scores, prior indices and labels."""
    flat = scores.reshape(-1)
    ranked = torch.where(flat > score_thr, flat, flat.new_full((), -1.0))  # the valid pairs first
    if nms_pre > 0:
        top, inds = ranked.topk(nms_pre)
    else:
        top, inds = ranked, torch.arange(ranked.shape[0], device=ranked.device)
    return top, inds // scores.shape[1], inds % scores.shape[1]


def wide_enough(boxes: Tensor, valid: Tensor, cfg) -> Tensor:
    """``valid`` and, where ``cfg.min_bbox_size`` is set, boxes wider and higher than it (mmdet's
    ``_bbox_post_process``)."""
    if cfg.get('min_bbox_size', -1) >= 0:
        valid = valid & (boxes[:, 2] - boxes[:, 0] > cfg.min_bbox_size) & (
            boxes[:, 3] - boxes[:, 1] > cfg.min_bbox_size)
    return valid


def base_dense_head__predict_by_feat__as_mmdet(self,
                                               cls_scores: List[Tensor],
                                               bbox_preds: List[Tensor],
                                               score_factors: Optional[List[Tensor]] = None,
                                               batch_img_metas: Optional[List[dict]] = None,
                                               cfg=None,
                                               rescale: bool = False,
                                               with_nms: bool = True,
                                               **kwargs):
    """Detections as mmdet's ``BaseDenseHead.predict_by_feat`` makes them (RetinaNet, ATSS, FCOS, RTMDet, GFL,
    ...): per level the best ``nms_pre`` (prior, class) pairs above ``score_thr`` (MMDeploy: the best priors by
    their top class, every class kept), scores times the score factors (centerness) of the kept pairs, NMS
    within each class (MMDeploy: at most ``max_output_boxes_per_class`` per class, a zero row appended),
    ``max_per_img``. Registered for the heads of :func:`heads_with_base_post_processing` only."""
    cfg = self.test_cfg if cfg is None else cfg
    img_shape = batch_img_metas[0]['img_shape']
    featmap_sizes = [score.shape[-2:] for score in cls_scores]
    priors = self.prior_generator.grid_priors(featmap_sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
    with_factors = score_factors is not None and score_factors[0] is not None
    score_thr, nms_pre = cfg.get('score_thr', 0), cfg.get('nms_pre', -1)
    kept = dict(deltas=[], priors=[], scores=[], labels=[], factors=[])
    for level, (cls_score, delta, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
        top, prior_inds, labels = top_pairs(
            _activation(self, _flat(cls_score, self.cls_out_channels)), score_thr, nms_pre)
        kept['scores'].append(top)
        kept['labels'].append(labels)
        kept['deltas'].append(_flat(delta, self.bbox_coder.encode_size)[prior_inds])
        kept['priors'].append(get_box_tensor(prior)[prior_inds])
        if with_factors:
            kept['factors'].append(_flat(score_factors[level], 1)[:, 0].sigmoid()[prior_inds])
    scores = torch.cat(kept['scores'])
    valid = scores > score_thr
    if with_factors:
        scores = scores * torch.cat(kept['factors'])
    boxes = _decode(self.bbox_coder, torch.cat(kept['priors']), torch.cat(kept['deltas']), img_shape)
    valid = wide_enough(boxes, valid, cfg)
    scores = torch.where(valid, scores, scores.new_zeros(()))  # out of the NMS below (score threshold 0)
    labels = torch.cat(kept['labels'])
    keep, kept_scores = nms_per_group(boxes, scores, labels, cfg.nms.get('iou_threshold', 0.5), 0.0,
                                      cfg.get('max_per_img', _ALL))
    dets = torch.cat([boxes[keep], kept_scores[:, None]], dim=-1)[None]
    return dets, labels[keep][None]


for _path in heads_with_base_post_processing():
    FUNCTION_REWRITER.register_rewriter(_path, backend=BACKEND)(base_dense_head__predict_by_feat__as_mmdet)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.yolox_head.YOLOXHead.predict_by_feat', backend=BACKEND)
def yolox_head__predict_by_feat__as_mmdet(self,
                                          cls_scores: List[Tensor],
                                          bbox_preds: List[Tensor],
                                          objectnesses: Optional[List[Tensor]],
                                          batch_img_metas: Optional[List[dict]] = None,
                                          cfg=None,
                                          rescale: bool = False,
                                          with_nms: bool = True):
    """Detections as mmdet's ``YOLOXHead.predict_by_feat`` makes them: each prior's best class, scored with
    its objectness, kept at ``>= score_thr``, NMS within each class, no clipping and no ``max_per_img``
    (MMDeploy: ``post_processing``'s ``pre_top_k``/``keep_top_k`` and a zero row)."""
    cfg = self.test_cfg if cfg is None else cfg
    featmap_sizes = [score.shape[-2:] for score in cls_scores]
    priors = torch.cat(
        self.prior_generator.grid_priors(
            featmap_sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device, with_stride=True))
    cls = torch.cat([_flat(s, self.cls_out_channels) for s in cls_scores]).sigmoid()
    deltas = torch.cat([_flat(b, 4) for b in bbox_preds])
    objectness = torch.cat([_flat(o, 1)[:, 0] for o in objectnesses]).sigmoid()
    boxes = self._bbox_decode(priors, deltas)
    max_scores, labels = cls.max(1)
    scores = max_scores * objectness
    scores = torch.where(scores >= cfg.score_thr, scores, scores.new_zeros(()))
    keep, kept_scores = nms_per_group(boxes, scores, labels, cfg.nms.get('iou_threshold', 0.5), 0.0,
                                      cfg.get('max_per_img', _ALL))
    dets = torch.cat([boxes[keep], kept_scores[:, None]], dim=-1)[None]
    return dets, labels[keep][None]


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.yolo_head.YOLOV3Head.predict_by_feat', backend=BACKEND)
def yolov3_head__predict_by_feat__as_mmdet(self,
                                           pred_maps: Sequence[Tensor],
                                           batch_img_metas: Optional[List[dict]] = None,
                                           cfg=None,
                                           rescale: bool = False,
                                           with_nms: bool = True):
    """Detections as mmdet's ``YOLOV3Head.predict_by_feat`` makes them: priors whose objectness reaches
    ``conf_thr``, the best ``nms_pre`` (prior, class) pairs above ``score_thr`` over all levels together, scores
    times objectness after that ranking, ``min_bbox_size``, NMS within each class, ``max_per_img``, no clipping."""
    cfg = self.test_cfg if cfg is None else cfg
    featmap_sizes = [pred_map.shape[-2:] for pred_map in pred_maps]
    priors = torch.cat(self.prior_generator.grid_priors(featmap_sizes, device=pred_maps[0].device))
    preds = torch.cat([_flat(pred_map, self.num_attrib) for pred_map in pred_maps])
    strides = torch.cat([
        preds.new_full((pred_map.shape[-2] * pred_map.shape[-1] * self.num_base_priors, ), stride)
        for pred_map, stride in zip(pred_maps, self.featmap_strides)
    ])
    deltas = torch.cat([preds[:, :2].sigmoid(), preds[:, 2:4]], dim=1)
    boxes = self.bbox_coder.decode(priors, deltas, strides[:, None])
    objectness, cls_scores = preds[:, 4].sigmoid(), preds[:, 5:].sigmoid()
    conf_thr = cfg.get('conf_thr', -1)
    if conf_thr > 0:  # out of the ranking below, as mmdet drops them first
        cls_scores = torch.where((objectness >= conf_thr)[:, None], cls_scores, cls_scores.new_full((), -1.0))
    score_thr = cfg.get('score_thr', 0)
    top, prior_inds, labels = top_pairs(cls_scores, score_thr, cfg.get('nms_pre', -1))
    boxes = boxes[prior_inds]
    valid = wide_enough(boxes, top > score_thr, cfg)
    scores = torch.where(valid, top * objectness[prior_inds], top.new_zeros(()))
    keep, kept_scores = nms_per_group(boxes, scores, labels, cfg.nms.get('iou_threshold', 0.45), 0.0,
                                      cfg.get('max_per_img', _ALL))
    dets = torch.cat([boxes[keep], kept_scores[:, None]], dim=-1)[None]
    return dets, labels[keep][None]


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.cascade_roi_head.CascadeRoIHead.predict_mask', backend=BACKEND)
def cascade_roi_head__predict_mask__as_mmdet(self, x, batch_img_metas: List[dict], results_list, rescale=False):
    """Cascade masks as mmdet merges them: the mean of the stages' mask *probabilities* (MMDeploy: the sigmoid
    of the mean logits, which moved mask borders: IoU 0.95 measured). MMDeploy's mask-head rewriter applies a
    sigmoid, so it gets the logit of the mean probability."""
    dets, labels = results_list
    boxes = dets[..., :4]
    batch_index = torch.arange(
        boxes.shape[0], device=boxes.device).float().view(-1, 1, 1) + boxes.new_zeros(boxes.shape[:2]).unsqueeze(-1)
    rois = torch.cat([batch_index, boxes], dim=-1).view(-1, 5)
    probability = sum(self._mask_forward(i, x, rois)['mask_preds'].sigmoid()
                      for i in range(self.num_stages)) / self.num_stages
    logits = torch.log(probability) - torch.log1p(-probability)
    masks = self.mask_head[-1].predict_by_feat(logits, results_list, batch_img_metas, self.test_cfg, rescale=rescale)
    return dets, labels, masks.reshape(boxes.shape[0], boxes.shape[1], masks.shape[-2], masks.shape[-1])
