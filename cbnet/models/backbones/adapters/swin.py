"""mmdet's SwinTransformer: tokens (B, HW, C) with their (H, W) travel between stages."""
from typing import List, Tuple

from mmdet.models.backbones import SwinTransformer
from torch import Tensor

from .base import BackboneAdapter, register_adapter

Tokens = Tuple[Tensor, Tuple[int, int]]


@register_adapter(SwinTransformer)
class SwinAdapter(BackboneAdapter):
    """Stem = patch embedding (+ absolute position embedding); stage i = ``stages[i]`` (its blocks, then the
    patch merging that makes the next stage's input) and ``norm{i}`` on the output when it exists.

    The input of stage i is therefore already at stage i's resolution and width, which is where the official
    CBNetV2 Swin adds its composite connections.
    """

    #: shifted-window attention pads every map to whole windows, so the probe may end at a 1x1 map
    probe_cells = 1

    def num_stages(self, backbone: SwinTransformer) -> int:
        return len(backbone.stages)

    def stem_modules(self, backbone: SwinTransformer) -> List[str]:
        return ['patch_embed'] + (['absolute_pos_embed'] if backbone.use_abs_pos_embed else [])

    def stage_modules(self, backbone: SwinTransformer, i: int) -> List[str]:
        norm = [f'norm{i}'] if hasattr(backbone, f'norm{i}') else []
        return [f'stages.{i}'] + norm

    def probe_size(self, backbone: SwinTransformer) -> int:
        if not backbone.use_abs_pos_embed:
            return super().probe_size(backbone)
        # the absolute position embedding has a fixed number of patches: probe at the pretraining size
        side = round(backbone.absolute_pos_embed.shape[1]**0.5)
        return side * backbone.patch_embed.projection.stride[0]

    def run_stem(self, backbone: SwinTransformer, x: Tensor) -> Tokens:
        tokens, hw_shape = backbone.patch_embed(x)
        if backbone.use_abs_pos_embed:
            tokens = tokens + backbone.absolute_pos_embed
        return backbone.drop_after_pos(tokens), hw_shape

    def run_stage(self, backbone: SwinTransformer, i: int, h: Tokens) -> Tuple[Tokens, Tensor]:
        tokens, hw_shape = h
        next_tokens, next_hw, out, out_hw = backbone.stages[i](tokens, hw_shape)
        norm = getattr(backbone, f'norm{i}', None)
        if norm is not None:
            out = norm(out)
        out = out.view(-1, *out_hw, out.shape[-1]).permute(0, 3, 1, 2).contiguous()
        return (next_tokens, next_hw), out

    def input_size(self, h: Tokens) -> Tuple[int, int]:
        return tuple(h[1])

    def input_channels(self, h: Tokens) -> int:
        return h[0].shape[-1]

    def add_to_input(self, h: Tokens, delta: Tensor) -> Tokens:
        return h[0] + delta.flatten(2).transpose(1, 2), h[1]
