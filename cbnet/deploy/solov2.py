"""SOLOv2 deployed to ONNX Runtime post-processes as mmdet's ``SOLOV2Head.predict_by_feat`` does.

With MMDeploy 1.3.1's SOLOv2 rewriter and backend model the tiny Dual SOLOv2 of ``tests/test_deploy.py``
(random weights, mmdet's test thresholds, 20 masks per image) had the right number of detections but other
labels, scores off by up to 0.40, every box off by the whole image size and masks of IoU 0.60-0.76. Measured
causes, each alone (the other two fixed), on the three parity images:

1. Candidates: MMDeploy keeps each grid cell's *best class* only; mmdet keeps every (cell, class) pair above
   ``score_thr``, so one cell may give masks of several classes (alone: labels differ, scores off by up to 0.40).
2. Boxes: mmdet's SOLOv2 returns zero boxes; MMDeploy's backend model zeroes them only when the model's type is
   ``SOLO``/``SOLOv2`` (a CB model is ``CBSOLOv2``), else it returns the full image box it pasted the masks
   into (alone: boxes off by 1.0 of the image size).
3. Masks: MMDeploy's graph returns them at feature resolution (1/4 of the padded input) and its backend model
   stretches the *padded* mask over the image (``grid_sample`` into the full image box) and thresholds at 0.5;
   mmdet upsamples by the mask stride, crops the padding at ``img_shape``, resizes bilinearly to the original
   image and thresholds at ``test_cfg.mask_thr`` (alone: mask IoU 0.80 and 0.90 on the padded and resized
   images, 0.994 on the one neither padded nor resized; with ``mask_thr`` 0, 0.87-0.94).

MMDeploy's matrix NMS rewriter decays the scores as mmdet's ``mask_matrix_nms`` does; it zeroes those below
``filter_thr`` instead of dropping them (its backend model drops zero scores), keeps nothing when
``max_per_img`` is -1, and its ``reshape(n, -1)`` fails in ONNX Runtime when mmdet's candidates are none (an
image with no score above ``score_thr``); it is reused with the last two handled. With the fixes: scores within
2.2e-6, the same labels, masks at most 1 pixel apart.

Fixes: the ONNX Runtime rewriter below (the graph outputs mmdet's detections, their mask probabilities at feature
resolution as MMDeploy's graph does, and MMDeploy's full image boxes) and :class:`SOLOv2End2EndModel`, the
backend model that makes mmdet's masks of them in Python (upsampled, cropped, resized, thresholded: the original
image size is not in the graph) and zeroes the boxes; :func:`with_mmdet_mask_postprocessing` selects it in the
deploy config. MMDeploy's own backend model (its ``tools/test.py``) still returns full image boxes and stretches
the padded masks. TensorRT keeps MMDeploy's rewriter.
"""
import copy
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from mmdeploy.codebase.mmdet.deploy import object_detection_model
from mmdeploy.codebase.mmdet.models.layers.matrix_nms import mask_matrix_nms__default
from mmdeploy.core import FUNCTION_REWRITER
from mmengine.config import Config
from torch import Tensor

from .rewriters import _ALL, BACKEND, _single_image

#: the backend model of SOLOv2 heads (``codebase_config.model_type``)
SOLOV2_BACKEND_MODEL = 'cbnet_solov2_end2end'


def candidates(cls_scores: Tensor, score_thr: float) -> Tuple[Tensor, Tensor]:
    """mmdet's candidates: every (grid cell, class) pair scoring above ``score_thr``; their cells and labels."""
    pairs = (cls_scores > score_thr).nonzero()
    return pairs[:, 0], pairs[:, 1]


def matrix_nms(masks: Tensor, labels: Tensor, scores: Tensor, areas: Tensor, cfg) -> Tuple[Tensor, Tensor, Tensor]:
    """mmdet's ``mask_matrix_nms`` through MMDeploy's rewriter of it (the same decay). It zeroes the scores below
    ``filter_thr`` (the backend model drops them) and needs at least one mask (its ``reshape(n, -1)`` fails on
    none in ONNX Runtime), so an empty mask of score 0 is appended: it overlaps nothing and is dropped with the
    zero scores. ``max_per_img`` -1 (mmdet: all) is MMDeploy's 0. Returns scores, labels and the indices of the
    kept masks (the empty one: ``len(masks)``), best first."""
    masks = torch.cat([masks, masks.new_zeros((1, *masks.shape[1:]))])
    labels, scores, areas = (torch.cat([x, x.new_zeros(1)]) for x in (labels, scores, areas))
    max_num = cfg.max_per_img if cfg.max_per_img > 0 else _ALL  # (MMDeploy's topk keeps k within the size)
    scores, labels, _, keep_inds = mask_matrix_nms__default(
        masks,
        labels,
        scores,
        filter_thr=cfg.filter_thr,
        nms_pre=cfg.nms_pre,
        max_num=max_num,
        kernel=cfg.kernel,
        sigma=cfg.sigma,
        mask_area=areas)
    return scores, labels, keep_inds


