"""mmpretrain's hierarchical token backbones: Swin (v1, v2), DaViT, MViT, HiViT, VAN, Twins (PCPVT, SVT); skipped
without mmpretrain.

Each is a descriptor of :class:`~.layer_sequence.LayerSequenceAdapter`: its units pass :class:`~.layer_sequence.Tokens`
(B, HW, C) with their (H, W), so composite connections are added to the tokens a stage starts from, and a returned
unit goes through the family's ``norm{i}`` before it is reshaped to a map, as the family's own forward does.
"""
from typing import List, Optional, Tuple

import torch.nn as nn
from mmpretrain.models.backbones import PCPVT, VAN, DaViT, HiViT, MViT, SwinTransformer, SwinTransformerV2
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from .base import register_adapter
from .layer_sequence import LayerSequenceAdapter, Tokens, tokens_to_map


class TokenAdapter(LayerSequenceAdapter):
    """Token families: connections are 1x1 convs with bias, no norm (the families use LayerNorm)."""

    connection_norm_cfg = None
    stem_counted = False
    output_norm = 'norm{}'


@register_adapter(SwinTransformer, SwinTransformerV2, DaViT)
class SwinStagesAdapter(TokenAdapter):
    """Stem = ``patch_embed`` (+ the absolute position embedding, resized to the map as the family does); stage i =
    ``stages[i]`` and ``norm{i}``. Swin v1 and DaViT downsample at the end of a stage (after the output, unless
    ``out_after_downsample``), Swin v2 at its start: either way the next stage's input is what the family passes
    on. ``frozen_stages``, ``norm_eval`` and ``with_cp`` hold in every branch; windows shrink or pad to any map.
    """

    def layer_names(self, backbone: nn.Module) -> List[str]:
        return ['patch_embed'] + [f'stages.{i}' for i in range(len(backbone.stages))]

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        return ['patch_embed'] + (['absolute_pos_embed'] if getattr(backbone, 'use_abs_pos_embed', False) else [])

    def run_stem(self, backbone: nn.Module, x: Tensor) -> Tokens:
        x, hw = backbone.patch_embed(x)
        if getattr(backbone, 'use_abs_pos_embed', False):
            x = x + resize_pos_embed(backbone.absolute_pos_embed, backbone.patch_resolution, hw,
                                     backbone.interpolate_mode, backbone.num_extra_tokens)
        if hasattr(backbone, 'drop_after_pos'):
            x = backbone.drop_after_pos(x)
        return Tokens(x, tuple(hw))

    def run_unit(self, backbone: nn.Module, j: int, h: Tokens) -> Tuple[Tokens, Tokens]:
        stage = backbone.stages[j]
        if isinstance(backbone, SwinTransformerV2):
            out = Tokens(*stage(*h))
            return out, out
        after = backbone.out_after_downsample
        out = Tokens(*stage(*h, do_downsample=after))
        if stage.downsample is not None and not after:
            return Tokens(*stage.downsample(*out)), out
        return out, out

    def probe_size(self, backbone: nn.Module) -> int:
        """Windows must fit the deepest map unless the family pads small maps (``pad_small_map=True``): the
        probe is the last stage's window size in cells of stride 32 (Swin-T at 224 px: 7 cells)."""
        windows = [m.window_size for m in backbone.stages[-1].modules() if hasattr(m, 'window_size')]
        sides = [w if isinstance(w, int) else max(w) for w in windows]
        pads = [getattr(m, 'pad_small_map', False) for m in backbone.stages[-1].modules() if hasattr(m, 'window_size')]
        return self.total_stride(backbone) * (max(sides) if sides and not all(pads) else self.probe_cells)

    def check(self, backbone: nn.Module) -> None:
        if isinstance(backbone, DaViT) and backbone.out_after_downsample:
            raise ValueError('mmpretrain.DaViT with out_after_downsample=True cannot return its stages (its norms '
                             'and reshape have the widths before downsampling): keep out_after_downsample=False.')


