"""Plain (single-resolution) ViTs: no stages, so the blocks are cut into groups at the inner ``out_indices``.

A plain ViT returns block outputs chosen by ``out_indices``; the composite treats the blocks up to and
including each of those indices as one stage ("group"), as CB-EVA02 does with its ``cb_out_index``. Every group
works at the patch resolution; its input and output are the token sequence. The stem is everything the family
does before its first block (patch and position embedding, class/distillation tokens, pre-norm), resizing the
position embedding to the input as the family does; the lead shares it with the assisting branch
(``default_del_stages = 0``). A stage's output is exactly what the single backbone returns for that out index
(its final norm after the last block). Composite connections are 1x1 convs with bias, no norm, added to the
patch tokens of the group's input; class and other extra tokens pass untouched.

Families add :meth:`PlainViTAdapter.embed`, :meth:`~PlainViTAdapter.run_block` and
:meth:`~PlainViTAdapter.feature` where they differ; the grouping, pruning and token bookkeeping live here once.
"""
from dataclasses import dataclass, replace
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .base import BackboneAdapter, adapted_class


@dataclass
class ViTTokens:
    """A group's input: ``x`` is (B, extra + H*W, C) with the extra (class, distillation) tokens first, or
    (B, H, W, C) for families that keep an NHWC map (``nhwc``); ``hw`` is the patch grid."""

    x: Tensor
    hw: Tuple[int, int]
    num_extra: int = 0
    nhwc: bool = False


class PlainViTAdapter(BackboneAdapter):
    """Groups of blocks ending at the inner backbone's ``out_indices``; see the module docstring.

    Subclasses say how the family embeds (:meth:`embed`, :meth:`stem_modules`), calls a block
    (:meth:`run_block`) and formats an output (:meth:`feature`), and which options it cannot honour
    (:attr:`featmap_out_types`, :meth:`check`).
    """

    default_del_stages = 0
    connection_norm_cfg = None
    #: the width probe runs on 2x2 patches: position embeddings are resized and windows padded by the families
    probe_cells = 2
    #: ``out_type`` values whose outputs are NCHW maps of the patch tokens
    featmap_out_types: Tuple[str, ...] = ('featmap', )

    # -- structure ---------------------------------------------------------------------------------------
    def block_ends(self, backbone: nn.Module) -> List[int]:
        """Sorted block indices at which groups end (what the single backbone returns, in its order)."""
        return sorted({int(i) for i in backbone.out_indices})

    def groups(self, backbone: nn.Module) -> List[range]:
        ends = self.block_ends(backbone)
        return [range(start, end + 1) for start, end in zip([0] + [e + 1 for e in ends[:-1]], ends)]

    def num_stages(self, backbone: nn.Module) -> int:
        return len(self.block_ends(backbone))

    def out_indices(self, backbone: nn.Module) -> Sequence[int]:
        return tuple(range(self.num_stages(backbone)))

    def final_norm(self, backbone: nn.Module) -> Optional[str]:
        """Name of the norm the family applies after its last block (in the returned output too), if any."""
        return 'ln1' if getattr(backbone, 'final_norm', False) else None

    def stage_modules(self, backbone: nn.Module, i: int) -> List[str]:
        names = [f'layers.{j}' for j in self.groups(backbone)[i]]
        norm = self.final_norm(backbone)
        return names + ([norm] if norm and i == self.num_stages(backbone) - 1 else [])

    def total_stride(self, backbone: nn.Module) -> int:
        return int(backbone.patch_embed.projection.stride[0])

    def check(self, backbone: nn.Module) -> None:
        name = type(backbone).__name__
        adapted = adapted_class(type(backbone))
        if type(backbone).forward is not adapted.forward:
            raise ValueError(f'{name} overrides the forward of {adapted.__name__} (e.g. masking for self-supervised '
                             f'pretraining), which the composite reproduces block by block: use type=mmpretrain.'
                             f'{adapted.__name__} with the same arch and checkpoint.')
        if backbone.out_type not in self.featmap_out_types:
            raise ValueError(f"{name} inside CBNet must return feature maps: set out_type='featmap' "
                             f'(got {backbone.out_type!r}).')
        num_layers = len(backbone.layers)
        ends = self.block_ends(backbone)
        if ends[-1] != num_layers - 1:
            step = max(1, num_layers // 4)
            raise ValueError(
                f'{name} inside CBNet: its blocks are cut into groups that end at out_indices {tuple(ends)}, and '
                f'the last group must end at the last block ({num_layers - 1}): set out_indices to end with '
                f'{num_layers - 1} (ViTDet-style: {tuple(range(step - 1, num_layers, step))}).')

    # -- computation -------------------------------------------------------------------------------------
    def embed(self, backbone: nn.Module, x: Tensor) -> ViTTokens:
        raise NotImplementedError

    def run_stem(self, backbone: nn.Module, x: Tensor) -> ViTTokens:
        return self.embed(backbone, x)

    def stage_context(self, backbone: nn.Module, h: ViTTokens) -> Any:
        """What every block of a group needs besides its tokens, computed once per group from the branch's
        own modules (BEiT's shared relative position bias)."""
        return None

    def run_block(self, backbone: nn.Module, block: nn.Module, h: ViTTokens, context: Any) -> Tensor:
        return block(h.x)

    def feature(self, backbone: nn.Module, h: ViTTokens) -> Tensor:
        """What the single backbone returns for an out index whose block left ``h``."""
        return backbone._format_output(h.x, h.hw)

    def run_stage(self, backbone: nn.Module, i: int, h: ViTTokens) -> Tuple[ViTTokens, Tensor]:
        context = self.stage_context(backbone, h)
        for j in self.groups(backbone)[i]:
            h = replace(h, x=self.run_block(backbone, backbone.layers[j], h, context))
        norm = self.final_norm(backbone)
        if norm and i == self.num_stages(backbone) - 1:
            h = replace(h, x=getattr(backbone, norm)(h.x))
        return h, self.feature(backbone, h)

    def input_size(self, h: ViTTokens) -> Tuple[int, int]:
        return tuple(h.hw)

    def input_channels(self, h: ViTTokens) -> int:
        return h.x.shape[-1]

    def add_to_input(self, h: ViTTokens, delta: Tensor) -> ViTTokens:
        if h.nhwc:
            return replace(h, x=h.x + delta.permute(0, 2, 3, 1))
        patches = h.x[:, h.num_extra:] + delta.flatten(2).transpose(1, 2)
        return replace(h, x=torch.cat([h.x[:, :h.num_extra], patches], dim=1) if h.num_extra else patches)
