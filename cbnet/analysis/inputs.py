"""Generated inputs for cost measurements, shaped like a loaded COCO batch of the model's task.

Box detectors get boxes and labels; instance-mask detectors (R-CNN mask heads, MaskFormer/Mask2Former) get
masks too; HTC's semantic branch gets a stride-8 semantic map and panoptic MaskFormer/Mask2Former a
full-resolution one with stuff classes; grounding detectors (GLIP, Grounding DINO) the class names as text
prompt. A wrong kind of ground truth would make the loss fail or, worse,
skip its most expensive part.
"""
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from .models import is_detector


def num_classes(model: nn.Module) -> int:
    """The class count of the model's heads (the first ``num_classes`` > 1 found), 2 if none."""
    for module in model.modules():
        num = getattr(module, 'num_classes', None)
        if isinstance(num, int) and num > 1:
            return num
    return 2


def ground_truth_kind(model: nn.Module) -> Dict[str, Any]:
    """The ``mmdet.testing.demo_mm_inputs`` options that give ``model`` the ground truth its losses read."""
    roi_head = getattr(model, 'roi_head', None)
    panoptic_head = getattr(model, 'panoptic_head', None)
    if panoptic_head is not None:  # MaskFormer / Mask2Former: masks always; stuff maps when panoptic
        stuff = int(getattr(panoptic_head, 'num_stuff_classes', 0))
        return dict(with_mask=True, with_semantic=stuff > 0, sem_seg_output_strides=1)
    return dict(
        with_mask=bool(model.with_mask),
        with_semantic=bool(getattr(roi_head, 'with_semantic', False)),
        sem_seg_output_strides=8)


def make_batch(model: nn.Module, shape: Tuple[int, int], batch_size: int, training: bool, num_boxes: int = 5) -> dict:
    """Random images (uint8, like a loaded image) and ground truth, run through the model's preprocessor.

    Deterministic: the same model and arguments give the same batch (mmdet's generator is seeded).
    """
    h, w = shape
    if not is_detector(model):
        device = next(model.parameters()).device
        return dict(inputs=torch.randn(batch_size, 3, h, w, device=device))
    from mmdet.testing import demo_mm_inputs
    packed = demo_mm_inputs(
        batch_size=batch_size,
        image_shapes=(3, h, w),
        num_items=[num_boxes] * batch_size,
        num_classes=num_classes(model),
        **ground_truth_kind(model))
    batch = model.data_preprocessor(packed, training=training)
    if hasattr(model, 'language_model'):  # grounding detectors: the class names as the text prompt
        add_class_prompt(batch['data_samples'], num_classes(model))
    return batch


def add_class_prompt(data_samples, count: int) -> None:
    """COCO's first ``count`` class names as every sample's text prompt (what a grounding detector trained on
    COCO reads; the tokens, and so the cost of the text, are those of the real prompt)."""
    from mmdet.datasets import CocoDataset
    names = tuple(CocoDataset.METAINFO['classes'])
    prompt = tuple(names[i % len(names)] for i in range(count))
    for sample in data_samples:
        sample.text = prompt
        sample.custom_entities = True


def flatten_tensors(obj: Any) -> Tuple[torch.Tensor, ...]:
    """All tensors in nested outputs (tuples, lists, dicts, branch containers, dataclass-like objects)."""
    if isinstance(obj, torch.Tensor):
        return (obj, )
    if isinstance(obj, dict):
        obj = list(obj.values())
    elif hasattr(obj, 'branches') and not isinstance(obj, nn.Module):  # MultiBranchFeatures
        obj = list(obj.branches)
    elif not isinstance(obj, (list, tuple)) and hasattr(obj, '__dict__'):
        obj = list(vars(obj).values())
    if isinstance(obj, (list, tuple)):
        out: Tuple[torch.Tensor, ...] = ()
        for item in obj:
            out += flatten_tensors(item)
        return out
    return ()


class TensorForward(nn.Module):
    """The tensor forward of a model as ``forward(inputs) -> tuple of tensors`` (what a tracer needs).

    Detectors run ``_forward(inputs, data_samples)``, as mmdet's ``get_flops.py`` does: backbone, neck and
    heads without post-processing. Other models (bare backbones) run ``forward(inputs)``.
    """

    def __init__(self, model: nn.Module, data_samples: Optional[list] = None) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if is_detector(self.model):
            return flatten_tensors(self.model._forward(inputs, self.data_samples))
        return flatten_tensors(self.model(inputs))
