"""Test-time augmentation that merges instance masks as well as boxes."""
from .det_tta_with_masks import DetTTAModelWithMasks
from .mask_voting import find_voters, flip_masks, vote_masks

__all__ = ['DetTTAModelWithMasks', 'find_voters', 'flip_masks', 'vote_masks']