def dynamic_conv(self, mask_feats: Tensor, kernels: Tensor) -> Tensor:
    """mmdet's dynamic convolution of the (1, C, H, W) mask features with (N, C) 1x1 kernels, as a matrix product:
    ONNX export needs the kernel shape of a convolution, which a dynamic number of kernels leaves unknown."""
    if self.dynamic_conv_size != 1:
        raise NotImplementedError(f'cbnet\'s ONNX Runtime SOLOv2 post-processing exports 1x1 dynamic kernels (as '
                                  f'MMDeploy\'s): set the mask head\'s dynamic_conv_size=1 (got '
                                  f'{self.dynamic_conv_size}).')
    features = _single_image(mask_feats, 'SOLOv2')
    return (kernels @ features.flatten(1)).reshape(-1, *features.shape[1:])


def full_image_boxes(scores: Tensor, img_shape) -> Tensor:
    """(N, 4) boxes (0, 0, w, h): MMDeploy's SOLO boxes, into which its own backend model pastes the masks (so
    that MMDeploy's tools still get the masks; :class:`SOLOv2End2EndModel` returns mmdet's zero boxes)."""
    height, width = (torch.as_tensor(size).to(scores) for size in img_shape[:2])
    corner = torch.stack([width * 0, height * 0, width, height])
    return scores[:, None] * 0 + corner


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.solov2_head.SOLOV2Head.predict_by_feat', backend=BACKEND)
def solov2_head__predict_by_feat__as_mmdet(self, mlvl_kernel_preds: List[Tensor], mlvl_cls_scores: List[Tensor],
                                           mask_feats: Tensor, batch_img_metas: List[Dict], **kwargs):
    """SOLOv2's masks as mmdet's ``SOLOV2Head.predict_by_feat`` makes them (fix 1 and the graph's part of 2 and
    3): local maxima of the class scores, every (cell, class) pair above ``score_thr``, its dynamic-kernel mask,
    masks no larger than their level's stride dropped, scores times maskness, matrix NMS; (1, N, 5) dets with
    the image as box, (1, N) labels, (1, N, h, w) mask probabilities at feature resolution (the rest of mmdet's
    mask post-processing is :func:`mmdet_masks`, in the backend model; ``export_postprocess_mask`` is not read)."""
    cfg = self.test_cfg
    scores, kernels, strides = [], [], []
    for level, (kernel_pred, cls_score) in enumerate(zip(mlvl_kernel_preds, mlvl_cls_scores)):
        cls_score = cls_score.sigmoid()
        local_max = F.max_pool2d(cls_score, 2, stride=1, padding=1)
        cls_score = cls_score * (local_max[:, :, :-1, :-1] == cls_score)
        cls_score = _single_image(cls_score, 'SOLOv2').permute(1, 2, 0).reshape(-1, self.cls_out_channels)
        scores.append(cls_score)
        kernels.append(_single_image(kernel_pred, 'SOLOv2').permute(1, 2, 0).reshape(-1, self.kernel_out_channels))
        strides.append(torch.full_like(cls_score[:, 0], self.strides[level]))
    scores, kernels, strides = torch.cat(scores), torch.cat(kernels), torch.cat(strides)
    cells, labels = candidates(scores, cfg.score_thr)
    scores = scores[cells, labels]
    mask_preds = dynamic_conv(self, mask_feats, kernels[cells]).sigmoid()
    masks = mask_preds > cfg.mask_thr
    areas = masks.sum((1, 2)).float()
    keep = areas > strides[cells]
    masks, mask_preds, areas, scores, labels = masks[keep], mask_preds[keep], areas[keep], scores[keep], labels[keep]
    scores = scores * ((mask_preds * masks).sum((1, 2)) / areas)  # maskness
    scores, labels, keep_inds = matrix_nms(masks, labels, scores, areas, cfg)
    mask_preds = torch.cat([mask_preds, mask_preds.new_zeros((1, *mask_preds.shape[1:]))])[keep_inds]
    dets = torch.cat([full_image_boxes(scores, batch_img_metas[0]['img_shape']), scores[:, None]], dim=-1)[None]
    return dets, labels[None], mask_preds[None]


