"""Official CBNetV2 argument names (``CBResNet``, ``CBRes2Net``, ``CBSwinTransformer``) and ``CBConvNeXt``.

They build :class:`CBNet` models that are architecturally the official ones, so official checkpoints load
after key conversion (``tools/model_converters/cbnetv2_to_cbnet.py``):

- CNNs: connections are 1x1 conv (no bias) + BN kept in eval mode; ``cb_del_stages`` stages pruned.
- Swin: connections are 1x1 conv with bias and no norm, identity where widths match (not zeroed);
  ``cb_del_stages=1`` removes only the lead's patch embedding (the official code counts it as a stage).
"""
from typing import Optional, Sequence

from mmdet.registry import MODELS

from .adapters import supported_backbones
from .cbnet import CBNet


def _route_init_cfg(backbone: dict, init_cfg: Optional[dict], pretrained: Optional[str]) -> dict:
    """The official configs put the checkpoint on the CB backbone; here it belongs to the inner one."""
    if pretrained is not None:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
    elif init_cfg is not None:
        backbone['init_cfg'] = init_cfg
    return backbone


class _CBCNN(CBNet):
    """Official ResNet-family arguments; ``inner_type`` names the mmdet backbone."""

    inner_type = 'ResNet'

    def __init__(self,
                 cb_inplanes: Optional[Sequence[int]] = None,
                 cb_zero_init: bool = True,
                 cb_del_stages: int = 1,
                 num_backbones: int = 2,
                 composition='DHLC',
                 init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 **backbone_kwargs) -> None:
        backbone = _route_init_cfg(dict(type=self.inner_type, **backbone_kwargs), init_cfg, pretrained)
        super().__init__(
            backbone,
            num_backbones=num_backbones,
            composition=composition,
            del_stages=cb_del_stages,
            zero_init=cb_zero_init)
        if cb_inplanes is not None:
            expected = [self.stem_channels] + list(self.stage_out_channels)
            if list(cb_inplanes) != expected:
                depth = backbone_kwargs.get('depth')
                raise ValueError(f'cb_inplanes={list(cb_inplanes)} do not match {self.inner_type}'
                                 f'{"" if depth is None else f" depth={depth}"}: its stem and stage widths are '
                                 f'{expected}. Set cb_inplanes={expected} or drop it (it is measured).')


@MODELS.register_module()
class CBResNet(_CBCNN):
    """``CBNet`` over mmdet ``ResNet`` with the official CBNetV2 arguments."""

    inner_type = 'ResNet'


@MODELS.register_module()
class CBRes2Net(_CBCNN):
    """``CBNet`` over mmdet ``Res2Net`` with the official CBNetV2 arguments."""

    inner_type = 'Res2Net'


class CBConvNeXt(_CBCNN):
    """``CBNet`` over ``mmpretrain.ConvNeXt`` (spatial outputs of all four stages by default); registered only
    when mmpretrain is installed, like the ConvNeXt adapter."""

    inner_type = 'mmpretrain.ConvNeXt'

    def __init__(self,
                 arch: str = 'tiny',
                 out_indices=(0, 1, 2, 3),
                 gap_before_final_norm: bool = False,
                 **kwargs) -> None:
        super().__init__(arch=arch, out_indices=out_indices, gap_before_final_norm=gap_before_final_norm, **kwargs)


if 'mmpretrain.ConvNeXt' in supported_backbones():
    MODELS.register_module(module=CBConvNeXt)

# official (original Swin) argument name -> mmdet SwinTransformer argument name
_SWIN_RENAMES = dict(ape='use_abs_pos_embed', use_checkpoint='with_cp')


@MODELS.register_module()
class CBSwinTransformer(CBNet):
    """``CBNet`` over mmdet ``SwinTransformer`` with the official CBNetV2 Swin arguments.

    Accepts the original Swin names (``embed_dim``, ``ape``, ``use_checkpoint``) as well as mmdet's.
    ``convert_weights`` defaults to True: the released Swin ImageNet files are in the original layout.
    """

    def __init__(self,
                 embed_dim: Optional[int] = None,
                 cb_zero_init: bool = True,
                 cb_del_stages: int = 1,
                 num_backbones: int = 2,
                 convert_weights: bool = True,
                 init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 **swin_kwargs) -> None:
        for name in ('norm_layer', ):  # official argument without an mmdet counterpart (always LayerNorm)
            swin_kwargs.pop(name, None)
        if embed_dim is not None:
            swin_kwargs['embed_dims'] = embed_dim
        mlp_ratio = swin_kwargs.get('mlp_ratio')
        if isinstance(mlp_ratio, float) and mlp_ratio.is_integer():
            swin_kwargs['mlp_ratio'] = int(mlp_ratio)  # official configs write 4.; mmdet's Swin needs an int
        for old, new in _SWIN_RENAMES.items():
            if old in swin_kwargs:
                swin_kwargs[new] = swin_kwargs.pop(old)
        if cb_del_stages < 1:
            raise ValueError('CBSwinTransformer: cb_del_stages must be >= 1 (1 removes the patch embedding).')
        backbone = _route_init_cfg(
            dict(type='SwinTransformer', convert_weights=convert_weights, **swin_kwargs), init_cfg, pretrained)
        super().__init__(
            backbone,
            num_backbones=num_backbones,
            del_stages=cb_del_stages - 1,
            zero_init=cb_zero_init,
            composition=dict(type='DHLC', norm_cfg=None, conv_bias=True, identity_if_same_channels=True))
