"""mmpretrain's plain ViTs (``type='mmpretrain.VisionTransformer'`` and relatives); skipped without mmpretrain.

``VisionTransformer`` carries the ViT, DeiT, MAE, CLIP, DINOv2 and EVA(-01) archs and weights (MoCoV3ViT is a
subclass with the same forward); ``DistilledVisionTransformer`` (DeiT with a distillation token), ``DeiT3``
(class token after the position embedding), ``ViTEVA02`` (SwiGLU, RoPE), ``BEiTViT`` (relative position bias,
per block or shared) and ``ViTSAM`` (windowed attention with global blocks, decomposed relative positions,
NHWC tokens, optional channel reduction) each reproduce their class's own forward, split at the groups of
:mod:`.plain_vit`. Subclasses that change the forward (MAE/MaskFeat/BEiT/CAE pretraining with masking) are
refused by :meth:`PlainViTAdapter.check`.

None of these classes has ``with_cp``. ``frozen_stages=f`` freezes the embedding and blocks ``0..f-1`` (blocks,
not groups) of every branch, as the single backbone does; the composite connections always train.
"""
from typing import Any, List

import torch
import torch.nn as nn
from mmpretrain.models.backbones import BEiTViT, DeiT3, DistilledVisionTransformer, VisionTransformer, ViTEVA02, ViTSAM
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from .base import register_adapter
from .plain_vit import PlainViTAdapter, ViTTokens


def _with_parameters(backbone: nn.Module, names: List[str]) -> List[str]:
    """The names among ``names`` that hold parameters (a bare parameter, or a module that has some)."""
    kept = []
    for name in names:
        target = getattr(backbone, name, None)
        if isinstance(target, nn.Parameter) or (isinstance(target, nn.Module) and any(True
                                                                                      for _ in target.parameters())):
            kept.append(name)
    return kept


def _extra_tokens(backbone: nn.Module, names: List[str], batch: int) -> List[Tensor]:
    return [getattr(backbone, n).expand(batch, -1, -1) for n in names if getattr(backbone, n, None) is not None]


@register_adapter(VisionTransformer)
class MMPretrainViTAdapter(PlainViTAdapter):
    """Stem: patch embedding, class token, position embedding (resized to the input), pre-norm (CLIP)."""

    #: tokens placed before the patch tokens, in order
    token_names = ('cls_token', )
    uses_pre_norm = True

    def stem_modules(self, backbone: nn.Module) -> List[str]:
        names = ['patch_embed', *self.token_names, 'pos_embed'] + (['pre_norm'] if self.uses_pre_norm else [])
        return _with_parameters(backbone, names)

    def embed(self, backbone: nn.Module, x: Tensor) -> ViTTokens:
        x, hw = backbone.patch_embed(x)
        tokens = _extra_tokens(backbone, self.token_names, x.shape[0])
        x = torch.cat([*tokens, x], dim=1) if tokens else x
        x = x + resize_pos_embed(backbone.pos_embed, backbone.patch_resolution, hw, backbone.interpolate_mode,
                                 len(tokens))
        x = backbone.drop_after_pos(x)
        if self.uses_pre_norm:
            x = backbone.pre_norm(x)
        return ViTTokens(x, hw, num_extra=len(tokens))


@register_adapter(DistilledVisionTransformer)
class DistilledViTAdapter(MMPretrainViTAdapter):
    """DeiT's class and distillation tokens; its forward skips ``pre_norm``."""

    token_names = ('cls_token', 'dist_token')
    uses_pre_norm = False

    def check(self, backbone: nn.Module) -> None:
        super().check(backbone)
        if _with_parameters(backbone, ['pre_norm']):
            raise ValueError('DistilledVisionTransformer never runs its pre_norm (its forward skips it), so those '
                             'parameters would never train: set pre_norm=False.')


