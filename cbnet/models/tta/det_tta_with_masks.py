"""Test-time augmentation (multi-scale + flip) for box AND instance-mask detectors.

mmdet 3.3's ``DetTTAModel`` refuses predictions with masks, so Mask R-CNN / Cascade Mask / HTC (and their
CB versions) could not be tested with ``--tta``. This model merges their boxes exactly as mmdet does and
merges masks by voting (see :mod:`cbnet.models.tta.mask_voting`). Box-only predictions go through mmdet's
own code path unchanged.
"""
from typing import List, Optional

import torch
from mmcv.ops import batched_nms
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from .mask_voting import find_voters, vote_masks

_REQUIRED_META_KEYS = ('ori_shape', 'flip', 'flip_direction')
# What mmdet's tools/test.py uses when a config has no tta_model.
_DEFAULT_TTA_CFG = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)


@MODELS.register_module()
class DetTTAModelWithMasks(DetTTAModel):
    """``DetTTAModel`` that also merges instance masks.

    Args:
        tta_cfg: ``dict(nms=dict(type='nms' | 'soft_nms', iou_threshold=...), max_per_img=...)`` as for
            mmdet's ``DetTTAModel`` (missing keys: ``nms`` with IoU 0.5, ``max_per_img=100``), plus optional
            ``mask_voting=dict(iou_threshold=None, mask_thr=0.5)``: a pre-NMS detection of the same class
            votes for a kept one when their boxes' IoU is >= ``iou_threshold`` (``None``: the NMS
            threshold); merged pixels are those with a score-weighted vote >= ``mask_thr``.
        **kwargs: ``module`` (the detector) and ``data_preprocessor``, as for ``BaseTTAModel``.

    Example::

        tta_model = dict(type='DetTTAModelWithMasks',
                         tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    """

    def __init__(self, tta_cfg: Optional[dict] = None, **kwargs) -> None:
        tta_cfg = ConfigDict({**_DEFAULT_TTA_CFG, **(tta_cfg or {})})
        voting = ConfigDict(iou_threshold=None, mask_thr=0.5)
        voting.update(tta_cfg.get('mask_voting', {}))
        if voting.iou_threshold is None:
            voting.iou_threshold = tta_cfg.nms.get('iou_threshold', 0.5)
        unknown = set(voting) - {'iou_threshold', 'mask_thr'}
        if unknown:
            raise ValueError(f'Unknown tta_cfg.mask_voting keys {sorted(unknown)}; '
                             f'allowed: iou_threshold, mask_thr.')
        tta_cfg.mask_voting = voting
        super().__init__(tta_cfg=tta_cfg, **kwargs)

    def test_step(self, data: dict) -> List[DetDataSample]:
        """Predict every view, hiding its flip from the detector, then merge.

        A detector's prediction in a view's own frame does not depend on how the view was made, but mmdet
        3.3's cascade and HTC heads read ``flip`` from the meta info when they average their stages' mask
        logits (``merge_aug_masks``, a leftover of 2.x TTA) and crash on flipped views (or would flip the
        masks away from their boxes). The flip is only needed here, for merging.
        """
        if not isinstance(data, dict) or 'data_samples' not in data:
            return super().test_step(data)
        predictions = []
        for view in range(len(data['data_samples'])):
            view_data = {key: value[view] for key, value in data.items()}
            flips = [sample.metainfo.get('flip') for sample in view_data['data_samples']]
            for sample, flip in zip(view_data['data_samples'], flips):
                if flip is not None:
                    sample.set_metainfo(dict(flip=False))
            view_predictions = self.module.test_step(view_data)
            for sample, flip in zip(view_predictions, flips):
                if flip is not None:
                    sample.set_metainfo(dict(flip=flip))
            predictions.append(view_predictions)
        return self.merge_preds(list(zip(*predictions)))

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        """Merge the views of one image; masks (if any) end up at the original image size."""
        for data_sample in data_samples:
            missing = [key for key in _REQUIRED_META_KEYS if key not in data_sample.metainfo]
            if missing:
                raise KeyError(f'TTA needs the meta keys {missing}: add them to PackDetInputs(meta_keys=...) '
                               f'in tta_pipeline.')
        with_masks = [data_sample.pred_instances.get('masks', None) is not None for data_sample in data_samples]
        if not any(with_masks):
            return super()._merge_single_sample(data_samples)
        if not all(with_masks):
            raise ValueError('Some TTA views predicted masks and others did not; cannot merge them.')
        return self._merge_with_masks(data_samples)

    def _merge_with_masks(self, data_samples: List[DetDataSample]) -> DetDataSample:
        instances = [data_sample.pred_instances for data_sample in data_samples]
        metas = [data_sample.metainfo for data_sample in data_samples]
        ori_shape = tuple(metas[0]['ori_shape'][:2])
        for instance in instances:
            if tuple(instance.masks.shape[-2:]) != ori_shape:
                raise ValueError(f'TTA mask merging needs masks at the original image size {ori_shape}, got '
                                 f'{tuple(instance.masks.shape[-2:])}: predict with rescale=True.')

        boxes, scores = self.merge_aug_bboxes([inst.bboxes for inst in instances], [inst.scores for inst in instances],
                                              metas)
        labels = torch.cat([inst.labels for inst in instances])
        if boxes.numel() == 0:
            return data_samples[0]
        dets, keep = batched_nms(boxes, scores, labels, self.tta_cfg.nms)
        dets, keep = dets[:self.tta_cfg.max_per_img], keep[:self.tta_cfg.max_per_img]

        voters = find_voters(boxes[keep], labels[keep], boxes, labels, self.tta_cfg.mask_voting.iou_threshold)
        voters[torch.arange(len(keep), device=keep.device), keep] = True  # a kept detection always votes
        masks = vote_masks(
            voters,
            scores, [inst.masks for inst in instances],
            [meta['flip_direction'] if meta['flip'] else None for meta in metas],
            mask_thr=self.tta_cfg.mask_voting.mask_thr)

        results = InstanceData()
        results.bboxes = dets[:, :-1].clone()
        results.scores = dets[:, -1].clone()
        results.labels = labels[keep]
        results.masks = masks
        merged = data_samples[0]
        merged.pred_instances = results
        return merged
