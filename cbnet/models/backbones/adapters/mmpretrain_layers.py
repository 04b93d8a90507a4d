"""mmpretrain's backbones that run a stem and a list of layers, as descriptors of ``LayerSequenceAdapter``.

ResNet and its variants (ResNetV1c/V1d, ResNeXt, SE-ResNet/ResNeXt, ResNeSt, Res2Net, RegNet, ResNet-CIFAR),
MobileNetV2/V3, ShuffleNetV1/V2, EfficientNet/EfficientNetV2, RepVGG, MobileOne, CSPNet (CSPDarkNet, CSPResNet,
CSPResNeXt), DenseNet, MobileViT, PoolFormer, RIFormer, EfficientFormer. mmpretrain's classes are its own (mmdet's
ResNet, MobileNetV2 and EfficientNet adapters do not serve them). Skipped when mmpretrain is not installed.
"""
from typing import List, Tuple

import torch.nn as nn
from mmpretrain.models.backbones import (AlexNet, Conformer, CSPNet, DenseNet, EfficientFormer, EfficientNet,
                                         EfficientNetV2, LeNet5, MobileNetV2, MobileNetV3, MobileOne, MobileViT,
                                         PoolFormer, RegNet, RepVGG, ResNet, RevVisionTransformer, RIFormer,
                                         ShuffleNetV1, ShuffleNetV2)
from mmpretrain.models.backbones.resnet_cifar import ResNet_CIFAR
from mmpretrain.models.backbones.sparse_convnext import SparseConvNeXt
from mmpretrain.models.backbones.sparse_resnet import SparseResNet
from torch import Tensor

from .base import refuse_family, register_adapter
from .layer_sequence import LayerSequenceAdapter, Tokens


@register_adapter(ResNet)
class MMPretrainResNetAdapter(LayerSequenceAdapter):
    """Stem = ``conv1`` + ``norm1`` (or the deep ``stem``) and the max-pool (not in RegNet and ResNet-CIFAR); stage
    i = ``layer{i+1}``. ``out_indices`` count stages; ``frozen_stages``, ``norm_eval``, ``with_cp`` hold."""

    stem_counted = False

    def layer_names(self, backbone: ResNet) -> List[str]:
        return ['stem' if backbone.deep_stem else 'conv1'] + list(backbone.res_layers)

    def stem_modules(self, backbone: ResNet) -> List[str]:
        return ['stem'] if backbone.deep_stem else ['conv1', backbone.norm1_name]

    def run_stem(self, backbone: ResNet, x: Tensor) -> Tensor:
        if backbone.deep_stem:
            x = backbone.stem(x)
        else:
            x = backbone.relu(backbone.norm1(backbone.conv1(x)))
        return x if isinstance(backbone, (RegNet, ResNet_CIFAR)) else backbone.maxpool(x)


@register_adapter(MobileNetV2, ShuffleNetV1, ShuffleNetV2)
class ConvStemLayersAdapter(LayerSequenceAdapter):
    """Stem = ``conv1`` (ShuffleNets: and their max-pool); stage i = ``layers[i]`` as the family counts them
    (``out_indices`` do not count the stem; MobileNetV2's last layer is its final 1x1 conv)."""

    stem_counted = False

    def layer_names(self, backbone: nn.Module) -> List[str]:
        layers = backbone.layers
        return ['conv1'] + (list(layers) if isinstance(layers[0], str) else [f'layers.{i}' for i in range(len(layers))])

    def run_stem(self, backbone: nn.Module, x: Tensor) -> Tensor:
        x = backbone.conv1(x)
        return backbone.maxpool(x) if hasattr(backbone, 'maxpool') else x


@register_adapter(MobileNetV3, EfficientNet, EfficientNetV2)
class StemCountedLayersAdapter(LayerSequenceAdapter):
    """Stem = the first of the family's ``layers`` (a strided conv), stage i = layer i + 1: the family's
    ``out_indices`` count the stem as 0 (MobileNetV3-Small's ``(3, 8, 12)`` are CBNet stages 2, 7, 11)."""

    def layer_names(self, backbone: nn.Module) -> List[str]:
        layers = backbone.layers
        return list(layers) if isinstance(layers[0], str) else [f'layers.{i}' for i in range(len(layers))]