@register_adapter(DeiT3)
class DeiT3Adapter(MMPretrainViTAdapter):
    """DeiT III adds the position embedding to the patch tokens only, then prepends the class token."""

    uses_pre_norm = False

    def embed(self, backbone: nn.Module, x: Tensor) -> ViTTokens:
        x, hw = backbone.patch_embed(x)
        x = x + resize_pos_embed(backbone.pos_embed, backbone.patch_resolution, hw, backbone.interpolate_mode, 0)
        x = backbone.drop_after_pos(x)
        tokens = _extra_tokens(backbone, self.token_names, x.shape[0])
        return ViTTokens(torch.cat([*tokens, x], dim=1) if tokens else x, hw, num_extra=len(tokens))


@register_adapter(ViTEVA02)
class EVA02Adapter(MMPretrainViTAdapter):
    """EVA-02 blocks take the patch grid for their rotary position embedding (RoPE)."""

    #: RoPE recomputes and keeps its tables for every new grid: probing a small size on the real module would
    #: change the buffer shapes that checkpoints load into
    probe_on_copy = True

    def run_block(self, backbone: nn.Module, block: nn.Module, h: ViTTokens, context: Any) -> Tensor:
        return block(h.x, h.hw)


@register_adapter(BEiTViT)
class BEiTAdapter(MMPretrainViTAdapter):
    """BEiT: relative position bias per block, or one shared by all blocks (``use_shared_rel_pos_bias``), which
    every branch computes from its own ``rel_pos_bias`` for each group (it is part of no single group)."""

    uses_pre_norm = False

    def probe_size(self, backbone: nn.Module) -> int:
        if backbone.use_rel_pos_bias or backbone.rel_pos_bias is not None:
            # the relative position tables span exactly the pretraining grid: BEiT runs only at img_size
            return backbone.patch_resolution[0] * self.total_stride(backbone)
        return super().probe_size(backbone)

    def embed(self, backbone: nn.Module, x: Tensor) -> ViTTokens:
        x, hw = backbone.patch_embed(x)
        tokens = _extra_tokens(backbone, self.token_names, x.shape[0])
        x = torch.cat([*tokens, x], dim=1) if tokens else x
        if backbone.pos_embed is not None:
            x = x + resize_pos_embed(backbone.pos_embed, backbone.patch_resolution, hw, backbone.interpolate_mode,
                                     len(tokens))
        return ViTTokens(backbone.drop_after_pos(x), hw, num_extra=len(tokens))

    def stage_context(self, backbone: nn.Module, h: ViTTokens) -> Any:
        return backbone.rel_pos_bias() if backbone.rel_pos_bias is not None else None

    def run_block(self, backbone: nn.Module, block: nn.Module, h: ViTTokens, context: Any) -> Tensor:
        return block(h.x, context)


@register_adapter(ViTSAM)
class SAMAdapter(MMPretrainViTAdapter):
    """SAM's image encoder (ViTDet's backbone): NHWC tokens, no class token; its ``channel_reduction`` (when
    ``out_channels > 0``) runs on every output and so belongs to no single group."""

    featmap_out_types = ('featmap', 'raw')  # both are NCHW maps in ViTSAM
    token_names = ()
    uses_pre_norm = False

    def embed(self, backbone: nn.Module, x: Tensor) -> ViTTokens:
        x, hw = backbone.patch_embed(x)
        x = x.view(x.shape[0], *hw, -1)
        if backbone.use_abs_pos:
            pos = resize_pos_embed(
                backbone.pos_embed.flatten(1, 2), backbone.patch_resolution, hw, backbone.interpolate_mode, 0)
            x = backbone.drop_after_pos(x + pos.view(1, *hw, -1))
        return ViTTokens(x, hw, nhwc=True)

    def feature(self, backbone: nn.Module, h: ViTTokens) -> Tensor:
        out = h.x.permute(0, 3, 1, 2)
        if backbone.out_channels > 0:
            out = backbone.channel_reduction(out)
        return backbone._format_output(out)
