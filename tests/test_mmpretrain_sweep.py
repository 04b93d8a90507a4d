"""A sample of the mmpretrain sweep (``benchmarks/mmpretrain_sweep.py``): the smallest architecture of a few families
composes exactly, families the composite cannot cut are refused with their reason, and options a family's adapter
cannot honour are refused with what to change."""
import pytest
from mmdet.registry import MODELS

from cbnet.testing.mmpretrain_models import backbone_classes, check_mmpretrain_backbone, smallest_config, sweep_backbone


@pytest.fixture(scope='module')
def classes():
    return backbone_classes()


@pytest.mark.parametrize('name,arch', [('MobileNetV3', 'small_050'), ('EdgeNeXt', 'xxsmall'), ('ShuffleNetV1', None)])
def test_smallest_architecture_composes_exactly(classes, name, arch):
    cfg, size = smallest_config(name, classes[name])
    assert cfg.get('arch') == arch and 0 < size < 2e6
    result = check_mmpretrain_backbone(cfg)
    assert result['status'] == 'ok', result['reason']
    assert result['exact'] and result['without_gradient'] == [] and result['num_stages'] >= 3


def test_registry_sample_covers_every_backbone_class(classes):
    assert {'ConvNeXt', 'SwinTransformerV2', 'HiViT', 'MViT', 'VisionTransformer', 'TIMMBackbone'} <= set(classes)
    assert all(cls.__module__.startswith('mmpretrain.models.backbones') for cls in classes.values())


@pytest.mark.parametrize('name,match', [('AlexNet', 'one feature map'), ('LeNet5', 'class scores'),
                                        ('SparseConvNeXt', 'masked-image-modelling'),
                                        ('SparseResNet', 'masked-image-modelling')])
def test_families_that_cannot_be_cut_are_refused_with_the_reason(classes, name, match):
    """SparseConvNeXt subclasses ConvNeXt, which has an adapter: the refusal of the subclass wins."""
    result = sweep_backbone(name, classes[name])
    assert result['status'] == 'refused' and match in result['reason']
    if name in ('AlexNet', 'SparseConvNeXt'):  # the composite itself refuses them, with the same reason
        cfg, _ = smallest_config(name, classes[name])
        assert match in check_mmpretrain_backbone(cfg)['reason']


@pytest.mark.parametrize('inner,match', [
    (dict(type='mmpretrain.DaViT', arch='t', out_after_downsample=True), 'keep out_after_downsample=False'),
    (dict(
        type='mmpretrain.EfficientFormer',
        arch=dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 32, 64], downsamples=[False, True, True, True], vit_num=0),
        out_indices=(0, 1, 2, 3)), 'set reshape_last_feat=True'),
    (dict(
        type='mmpretrain.HiViT',
        arch=dict(embed_dims=16, depths=[1, 1, 7], num_heads=2),
        img_size=64,
        out_indices=[5, 6]), r'set out_indices=\[6\]'),
    (dict(type='mmpretrain.HorNet', arch='t', gap_before_final_norm=True), 'gap_before_final_norm=False')
])
def test_options_the_adapter_cannot_honour_are_refused_with_what_to_change(inner, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='CBNet', backbone=dict(inner, init_cfg=None)))
