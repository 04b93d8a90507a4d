"""timm ViTs and hierarchical ViTs (features-only FeatureGetterNet/FeatureHookNet) in the composite: cut at the
units of the model's own forward loop. The harness (test_backbone_families.py) checks ViT, DeiT, BEiT, EVA02,
Hiera and MViTv2 in full; here: where a connection lands in each token layout, the plain-ViT defaults, a
sample of further architectures checked exactly, and the refusals."""
import pytest
import torch
from mmdet.registry import MODELS

from cbnet.models.backbones.adapters import get_adapter, timm_units
from cbnet.testing import images
from cbnet.testing.backbone_cases import CASES
from cbnet.testing.backbones import torch_threads
from cbnet.testing.timm_models import check_timm_model

pytest.importorskip('timm')

VIT_CASES = ['timm-vit', 'timm-deit-distilled', 'timm-beit', 'timm-eva02', 'timm-hiera', 'timm-mvitv2']


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


@pytest.mark.parametrize('name', VIT_CASES)
def test_a_connection_lands_on_the_spatial_tokens_timm_reads_as_the_feature(name):
    """For every stage input (prefix tokens first, Hiera's unrolled order, MViTv2's class token), adding an NCHW
    map changes the feature that timm would read from those tokens by exactly that map and leaves the prefix
    tokens alone; at zero init that is invisible, so it is checked here."""
    backbone = MODELS.build(CASES[name].inner())
    backbone.eval()
    adapter = get_adapter(backbone)
    x = images(size=CASES[name].image_size)
    with torch.no_grad():
        h = adapter.run_stem(backbone, x)
        for i in range(adapter.num_stages(backbone)):
            size, channels = adapter.input_size(h), adapter.input_channels(h)
            delta = torch.randn(x.shape[0], channels, *size)
            moved = adapter.add_to_input(h, delta)
            assert torch.allclose(timm_units.feature_map(moved), timm_units.feature_map(h) + delta, atol=1e-6)
            prefix = h.layout.prefix
            if prefix and h.tokens.dim() == 3:
                assert torch.equal(moved.tokens[:, :prefix], h.tokens[:, :prefix])
            h, _ = adapter.run_stage(backbone, i, h)


def test_a_plain_vit_is_cut_at_its_out_indices_blocks_and_shares_only_its_embedding():
    case = CASES['timm-vit']
    model = MODELS.build(dict(type='CBNet', backbone=case.inner(out_indices=(1, 3)), num_backbones=2))
    assert model.del_stages == 0 and model.num_stages == 2
    assert model.adapter.stage_modules(model.branches[0],
                                       0) == ['timm_model.model.blocks.0', 'timm_model.model.blocks.1']
    lead = model.branches[1].timm_model.model
    assert type(lead.patch_embed).__name__ == 'Pruned' and lead.cls_token.numel() == 0  # the stem is shared
    connections = [m for m in model.composition.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(connections) == 3  # DHLC over two groups: 2 into group 0, 1 into group 1
    assert all(c.kernel_size == (1, 1) and c.bias is not None for c in connections)
    assert all(getattr(m, 'norm', None) is None for m in model.composition.modules() if hasattr(m, 'conv'))
    x = images(size=case.image_size)
    model.eval()
    with torch.no_grad():
        assert [tuple(f.shape[1:]) for f in model(x)] == [(16, 8, 8)] * 2
        assert [tuple(f.shape[1:]) for f in model(images(size=96))] == [(16, 12, 12)] * 2  # dynamic_img_size


def test_a_hierarchical_vit_keeps_the_cnn_default_of_sharing_its_first_stage():
    model = MODELS.build(dict(type='CBNet', backbone=CASES['timm-hiera'].inner()))
    assert model.del_stages == 1 and model.stage_out_channels == [8, 16, 32, 64]


#: timm ViT-style architectures beyond the harness cases, tiny through timm's own arguments
SAMPLE = {
    'cait': ('cait_xxs24_224', dict(img_size=64, embed_dim=16, depth=3, num_heads=2, depth_token_only=1)),
    'xcit': ('xcit_nano_12_p8_224', dict(img_size=64, embed_dim=16, depth=3, num_heads=2, cls_attn_layers=1)),
    'pit': ('pit_ti_224', dict(img_size=64, base_dims=(8, 8, 8), depth=(1, 1, 1), heads=(1, 1, 1))),
    'efficientformer': ('efficientformer_l1', dict(depths=(1, 1, 1, 1), embed_dims=(8, 16, 32, 64), num_vit=1)),
    'visformer': ('visformer_tiny', dict(img_size=64, init_channels=8, embed_dim=32, depth=(1, 1, 1), num_heads=2)),
    'efficientvim': ('efficientvim_m1', dict(embed_dim=(8, 16, 32), depths=(1, 1, 1), state_dim=(8, 8, 8))),
}


@pytest.mark.parametrize('arch', sorted(SAMPLE))
def test_timm_vit_architectures_compose_exactly(arch):
    """CaiT/XCiT (class tokens only after the blocks; XCiT's blocks take the grid), PiT (a (map, class token)
    pair between stages, FeatureHookNet), EfficientFormer (maps, then flat tokens), Visformer (embeddings
    between its stages), EfficientViM (stages return their feature first): exact at zero init, every
    parameter the single model trains trained."""
    name, kwargs = SAMPLE[arch]
    result = check_timm_model(name, **kwargs)
    assert result['status'] == 'ok', result


@pytest.mark.parametrize(
    'model_name, kwargs, match', [
        ('twins_svt_small', dict(embed_dims=(8, 16, 32, 64), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)),
         'cannot cut timm Twins into stages: each stage runs its own patch embedding'),
        ('eva02_tiny_patch14_224', dict(
            img_size=64, patch_size=8, embed_dim=16, depth=3, num_heads=2, rope_type='mixed'), 'rope_mixed=True'),
    ],
    ids=['twins', 'eva-rope-mixed'])
def test_timm_models_whose_forward_is_not_one_loop_over_blocks_are_refused_with_the_reason(model_name, kwargs, match):
    inner = dict(type='mmpretrain.TIMMBackbone', model_name=model_name, features_only=True, pretrained=False, **kwargs)
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='CBNet', backbone=inner))
