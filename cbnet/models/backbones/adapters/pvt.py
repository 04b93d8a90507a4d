"""mmdet's Pyramid Vision Transformers, PVT (v1) and PVTv2: token stages, each opened by its patch embedding."""
import math
from typing import List, Tuple

from mmdet.models.backbones import PyramidVisionTransformer
from mmdet.models.layers import nlc_to_nchw
from torch import Tensor

from .base import BackboneAdapter, register_adapter

Tokens = Tuple[Tensor, Tuple[int, int]]


@register_adapter(PyramidVisionTransformer)
class PVTAdapter(BackboneAdapter):
    """Stem = the first patch embedding (``layers.0.0``); stage i = ``layers.{i}.1`` (PVTv1's absolute position
    embedding, then the encoder layers), ``layers.{i}.2`` (PVTv2's norm after the stage, an identity in PVTv1)
    and the next stage's patch embedding ``layers.{i+1}.0``.

    So, as for Swin, the input of stage i is its own tokens, (B, HW, C) with their (H, W), at stage i's
    resolution and width; composite connections are added there, before PVTv1's position embedding of that
    stage. Position embeddings are resized to any map by PVT itself (bilinear), so the probe has no fixed size;
    it is bounded by the spatial-reduction convs instead (kernel = stride = ``sr_ratios[i]`` on stage i's
    map). PVT has no ``frozen_stages``, ``norm_eval`` or ``with_cp``; drop path holds in every branch.

    With ``out_indices`` short of the last stage, the last stage a branch runs still embeds the next stage's
    patches, which nothing reads (the single PVT runs its unreturned stages too): that patch embedding gets no
    gradient, so DDP then needs ``find_unused_parameters`` (as for the single PVT).
    """

    def num_stages(self, backbone: PyramidVisionTransformer) -> int:
        return len(backbone.layers)

    def stem_modules(self, backbone: PyramidVisionTransformer) -> List[str]:
        return ['layers.0.0']

    def stage_modules(self, backbone: PyramidVisionTransformer, i: int) -> List[str]:
        names = [f'layers.{i}.1', f'layers.{i}.2']
        return names + ([f'layers.{i + 1}.0'] if i + 1 < self.num_stages(backbone) else [])

    def _strides(self, backbone: PyramidVisionTransformer) -> List[int]:
        """Downsampling from the image to each stage's map."""
        return [math.prod(backbone.strides[:i + 1]) for i in range(self.num_stages(backbone))]

    def total_stride(self, backbone: PyramidVisionTransformer) -> int:
        return self._strides(backbone)[-1]

    def probe_size(self, backbone: PyramidVisionTransformer) -> int:
        # stage i's spatial reduction needs a map of at least sr_ratios[i] cells
        return max(s * max(r, self.probe_cells) for s, r in zip(self._strides(backbone), backbone.sr_ratios))

    def run_stem(self, backbone: PyramidVisionTransformer, x: Tensor) -> Tokens:
        return backbone.layers[0][0](x)

    def run_stage(self, backbone: PyramidVisionTransformer, i: int, h: Tokens) -> Tuple[Tokens, Tensor]:
        tokens, hw_shape = h
        _, blocks, norm = backbone.layers[i]
        for block in blocks:
            tokens = block(tokens, hw_shape)
        out = nlc_to_nchw(norm(tokens), hw_shape)
        if i + 1 < self.num_stages(backbone):
            return backbone.layers[i + 1][0](out), out
        return (tokens, hw_shape), out

    def input_size(self, h: Tokens) -> Tuple[int, int]:
        return tuple(h[1])

    def input_channels(self, h: Tokens) -> int:
        return h[0].shape[-1]

    def add_to_input(self, h: Tokens, delta: Tensor) -> Tokens:
        return h[0] + delta.flatten(2).transpose(1, 2), h[1]
