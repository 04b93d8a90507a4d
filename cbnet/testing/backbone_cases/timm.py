"""timm models through mmpretrain's ``TIMMBackbone`` (``features_only=True``): a ResNet, an EfficientNet, a ConvNeXt,
PVTv2 and Swin (NHWC features), made narrow through timm's own arguments where the architecture has them
(EfficientNet-B0 has none). Their checkpoint is the timm model's own state dict (the classification model's
keys, head included: what timm publishes), which timm loads into the model before making it features-only
(``pretrained=True, pretrained_cfg_overlay=dict(file=...)``). No training options: ``TIMMBackbone`` has none."""
from typing import Callable, Dict

import torch
import torch.nn as nn
from mmpretrain.models.backbones import TIMMBackbone

from . import BackboneCase

CheckpointWriter = Callable[[nn.Module, str], dict]


def classifier_key_map(features_net: nn.Module, classifier: nn.Module) -> Dict[str, str]:
    """Names of the features-only net's children -> the classification model's: timm's FeatureDictNet names a
    flattened Sequential's child ``stages_0`` for ``stages.0``; FeatureGetterNet/FeatureHookNet hold the whole
    model as ``model``/``body`` (mapped to ''); other feature nets keep the model's names."""
    names = {'model': '', 'body': ''}
    for name, child in classifier.named_children():
        names[name] = name
        if isinstance(child, nn.Sequential):
            names.update({f'{name}_{sub}': f'{name}.{sub}' for sub, _ in child.named_children()})
    return {child: names[child] for child, _ in features_net.named_children()}


def timm_checkpoint(model_name: str, **model_kwargs) -> CheckpointWriter:
    """A writer of the timm classification model's state dict holding ``backbone``'s weights (the head keeps
    its random initialisation), loaded the way timm loads its published weights."""

    def write(backbone: nn.Module, path: str) -> dict:
        import timm
        classifier = timm.create_model(model_name, pretrained=False, **model_kwargs)
        state = classifier.state_dict()
        renamed = classifier_key_map(backbone.timm_model, classifier)
        for key, value in backbone.timm_model.state_dict().items():
            child, _, rest = key.partition('.')
            original = f'{renamed[child]}.{rest}' if renamed[child] else rest
            assert state[original].shape == value.shape, (key, original)
            state[original] = value
        torch.save(state, path)
        return dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))

    return write


class NCHWTIMMBackbone(TIMMBackbone):
    """``TIMMBackbone`` returning NCHW maps also for timm models with NHWC features, as the composite does (and
    mmdet's necks need): the single backbone that a Swin composite is compared with."""

    def forward(self, x):
        return tuple(f.permute(0, 3, 1, 2) for f in super().forward(x))


def timm_case(name: str,
              model_name: str,
              out_indices=(0, 1, 2, 3),
              backbone_type='mmpretrain.TIMMBackbone',
              **model_kwargs) -> BackboneCase:
    config = dict(
        type=backbone_type,
        model_name=model_name,
        features_only=True,
        pretrained=False,
        out_indices=out_indices,
        init_cfg=None,
        **model_kwargs)
    return BackboneCase(name, config, write_checkpoint=timm_checkpoint(model_name, **model_kwargs), requires=('timm', ))


_TRANSFORMER = dict(depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.0)

CASES = [
    timm_case('timm-resnet18', 'resnet18', out_indices=(1, 2, 3, 4), channels=(8, 16, 32, 64)),
    timm_case('timm-efficientnet_b0', 'efficientnet_b0', out_indices=(1, 2, 3, 4)),
    timm_case('timm-convnext_atto', 'convnext_atto', depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)),
    timm_case('timm-pvt_v2_b0', 'pvt_v2_b0', embed_dims=(8, 16, 32, 64), **_TRANSFORMER),
    # NHWC features; strict_img_size=False: any input size (detection), not only 224 px
    timm_case(
        'timm-swin',
        'swin_tiny_patch4_window7_224',
        backbone_type=NCHWTIMMBackbone,
        embed_dim=8,
        window_size=4,
        strict_img_size=False,
        **_TRANSFORMER),
]