@register_adapter(MViT)
class MViTAdapter(TokenAdapter):
    """Stem = ``patch_embed`` (+ ``pos_embed``); the units are ``blocks``, grouped into MViT's scales: scale s ends
    with the block before the next downscaling block (``stage_indices``). Where a scale is returned (``out_scales``,
    MViT's ``out_indices``), MViT normalises its tokens with ``norm{s}`` in the stream: the next scale reads them
    normed. MViT has no ``frozen_stages`` or ``with_cp``; its relative position tables are sized for
    ``img_size``, which the probe uses.
    """

    def layer_names(self, backbone: MViT) -> List[str]:
        return ['patch_embed'] + [f'blocks.{j}' for j in range(len(backbone.blocks))]

    def stem_modules(self, backbone: MViT) -> List[str]:
        return ['patch_embed'] + (['pos_embed'] if backbone.use_abs_pos_embed else [])

    def _family_indices(self, backbone: MViT) -> List[int]:
        return sorted(set(backbone.out_scales))

    def stage_ends(self, backbone: MViT) -> List[int]:
        return sorted(backbone.stage_indices)

    def every_unit_options(self, backbone: MViT) -> dict:
        return dict(out_scales=list(range(backbone.num_scales)))

    def returned_units(self, backbone: MViT) -> List[int]:
        block_of = {scale: block for block, scale in backbone.stage_indices.items()}
        return [block_of[s] for s in self._family_indices(backbone)]

    def norm_index(self, backbone: MViT, j: int) -> Optional[int]:
        return backbone.stage_indices.get(j)

    def probe_size(self, backbone: MViT) -> int:
        return backbone.patch_resolution[0] * backbone.patch_embed.projection.stride[0]

    def run_stem(self, backbone: MViT, x: Tensor) -> Tokens:
        x, hw = backbone.patch_embed(x)
        if backbone.use_abs_pos_embed:
            x = x + resize_pos_embed(
                backbone.pos_embed,
                backbone.patch_resolution,
                hw,
                mode=backbone.interpolate_mode,
                num_extra_tokens=backbone.num_extra_tokens)
        return Tokens(x, tuple(hw))

    def run_unit(self, backbone: MViT, j: int, h: Tokens) -> Tuple[Tokens, Tokens]:
        tokens, hw = backbone.blocks[j](*h)
        norm = self._norm_of(backbone, j)
        if norm:  # MViT normalises a returned scale's tokens in the stream: the next block reads them normed
            tokens = getattr(backbone, norm)(tokens)
        out = Tokens(tokens, tuple(hw))
        return out, out

    def output(self, backbone: MViT, j: int, out: Tokens) -> Tensor:
        return tokens_to_map(*out)  # already normed by run_unit