def mmdet_masks(probabilities: Tensor,
                img_shape,
                ori_shape,
                mask_stride: int,
                mask_thr: float,
                rescale: bool = True) -> Tensor:
    """mmdet's SOLOv2 masks from (N, h, w) mask probabilities at feature resolution: upsampled by the mask stride,
    cropped at ``img_shape`` (the padding off), resized to ``ori_shape`` (with ``rescale``), thresholded."""
    size = ori_shape[:2] if rescale else img_shape[:2]
    if probabilities.shape[0] == 0:
        return probabilities.new_zeros((0, *size), dtype=torch.bool)
    height, width = probabilities.shape[-2:]
    masks = F.interpolate(
        probabilities[None], size=(height * mask_stride, width * mask_stride), mode='bilinear',
        align_corners=False)[:, :, :img_shape[0], :img_shape[1]]
    if rescale:
        masks = F.interpolate(masks, size=size, mode='bilinear', align_corners=False)
    return masks[0] > mask_thr


class SOLOv2End2EndModel(object_detection_model.End2EndModel):
    """MMDeploy's backend detector with SOLOv2's masks and boxes as mmdet makes them (fixes 2 and 3): the graph's
    mask probabilities through :func:`mmdet_masks` (the original image size is not in the graph), zero boxes.
    Scores and labels are MMDeploy's."""

    def postprocessing_results(self,
                               batch_dets: Tensor,
                               batch_labels: Tensor,
                               batch_masks: Tensor,
                               data_samples,
                               rescale: bool = True):
        super().postprocessing_results(batch_dets, batch_labels, None, data_samples, rescale)
        mask_thr = self.model_cfg.model.test_cfg.mask_thr
        mask_stride = _mask_stride(self.model_cfg.model.mask_head)
        for dets, masks, sample in zip(batch_dets, batch_masks, data_samples):
            boxes = sample.pred_instances.bboxes
            sample.pred_instances.bboxes = boxes.new_zeros(boxes.shape)  # mmdet's SOLOv2 boxes
            masks = masks[dets[:, 4] > 0]  # the detections MMDeploy keeps (positive scores)
            sample.pred_instances.masks = mmdet_masks(masks, sample.img_shape, sample.ori_shape, mask_stride, mask_thr,
                                                      rescale).to(self.device)


def _mask_stride(mask_head: dict) -> int:
    """``SOLOV2Head.mask_stride`` from its config (``MaskFeatModule``'s default where unset)."""
    import inspect

    from mmdet.models.dense_heads.solov2_head import MaskFeatModule
    default = inspect.signature(MaskFeatModule).parameters['mask_stride'].default
    return mask_head.get('mask_feature_head', {}).get('mask_stride', default)


getattr(object_detection_model, '__BACKEND_MODEL').register_module(SOLOV2_BACKEND_MODEL, module=SOLOv2End2EndModel)


def has_solov2_head(model_cfg: Config) -> bool:
    """Whether the model's mask head post-processes with mmdet's ``SOLOV2Head.predict_by_feat``."""
    from mmdet.models.dense_heads import SOLOV2Head
    from mmdet.registry import MODELS
    head = model_cfg.model.get('mask_head')
    cls = MODELS.get(head['type']) if isinstance(head, dict) and head.get('type') else None
    return isinstance(cls, type) and issubclass(cls, SOLOV2Head) and cls.predict_by_feat is SOLOV2Head.predict_by_feat


def with_mmdet_mask_postprocessing(deploy_cfg: Config, model_cfg: Config) -> Tuple[Config, Config]:
    """The configs with :class:`SOLOv2End2EndModel` as the backend model of SOLOv2 heads on ONNX Runtime (whose
    graph the rewriter above makes); unchanged otherwise."""
    from mmdeploy.utils import Backend, get_backend
    if get_backend(deploy_cfg) != Backend.ONNXRUNTIME or not has_solov2_head(model_cfg):
        return deploy_cfg, model_cfg
    deploy_cfg = copy.deepcopy(deploy_cfg)
    deploy_cfg.codebase_config.model_type = SOLOV2_BACKEND_MODEL
    return deploy_cfg, model_cfg
