"""Agreement between a deployed detector and PyTorch: same detections, boxes, scores, labels and masks."""
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.structures import InstanceData


@dataclass(frozen=True)
class Tolerance:
    """What "agree" means. ``box``: the largest box-coordinate difference, as a fraction of the image's larger
    side; ``score``: absolute; ``mask_iou``: the smallest IoU of matched masks, unless they differ in at most
    ``mask_pixels`` pixels (rounding at the 0.5 threshold flips single border pixels: one pixel of a 20-pixel
    mask is IoU 0.95)."""

    box: float = 1e-3
    score: float = 1e-4
    mask_iou: float = 0.99
    mask_pixels: int = 2


@dataclass
class Agreement:
    """How one image's backend detections compare with PyTorch's (detections matched one to one)."""

    image: str
    num_torch: int
    num_backend: int
    matched: int = 0
    max_box_diff: float = 0.0  # fraction of the image's larger side
    max_score_diff: float = 0.0
    labels_equal: bool = True
    min_mask_iou: Optional[float] = None
    max_mask_pixels: Optional[int] = None  # differing pixels of the worst matched mask pair
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), ok=self.ok)

    def line(self) -> str:
        masks = '' if self.min_mask_iou is None else (f', min mask IoU {self.min_mask_iou:.4f} (at most '
                                                      f'{self.max_mask_pixels} pixels differ)')
        verdict = 'agree' if self.ok else 'DISAGREE: ' + '; '.join(self.problems)
        return (f'{self.image}: {self.num_backend} detections (PyTorch {self.num_torch}), max box diff '
                f'{self.max_box_diff:.2e} of the image size, max score diff {self.max_score_diff:.2e}, labels '
                f"{'equal' if self.labels_equal else 'DIFFER'}{masks}: {verdict}")


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> Tuple[float, int]:
    """IoU and the number of differing pixels."""
    a, b = a.bool(), b.bool()
    union = (a | b).sum().item()
    return (1.0 if union == 0 else (a & b).sum().item() / union), int((a ^ b).sum().item())


def compare_instances(torch_pred: InstanceData,
                      backend_pred: InstanceData,
                      image_size: int,
                      tolerance: Tolerance = Tolerance(),
                      image: str = '') -> Agreement:
    """Match every PyTorch detection (best score first) to the unused backend detection of the same label with
    the closest box and score, then check the tolerances. ``image_size``: the larger side of the image."""
    n_t, n_b = len(torch_pred), len(backend_pred)
    result = Agreement(image=image, num_torch=n_t, num_backend=n_b)
    if n_t != n_b:
        result.problems.append(f'{n_b} detections instead of {n_t}')
    tb, ts, tl = torch_pred.bboxes.float().cpu(), torch_pred.scores.float().cpu(), torch_pred.labels.cpu()
    bb, bs, bl = backend_pred.bboxes.float().cpu(), backend_pred.scores.float().cpu(), backend_pred.labels.cpu()
    with_masks = 'masks' in torch_pred and 'masks' in backend_pred
    used = torch.zeros(n_b, dtype=torch.bool)
    mask_ious = []
    for i in ts.argsort(descending=True).tolist():
        if used.all():
            break
        box_diff = (bb - tb[i]).abs().amax(dim=1) / image_size
        cost = box_diff + (bs - ts[i]).abs()
        cost[used] = float('inf')
        same_label = bl == tl[i]
        j = int(torch.where(same_label & ~used, cost, torch.full_like(cost, float('inf'))).argmin())
        if not same_label[j] or used[j]:
            result.labels_equal = False
            j = int(cost.argmin())
        used[j] = True
        result.matched += 1
        result.max_box_diff = max(result.max_box_diff, float(box_diff[j]))
        result.max_score_diff = max(result.max_score_diff, float((bs[j] - ts[i]).abs()))
        if with_masks:
            mask_ious.append(_mask_iou(torch_pred.masks[i].cpu(), backend_pred.masks[j].cpu()))
    if mask_ious:
        result.min_mask_iou = min(iou for iou, _ in mask_ious)
        result.max_mask_pixels = max(pixels for _, pixels in mask_ious)
    if not result.labels_equal:
        result.problems.append('labels differ')
    if result.max_box_diff > tolerance.box:
        result.problems.append(f'box diff {result.max_box_diff:.2e} > {tolerance.box:.0e} of the image size')
    if result.max_score_diff > tolerance.score:
        result.problems.append(f'score diff {result.max_score_diff:.2e} > {tolerance.score:.0e}')
    bad_masks = [(iou, px) for iou, px in mask_ious if iou < tolerance.mask_iou and px > tolerance.mask_pixels]
    if bad_masks:
        result.problems.append(f'{len(bad_masks)} masks with IoU < {tolerance.mask_iou} and more than '
                               f'{tolerance.mask_pixels} differing pixels (worst IoU {min(bad_masks)[0]:.4f})')
    if ('masks' in torch_pred) != ('masks' in backend_pred):
        result.problems.append('masks only from ' + ('PyTorch' if 'masks' in torch_pred else 'the backend'))
    return result


class ParityError(AssertionError):
    """The backend's detections disagree with PyTorch's beyond the tolerance (the message has the numbers)."""