@register_adapter(HiViT)
class HiViTAdapter(TokenAdapter):
    """Stem = ``patch_embed``, the blocks before the main stage (HiViT's hierarchical patch-level MLP stages and
    their merges) and the absolute position embedding; the units are the main-stage blocks, one resolution, so
    composite stages end at the returned blocks (``out_indices`` count main blocks; HiViT always returns its
    last). Like a plain ViT, the default ``del_stages`` is 0: only the stem is shared. No output norm.
    """

    output_norm = None
    default_del_stages = 0

    def _num_early(self, backbone: HiViT) -> int:
        return len(backbone.blocks) - backbone.num_main_blocks

    def layer_names(self, backbone: HiViT) -> List[str]:
        early = self._num_early(backbone)
        return ['patch_embed'] + [f'blocks.{early + j}' for j in range(backbone.num_main_blocks)]

    def stem_modules(self, backbone: HiViT) -> List[str]:
        early = [f'blocks.{k}' for k in range(self._num_early(backbone))]
        return ['patch_embed'] + early + (['pos_embed'] if backbone.ape else [])

    def stage_ends(self, backbone: HiViT) -> List[int]:
        return []  # one resolution: the returned blocks end the stages

    def every_unit_options(self, backbone: HiViT) -> dict:
        return {}  # HiViT returns its last block only (see check)

    def check(self, backbone: HiViT) -> None:
        early = self._num_early(backbone)
        if any(i < early for i in backbone.out_indices) or len(set(backbone.out_indices)) > 1:
            raise ValueError(
                f'mmpretrain.HiViT returns intermediate blocks wrongly (an out_index below {early} is also read inside '
                f'its patch-level stem, and a returned main block is reshaped before the next block runs), so only '
                f'its last block can be returned: set out_indices=[{backbone.num_main_blocks - 1}].')

    def probe_size(self, backbone: HiViT) -> int:
        return backbone.patch_embed.patches_resolution[0] * backbone.patch_size

    def run_stem(self, backbone: HiViT, x: Tensor) -> Tokens:
        height, width = x.shape[-2:]
        hw = (height // backbone.patch_size, width // backbone.patch_size)
        x = backbone.patch_embed(x)
        for block in backbone.blocks[:self._num_early(backbone)]:
            x = block(x)
        x = x[..., 0, 0, :]
        if backbone.ape:
            x = x + backbone.interpolate_pos_encoding(x, height, width)
        return Tokens(backbone.pos_drop(x), hw)

    def run_unit(self, backbone: HiViT, j: int, h: Tokens) -> Tuple[Tokens, Tokens]:
        block = backbone.blocks[self._num_early(backbone) + j]
        out = Tokens(block(h.tokens, True if backbone.rpe else None), h.hw)
        return out, out


@register_adapter(VAN)
class VANAdapter(TokenAdapter):
    """Stem = ``patch_embed1``; stage i = ``patch_embed{i+1}`` (i > 0), ``blocks{i+1}`` and ``norm{i+1}``, which VAN
    applies to every stage (returned or not): its output is the next stage's input, an NCHW map.
    ``frozen_stages``, ``norm_eval`` hold in every branch.
    """

    output_norm = None

    def layer_names(self, backbone: VAN) -> List[str]:
        return ['patch_embed1'] + [f'blocks{i + 1}' for i in range(backbone.num_stages)]

    def unit_modules(self, backbone: VAN, j: int) -> List[str]:
        return ([f'patch_embed{j + 1}'] if j > 0 else []) + [f'blocks{j + 1}', f'norm{j + 1}']

    def run_stem(self, backbone: VAN, x: Tensor) -> Tensor:
        return backbone.patch_embed1(x)[0]

    def run_unit(self, backbone: VAN, j: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        if j > 0:
            h = getattr(backbone, f'patch_embed{j + 1}')(h)[0]
        for block in getattr(backbone, f'blocks{j + 1}'):
            h = block(h)
        tokens = getattr(backbone, f'norm{j + 1}')(h.flatten(2).transpose(1, 2))
        out = tokens.reshape(-1, *h.shape[2:], tokens.shape[-1]).permute(0, 3, 1, 2).contiguous()
        return out, out


@register_adapter(PCPVT)
class TwinsAdapter(TokenAdapter):
    """Twins (PCPVT and its subclass SVT). Stem = ``patch_embeds[0]``; stage i = ``patch_embeds[i]`` (i > 0), its
    blocks with the conditional position encoding after the first, and ``norm_after_stage{i}``, which Twins applies
    to every stage: the stage's output, reshaped to a map, is the next stage's input. Twins has no training
    options besides drop path.
    """

    output_norm = None

    def layer_names(self, backbone: PCPVT) -> List[str]:
        return ['patch_embeds.0'] + [f'stages.{i}' for i in range(backbone.num_stage)]

    def unit_modules(self, backbone: PCPVT, j: int) -> List[str]:
        names = [f'patch_embeds.{j}'] if j > 0 else []
        return names + [f'stages.{j}', f'position_encodings.{j}', f'norm_after_stage{j}']

    def run_stem(self, backbone: PCPVT, x: Tensor) -> Tokens:
        return Tokens(*backbone.patch_embeds[0](x))

    def run_unit(self, backbone: PCPVT, j: int, h) -> Tuple[Tensor, Tensor]:
        tokens, hw = h if j == 0 else backbone.patch_embeds[j](h)
        tokens = backbone.position_encoding_drops[j](tokens)
        for k, block in enumerate(backbone.stages[j]):
            tokens = block(tokens, hw)
            if k == 0:
                tokens = backbone.position_encodings[j](tokens, hw)
        tokens = getattr(backbone, f'norm_after_stage{j}')(tokens)
        out = tokens.reshape(tokens.shape[0], *hw, -1).permute(0, 3, 1, 2).contiguous()
        return out, out
