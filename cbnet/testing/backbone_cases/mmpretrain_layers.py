"""mmpretrain's stem-and-layers backbones, tiny, loaded from mmpretrain classifier files (``prefix='backbone.'``):
ResNet (its own class, not mmdet's), MobileNetV2/V3, ShuffleNetV1/V2, EfficientNet/V2, RepVGG, MobileOne, CSPNet,
DenseNet, PoolFormer, EfficientFormer. Every unit returned (``out_indices`` over all of them), so that every
stage and every output norm is checked."""
from mmpretrain.models.backbones import CSPResNet, EfficientNet, EfficientNetV2, MobileNetV3

from ..checkpoint_formats import save_mmpretrain_classifier
from . import BackboneCase, option_grid


class NarrowCSPResNet(CSPResNet):
    """CSPResNet-50's modules and forward with one narrow block per stage (CSPResNet has no width argument)."""

    arch_settings = {
        50:
        dict(
            CSPResNet.arch_settings[50],
            in_channels=(8, 16, 32, 64),
            out_channels=(16, 32, 64, 128),
            num_blocks=(1, 1, 1, 1))
    }


class NarrowMobileNetV3(MobileNetV3):
    """MobileNetV3-Small's modules and forward with four narrow inverted-residual layers (and its final 1x1 conv,
    576 wide as MobileNetV3 hard-codes it)."""

    arch_settings = {
        'small': [[3, 8, 8, True, 'ReLU', 2], [3, 16, 8, False, 'ReLU', 2], [5, 24, 16, True, 'HSwish', 2],
                  [5, 32, 16, True, 'HSwish', 2]]
    }


class NarrowEfficientNet(EfficientNet):
    """EfficientNet-B0's modules and forward at an eighth of its widths and half its depths."""

    arch_settings = dict(EfficientNet.arch_settings, b0=(0.125, 0.5, 224))


class NarrowEfficientNetV2(EfficientNetV2):
    """EfficientNetV2-B0's layer kinds (fused and plain MBConv, with and without SE) with one narrow block each."""

    arch_settings = {
        'b0': [[1, 3, 1, 1, 8, 8, 0.0, -1], [1, 3, 2, 4, 8, 8, 0.0, 0], [1, 3, 2, 4, 8, 16, 0.0, 0],
               [1, 3, 2, 4, 16, 16, 0.25, 1], [1, 3, 1, 6, 16, 24, 0.25, 1], [1, 3, 2, 6, 24, 32, 0.25, 1],
               [1, 1, 1, 1, 32, 64, 0.0, -2]]
    }


_REQUIRES = ('mmpretrain', )


def _case(name: str, config: dict, options=({}, ), with_cp: bool = False, image_size: int = 32) -> BackboneCase:
    return BackboneCase(
        name,
        dict(config, init_cfg=None),
        write_checkpoint=save_mmpretrain_classifier,
        options=options,
        with_cp=with_cp,
        image_size=image_size,
        requires=_REQUIRES)


CASES = [
    _case(
        'mmpretrain-ResNet',
        dict(type='mmpretrain.ResNet', depth=18, stem_channels=8, base_channels=8, out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(1, ), norm_eval=(False, True)),
        with_cp=True),
    _case(
        'mmpretrain-MobileNetV2',
        dict(type='mmpretrain.MobileNetV2', widen_factor=0.125, out_indices=tuple(range(8))),
        options=option_grid(frozen_stages=(2, ))),
    _case(
        'MobileNetV3',
        dict(type=NarrowMobileNetV3, arch='small', out_indices=(1, 2, 3, 4, 5)),
        options=option_grid(frozen_stages=(2, ), norm_eval=(True, ))),
    _case(
        'ShuffleNetV2',
        dict(type='mmpretrain.ShuffleNetV2', widen_factor=0.5, out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(1, ))),
    _case(
        'ShuffleNetV1',
        dict(type='mmpretrain.ShuffleNetV1', groups=1, widen_factor=0.25, out_indices=(0, 1, 2)),
        options=option_grid(frozen_stages=(1, ))),
    _case(
        'mmpretrain-EfficientNet',
        dict(type=NarrowEfficientNet, arch='b0', out_indices=(1, 2, 3, 4, 5, 6)),
        options=option_grid(frozen_stages=(2, ))),
    _case(
        'EfficientNetV2',
        dict(type=NarrowEfficientNetV2, arch='b0', out_indices=(1, 2, 3, 4, 5, 6, 7)),
        options=option_grid(frozen_stages=(2, ))),
    _case(
        'RepVGG',
        dict(
            type='mmpretrain.RepVGG',
            arch=dict(
                num_blocks=[1, 1, 1, 1], width_factor=[0.125, 0.125, 0.125, 0.0625], group_layer_map=None, se_cfg=None),
            out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(1, ), norm_eval=(True, )),
        with_cp=True),
    _case(
        'MobileOne',
        dict(
            type='mmpretrain.MobileOne',
            arch=dict(
                num_blocks=[1, 1, 1, 1],
                width_factor=[0.125, 0.125, 0.125, 0.0625],
                num_conv_branches=[1] * 4,
                num_se_blocks=[0, 0, 0, 0]),
            out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(1, ))),
    _case(
        'CSPNet',
        dict(type=NarrowCSPResNet, depth=50, out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(1, ))),
    _case(
        'DenseNet',
        dict(
            type='mmpretrain.DenseNet',
            arch=dict(growth_rate=4, depths=[1, 1, 1, 1], init_channels=8),
            out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(1, ))),
    # PoolFormer's units: blocks and the downsampling patch embeddings between them; detection returns 0, 2, 4, 6
    _case(
        'PoolFormer',
        dict(
            type='mmpretrain.PoolFormer',
            arch=dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 32, 64]),
            out_indices=(0, 2, 4, 6)),
        options=option_grid(frozen_stages=(2, ))),
    # RIFormer: PoolFormer's layout with re-parameterisable token mixers
    _case(
        'RIFormer',
        dict(
            type='mmpretrain.RIFormer',
            arch=dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 32, 64]),
            out_indices=(0, 2, 4, 6))),
    # EfficientFormer without its attention blocks (vit_num=0: they have position biases for 224 px only, the
    # sweep checks them there); its last stage still flattens to tokens, returned as a map
    _case(
        'EfficientFormer',
        dict(
            type='mmpretrain.EfficientFormer',
            arch=dict(
                layers=[1, 1, 1, 1], embed_dims=[8, 16, 32, 64], downsamples=[False, True, True, True], vit_num=0),
            reshape_last_feat=True,
            out_indices=(0, 1, 2, 3)),
        options=option_grid(frozen_stages=(2, ))),
    # MobileViT: MobileNetV2 blocks and transformer blocks over unfolded patches; the last stage has the 1x1 conv
    _case(
        'MobileViT',
        dict(
            type='mmpretrain.MobileViT',
            arch=[['mobilenetv2', 8, 1, 1, 2], ['mobilenetv2', 8, 2, 1, 2], ['mobilevit', 16, 2, 16, 32, 1, 2],
                  ['mobilevit', 16, 2, 16, 32, 1, 2], ['mobilevit', 16, 2, 16, 32, 1, 2]],
            stem_channels=8,
            last_exp_factor=2,
            out_indices=(0, 1, 2, 3, 4)),
        options=option_grid(frozen_stages=(1, ))),
]
