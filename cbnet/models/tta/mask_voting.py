"""Mask merging for test-time augmentation: undo flips, then let overlapping detections vote.

Each augmented view of an instance-segmentation model predicts masks already pasted at the ORIGINAL image
size (mmdet rescales them), so merging needs no resizing: a flipped view only has to be flipped back. After
the boxes of all views are merged by NMS, the mask of each kept detection is the score-weighted average of
the masks of the same-class pre-NMS detections whose boxes overlap it (IoU >= a threshold), binarised at
``mask_thr`` ("mask voting"). Voting works on any detector's outputs (Mask R-CNN, Cascade, HTC, CB
detectors) because it needs no access to the mask head, unlike re-running the head on merged boxes.

Memory: masks stay boolean and per view (never concatenated over views); floats are only used inside the
bounding region of one kept detection's voters at a time.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

_FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


def flip_masks(masks: Tensor, direction: str) -> Tensor:
    """Flip masks of shape (..., H, W) like ``mmdet.structures.bbox.bbox_flip`` flips their boxes."""
    if direction not in _FLIP_DIMS:
        raise ValueError(f'Unknown flip direction {direction!r}; expected one of {sorted(_FLIP_DIMS)}.')
    return masks.flip(_FLIP_DIMS[direction])


def find_voters(kept_boxes: Tensor, kept_labels: Tensor, boxes: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Return a (K, M) bool matrix: which of the M pre-NMS detections vote for each of the K kept ones.

    A voter has the kept detection's label and a box IoU >= ``iou_threshold`` with it.
    """
    if kept_boxes.numel() == 0 or boxes.numel() == 0:
        return kept_boxes.new_zeros((kept_boxes.shape[0], boxes.shape[0]), dtype=torch.bool)
    ious = bbox_overlaps(kept_boxes, boxes)
    return (ious >= iou_threshold) & (kept_labels[:, None] == labels[None, :])


def _occupancy(view_masks: Sequence[Tensor], flip_directions: Sequence[Optional[str]]) -> Tuple[Tensor, Tensor]:
    """Which rows (M, H) and columns (M, W) of each mask hold a pixel, in the unflipped image frame.

    One pass over the full-size masks; every later step works inside small windows.
    """
    rows, cols = [], []
    for masks, direction in zip(view_masks, flip_directions):
        masks = masks if masks.dtype == torch.bool else masks > 0  # (a compare on bool copies)
        # amax over uint8 is vectorised on the CPU, any() over bool is ~50x slower at COCO sizes
        masks = masks.view(torch.uint8)
        view_rows, view_cols = masks.amax(dim=-1) > 0, masks.amax(dim=-2) > 0
        if direction in ('vertical', 'diagonal'):
            view_rows = view_rows.flip(-1)
        if direction in ('horizontal', 'diagonal'):
            view_cols = view_cols.flip(-1)
        rows.append(view_rows)
        cols.append(view_cols)
    return torch.cat(rows), torch.cat(cols)


def _span(occupied: Tensor) -> Tuple[int, int]:
    """[first, last + 1) of the True entries of a 1-D bool tensor; (0, 0) when there are none."""
    where = occupied.nonzero().flatten()
    return (0, 0) if where.numel() == 0 else (int(where[0]), int(where[-1]) + 1)


def _window_in_view(y0: int, y1: int, x0: int, x1: int, height: int, width: int,
                    direction: Optional[str]) -> Tuple[slice, slice]:
    """The (rows, cols) slices of a flipped view that hold the unflipped window [y0, y1) x [x0, x1)."""
    if direction in ('vertical', 'diagonal'):
        y0, y1 = height - y1, height - y0
    if direction in ('horizontal', 'diagonal'):
        x0, x1 = width - x1, width - x0
    return slice(y0, y1), slice(x0, x1)


def vote_masks(voters: Tensor,
               scores: Tensor,
               view_masks: Sequence[Tensor],
               flip_directions: Sequence[Optional[str]],
               mask_thr: float = 0.5) -> Tensor:
    """Score-weighted mask voting for each kept detection.

    Args:
        voters: (K, M) bool, e.g. from :func:`find_voters`; the M detections are those of all views
            concatenated in view order.
        scores: (M, ) pre-NMS scores of the M detections (the voting weights).
        view_masks: one (N_v, H, W) mask tensor per view, as the view predicted it (bool, or [0, 1] float
            for soft masks); sum(N_v) == M.
        flip_directions: per view, the flip to undo (``None`` for an unflipped view).
        mask_thr: a pixel is in the merged mask when its weighted vote is >= ``mask_thr``.

    Returns:
        (K, H, W) bool masks at the views' (original image) size.
    """
    if len(view_masks) != len(flip_directions):
        raise ValueError(f'{len(view_masks)} views of masks but {len(flip_directions)} flip directions.')
    sizes = [len(masks) for masks in view_masks]
    if sum(sizes) != voters.shape[1]:
        raise ValueError(f'voters has {voters.shape[1]} columns but the views hold {sum(sizes)} masks.')
    for direction in flip_directions:
        if direction is not None and direction not in _FLIP_DIMS:
            raise ValueError(f'Unknown flip direction {direction!r}; expected one of {sorted(_FLIP_DIMS)}.')
    height, width = view_masks[0].shape[-2:]
    device = view_masks[0].device
    merged = torch.zeros((voters.shape[0], height, width), dtype=torch.bool, device=device)
    if voters.shape[0] == 0 or voters.shape[1] == 0:
        return merged
    voters, scores = voters.to(device), scores.to(device).float()
    rows, cols = _occupancy(view_masks, flip_directions)
    view_of = torch.repeat_interleave(torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device))
    first_of_view = [sum(sizes[:view]) for view in range(len(sizes))]
    for k in range(voters.shape[0]):
        members = voters[k].nonzero().flatten()
        (y0, y1), (x0, x1) = _span(rows[members].any(0)), _span(cols[members].any(0))
        if y1 == y0 or x1 == x0:
            continue
        votes = torch.zeros((y1 - y0, x1 - x0), device=device)
        for view in view_of[members].unique().tolist():
            in_view = members[view_of[members] == view]
            window_rows, window_cols = _window_in_view(y0, y1, x0, x1, height, width, flip_directions[view])
            window = view_masks[view][in_view - first_of_view[view], window_rows, window_cols]
            if flip_directions[view] is not None:
                window = flip_masks(window, flip_directions[view])
            votes += torch.einsum('v,vhw->hw', scores[in_view], window.float())
        merged[k, y0:y1, x0:x1] = votes >= mask_thr * scores[members].sum()
    return merged