@register_adapter(RepVGG, MobileOne, CSPNet, DenseNet, MobileViT)
class NamedStagesAdapter(LayerSequenceAdapter):
    """Stem = ``stem`` (MobileOne: ``stage0``); stage i = the family's i-th stage (RepVGG's last one with its
    ``ppf`` pooling, MobileViT's with its final 1x1 conv, DenseNet's with its transition). ``out_indices`` count
    stages; ``frozen_stages``, ``norm_eval``, ``with_cp`` hold in every branch. RepVGG and MobileOne must not be
    re-parameterised (``deploy=True``) for training; as plain convs they compose all the same."""

    stem_counted = False

    def _stages(self, backbone: nn.Module) -> List[str]:
        if isinstance(backbone, (RepVGG, MobileOne)):
            return list(backbone.stages)
        if isinstance(backbone, MobileViT):
            return [f'layers.{i}' for i in range(len(backbone.layers))]
        return [f'stages.{i}' for i in range(len(backbone.stages))]

    def layer_names(self, backbone: nn.Module) -> List[str]:
        return ['stage0' if isinstance(backbone, MobileOne) else 'stem'] + self._stages(backbone)

    def unit_modules(self, backbone: nn.Module, j: int) -> List[str]:
        names = [self._stages(backbone)[j]]
        if isinstance(backbone, DenseNet):
            names.append(f'transitions.{j}')
        if isinstance(backbone, RepVGG) and j == len(backbone.stages) - 1:
            names.append('ppf')
        if isinstance(backbone, MobileViT) and j == len(backbone.layers) - 1:
            names.append('conv_1x1_exp')
        return names

    def run_unit(self, backbone: nn.Module, j: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        for name in self.unit_modules(backbone, j):
            h = backbone.get_submodule(name)(h)
        return h, h


@register_adapter(PoolFormer, RIFormer, EfficientFormer)
class MetaFormerAdapter(LayerSequenceAdapter):
    """Stem = ``patch_embed``; the units are ``network`` (blocks of one width, and PoolFormer's downsampling patch
    embeddings between them, EfficientFormer's inside the blocks), returned through ``norm{j}`` as the family's
    ``out_indices`` count them (PoolFormer's detection outputs are ``(0, 2, 4, 6)``). A downsampling unit opens the
    next stage. EfficientFormer's last unit flattens its map into tokens (then runs ``vit_num`` attention blocks):
    it is returned as a map only with ``reshape_last_feat=True``. ``frozen_stages`` holds in every branch.
    """

    stem_counted = False
    output_norm = 'norm{}'
    connection_norm_cfg = None

    def layer_names(self, backbone: nn.Module) -> List[str]:
        return ['patch_embed'] + [f'network.{j}' for j in range(len(backbone.network))]

    def stage_ends(self, backbone: nn.Module) -> List[int]:
        # the blocks are Sequentials, PoolFormer's downsampling patch embeddings are not
        return [j for j, unit in enumerate(backbone.network) if isinstance(unit, nn.Sequential)]

    def probe_size(self, backbone: nn.Module) -> int:
        """EfficientFormer's attention (``vit_num > 0``) has biases for a fixed map (7 x 7 cells of stride 32:
        224 px); it runs at that size only, in the single backbone too."""
        biases = [m.attention_biases for m in backbone.modules() if hasattr(m, 'attention_biases')]
        if not biases:
            return super().probe_size(backbone)
        return self.total_stride(backbone) * round(biases[0].shape[-1]**0.5)

    def check(self, backbone: nn.Module) -> None:
        last = len(backbone.network) - 1
        if isinstance(backbone, EfficientFormer) and last in backbone.out_indices and not backbone.reshape_last_feat:
            raise ValueError('mmpretrain.EfficientFormer flattens its last stage into tokens and returns them as '
                             '(B, C, N); inside CBNet every output must be a map: set reshape_last_feat=True.')

    def run_unit(self, backbone: nn.Module, j: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        out = backbone.network[j](h)
        if out.dim() == 3:  # EfficientFormer's attention stage: tokens at the map size of its downsampled input
            stride = 2 if backbone.downsamples[j] else 1
            out = Tokens(out, (h.shape[2] // stride, h.shape[3] // stride))
        return out, out

    def output(self, backbone: nn.Module, j: int, out) -> Tensor:
        if isinstance(out, Tokens):  # EfficientFormer reshapes first, then applies its (GroupNorm) output norm
            norm = getattr(backbone, self._norm_of(backbone, j))
            return norm(out.tokens.permute(0, 2, 1).reshape(out.tokens.shape[0], -1, *out.hw)).contiguous()
        out = super().output(backbone, j, out)
        return out.contiguous() if isinstance(backbone, EfficientFormer) else out


refuse_family(LeNet5, 'LeNet-5 is a classifier for 32 px digits; it returns class scores, not feature maps.')
refuse_family(AlexNet, 'AlexNet returns one feature map (or class scores), not stages to compose.')
refuse_family(
    Conformer, 'its CNN and transformer branches exchange features inside every block (two coupled streams): there '
    'is no single stage input to add composite connections to.')
refuse_family(
    RevVisionTransformer, 'its reversible blocks pass two streams between layers and recompute activations in a '
    'custom backward: there is no single stage input to add composite connections to.')
for _sparse in (SparseConvNeXt, SparseResNet):
    refuse_family(
        _sparse, 'it is a masked-image-modelling pretraining backbone (SparK: sparse convolutions over the mask its '
        'algorithm sets before each forward); detect with ConvNeXt or ResNet loading its weights instead.')
