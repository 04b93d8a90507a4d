"""The deployed ONNX Runtime graph pads the image itself, so that it knows the image's own size.

mmdet pads a batch to the data preprocessor's ``pad_size_divisor`` (after normalising it) and keeps each image's
own size as ``img_shape``: proposals and boxes are clipped to the image, not to the padding. MMDeploy feeds the
graph the padded batch and takes ``img_shape`` from the input's shape, so boxes reaching into the padding are
clipped at the padded border, the RoIs and the NMS change, and with them the detections (measured on a tiny Dual
Faster R-CNN at 141x160 padded to 160x160: labels differ, a box off by 0.55 of the image size).

So, for ONNX Runtime, the deployed model takes the resized, normalised image *unpadded* (the backend model's data
preprocessor pads to 1) and the graph pads it, to the same divisor with the same value, right before the
backbone; MMDeploy's ``img_shape`` is then the image's own. The divisor travels in the deploy config
(:data:`GRAPH_PADDING`); DETR-style transformers, which mask the padding, get their masks in the graph too.

TensorRT keeps MMDeploy's padded input (its dynamic ``Pad`` support is not checked here).
"""
import copy
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdeploy.core import FUNCTION_REWRITER
from mmengine.config import Config
from torch import Tensor

BACKEND = 'onnxruntime'
#: deploy-config key: ``dict(size_divisor=..., value=...)`` of the padding the graph adds
GRAPH_PADDING = 'graph_padding'
#: every detector ``extract_feat`` MMDeploy's detector forwards call (cbnet's composite detectors override it)
EXTRACT_FEAT = (
    'mmdet.models.detectors.two_stage.TwoStageDetector.extract_feat',
    'mmdet.models.detectors.single_stage.SingleStageDetector.extract_feat',
    'mmdet.models.detectors.single_stage_instance_seg.SingleStageInstanceSegmentor.extract_feat',
    'mmdet.models.detectors.base_detr.DetectionTransformer.extract_feat',
    'cbnet.models.detectors.AssistedDetectorMixin.extract_feat',  # (the module's name is shadowed)
)


def pads_in_graph(deploy_cfg: Config) -> bool:
    from mmdeploy.utils import Backend, get_backend
    return get_backend(deploy_cfg) == Backend.ONNXRUNTIME


def with_padding_in_graph(deploy_cfg: Config, model_cfg: Config) -> Tuple[Config, Config]:
    """The configs of the deployed model: the data preprocessor pads to 1 and the deploy config carries the
    padding the graph adds. Unchanged for other backends and for models that do not pad (DETR, DINO)."""
    preprocessor = model_cfg.model.get('data_preprocessor') or {}
    divisor = int(preprocessor.get('pad_size_divisor', 1))
    if divisor <= 1 or not pads_in_graph(deploy_cfg):
        return deploy_cfg, model_cfg
    deploy_cfg, model_cfg = copy.deepcopy(deploy_cfg), copy.deepcopy(model_cfg)
    model_cfg.model.data_preprocessor.pad_size_divisor = 1
    deploy_cfg[GRAPH_PADDING] = dict(size_divisor=divisor, value=float(preprocessor.get('pad_value', 0)))
    return deploy_cfg, model_cfg


def padded_size(size, divisor: int):
    """``size`` rounded up to a multiple of ``divisor`` (traced sizes stay dynamic in the graph)."""
    return (size + divisor - 1) // divisor * divisor


def pad_to_divisor(inputs: Tensor, padding: Optional[dict]) -> Tensor:
    """``inputs`` padded at the bottom and right as mmdet's ``stack_batch`` pads a batch."""
    if not padding:
        return inputs
    height, width = inputs.shape[-2:]
    divisor = padding['size_divisor']
    return F.pad(
        inputs, (0, padded_size(width, divisor) - width, 0, padded_size(height, divisor) - height),
        value=padding['value'])


def detector__extract_feat__padded(self, batch_inputs: Tensor):
    """The detector's own ``extract_feat`` on the image padded as mmdet pads it (padding twice adds nothing)."""
    ctx = FUNCTION_REWRITER.get_context()
    return ctx.origin_func(self, pad_to_divisor(batch_inputs, ctx.cfg.get(GRAPH_PADDING)))


for _name in EXTRACT_FEAT:
    FUNCTION_REWRITER.register_rewriter(_name, backend=BACKEND)(detector__extract_feat__padded)


def padding_masks(img_shape: Sequence, padding: dict, feat_sizes: Sequence) -> list:
    """mmdet's DETR masks of one image (True on the padding) at each feature size: the mask at input resolution
    resized by nearest neighbour, as ``DeformableDETR.pre_transformer`` makes them."""
    height, width = img_shape[0], img_shape[1]
    divisor = padding['size_divisor']
    device = feat_sizes[0].device if isinstance(feat_sizes[0], Tensor) else None
    rows = torch.arange(padded_size(height, divisor), device=device) >= height
    cols = torch.arange(padded_size(width, divisor), device=device) >= width
    mask = (rows[:, None] | cols[None, :]).float()[None, None]
    return [F.interpolate(mask, size=size)[0].to(torch.bool) for size in feat_sizes]


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.detectors.deformable_detr.DeformableDETR.pre_transformer', backend=BACKEND)
def deformable_detr__pre_transformer__masked(self, mlvl_feats: Tuple[Tensor], batch_data_samples=None):
    """mmdet masks the padding in the transformer's attention, positions and reference points whenever an image
    is smaller than its batch; ``pre_transformer`` leaves the masks out during ONNX export. With the padding in
    the graph, they are put back: the masks, the masked sine positions and the valid ratios."""
    ctx = FUNCTION_REWRITER.get_context()
    encoder_inputs, decoder_inputs = ctx.origin_func(self, mlvl_feats, batch_data_samples)
    padding = ctx.cfg.get(GRAPH_PADDING)
    if not padding:
        return encoder_inputs, decoder_inputs
    if mlvl_feats[0].shape[0] != 1:
        raise NotImplementedError('cbnet\'s ONNX Runtime DETR padding masks export batch 1: deploy with one image '
                                  'per call.')
    masks = padding_masks(batch_data_samples[0].img_shape, padding, [feat.shape[-2:] for feat in mlvl_feats])
    positions = [(self.positional_encoding(mask).flatten(2).transpose(1, 2) + self.level_embed[level].view(1, 1, -1))
                 for level, mask in enumerate(masks)]
    mask_flatten = torch.cat([mask.flatten(1) for mask in masks], 1)
    valid_ratios = torch.stack([self.get_valid_ratio(mask) for mask in masks], 1)
    encoder_inputs.update(feat_mask=mask_flatten, feat_pos=torch.cat(positions, 1), valid_ratios=valid_ratios)
    decoder_inputs.update(memory_mask=mask_flatten, valid_ratios=valid_ratios)
    return encoder_inputs, decoder_inputs
