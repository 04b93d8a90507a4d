"""HRNet, PVT/PVTv2 and timm models (mmpretrain ``TIMMBackbone``): their zoo configs through ``tools/cbnetify.py``,
end to end; their stage layouts at full size against what the zoo's necks read; timm's NHWC features; what the
composite refuses, with what to change.

The checks every family gets (zero init with its real checkpoint file, pruning, norm modes, with_cp, K = 2/3,
every composition) are generated in ``tests/test_backbone_families.py``.
"""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

from cbnet.models.backbones.adapters import get_adapter
from cbnet.models.backbones.adapters.timm import sequential_feature_nets
from cbnet.testing import images, mmdet_config, shrink_detector
from cbnet.testing.backbone_cases.hrnet import tiny_extra
from cbnet.testing.backbones import perturb_connections, torch_threads
from cbnet.testing.timm_models import check_timm_model, timm_backbone
from tests.test_cnn_families import consumer_of, cpu_model, fit_in_channels, run_cli, train_step_and_predict, unscoped

_PVT = dict(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2])
#: zoo config -> the family's own arguments that make its backbone tiny (type and other options kept);
#: PVT's init_cfg has no type (strip_pretrained keeps it) and TIMMBackbone's pretrained=True downloads: both off
ZOO = {
    'hrnet/cascade-rcnn_hrnetv2p-w32-20e_coco.py':
    dict(extra=tiny_extra()),
    'pvt/retinanet_pvt-t_fpn_1x_coco.py':
    dict(_PVT, init_cfg=None),
    'pvt/retinanet_pvtv2-b0_fpn_1x_coco.py':
    dict(_PVT, init_cfg=None),
    'timm_example/retinanet_timm-tv-resnet50_fpn_1x_coco.py':
    dict(pretrained=False, layers=(1, 1, 1, 1), channels=(8, 16, 32, 64)),
}


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


def tiny(model: dict, size_args: dict) -> ConfigDict:
    """The CB detector with its inner backbone made tiny by the family's own arguments, the neck fitted to the
    tiny widths, narrow neck/heads, few samples."""
    model = cpu_model(model)
    inner = model['backbone']['backbone']
    inner.update(size_args)
    single = MODELS.build(copy.deepcopy(inner))
    single.eval()
    with torch.no_grad():
        widths = [int(f.shape[1]) for f in single(torch.zeros(1, 3, 64, 64))]
    shrink_detector(model)
    fit_in_channels(consumer_of(model), widths)
    return ConfigDict(model)


@pytest.mark.parametrize('rel', sorted(ZOO), ids=[r.split('/')[1][:-3] for r in sorted(ZOO)])
def test_zoo_config_through_the_cli_trains_and_predicts(rel, tmp_path):
    source = mmdet_config(rel)
    cfg = run_cli('mmdet::' + rel, str(tmp_path / 'cb.py'))
    assert cfg.model.type == 'CB' + source.model.type and cfg.model.backbone.type == 'CBNet'
    assert unscoped(cfg.model.backbone.backbone.to_dict()) == unscoped(source.model.backbone.to_dict())

    train_step_and_predict(MODELS.build(tiny(cfg.model.to_dict(), ZOO[rel])))


@pytest.mark.parametrize(
    'rel', [
        'hrnet/cascade-rcnn_hrnetv2p-w32-20e_coco.py', 'hrnet/fcos_hrnetv2p-w18-gn-head_4xb4-1x_coco.py',
        'pvt/retinanet_pvt-t_fpn_1x_coco.py', 'pvt/retinanet_pvtv2-b0_fpn_1x_coco.py',
        'timm_example/retinanet_timm-efficientnet-b1_fpn_1x_coco.py'
    ],
    ids=lambda r: r.split('/')[1][:-3])
def test_full_size_composite_returns_what_the_zoo_neck_reads(rel):
    model = cpu_model(mmdet_config(rel).model.to_dict())
    inner = dict(model['backbone'], init_cfg=None) if 'pvt' in rel else model['backbone']
    if 'timm' in rel:
        inner['pretrained'] = False
    backbone = MODELS.build(dict(type='CBNet', backbone=inner))
    assert [backbone.stage_out_channels[i] for i in backbone.out_indices] == list(consumer_of(model)['in_channels'])


def test_hrnet_stages_are_its_stages_then_its_returned_resolutions():
    backbone = MODELS.build(dict(type='CBNet', backbone=dict(type='HRNet', extra=tiny_extra(), norm_eval=False)))
    adapter, hrnet = backbone.adapter, backbone.branches[0]
    assert [adapter.stage_modules(hrnet, i) for i in range(backbone.num_stages)] == [['layer1'],
                                                                                     ['transition1', 'stage2'],
                                                                                     ['transition2', 'stage3'],
                                                                                     ['transition3', 'stage4'], [], [],
                                                                                     []]
    assert backbone.out_indices == (3, 4, 5, 6)
    # stages 0-2 output their coarsest stream (strides 4, 8, 16), then HRNet's four maps; inputs: the finest
    # stream of HRNet's stages, then the returned map each later stage outputs
    assert backbone.stage_out_channels == [32, 16, 32, 8, 16, 32, 64]
    assert backbone.stage_in_channels == [64, 32, 8, 8, 16, 32, 64]
    perturb_connections(backbone)
    backbone.eval()
    with torch.no_grad():
        shapes = [tuple(f.shape[1:]) for f in backbone(images(size=64))]
    assert shapes == [(8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)]


def test_timm_swin_features_are_composed_and_returned_nchw():
    """timm's Swin returns NHWC maps: the composite adds its connections to NHWC stage inputs and returns NCHW
    maps (what mmdet's necks read), otherwise the single TIMMBackbone's maps."""
    inner = dict(
        type='mmpretrain.TIMMBackbone',
        model_name='swin_tiny_patch4_window7_224',
        features_only=True,
        pretrained=False,
        embed_dim=8,
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        window_size=4,
        strict_img_size=False,
        drop_path_rate=0.0)
    single = MODELS.build(copy.deepcopy(inner))
    model = MODELS.build(dict(type='CBNet', backbone=inner, num_backbones=3))
    for branch in model.branches:
        branch.load_state_dict(single.state_dict(), strict=False)  # the pruned branches lack the stem
    x = images(size=64)
    model.eval(), single.eval()
    with torch.no_grad():
        nhwc = single(x)
        assert nhwc[0].shape == (2, 16, 16, 8)
        assert all(torch.equal(a, b.permute(0, 3, 1, 2)) for a, b in zip(model(x), nhwc))
        perturb_connections(model)
        moved = model(x)
    assert [tuple(f.shape) for f in moved] == [tuple(f.permute(0, 3, 1, 2).shape) for f in nhwc]
    assert not all(torch.equal(a, b.permute(0, 3, 1, 2)) for a, b in zip(moved, nhwc))


def test_timm_fixed_size_models_are_probed_at_their_size():
    swin = MODELS.build(
        dict(
            type='mmpretrain.TIMMBackbone',
            model_name='swin_tiny_patch4_window7_224',
            features_only=True,
            pretrained=False,
            embed_dim=8,
            depths=(1, 1, 1, 1),
            num_heads=(1, 1, 2, 2)))
    assert get_adapter(swin).probe_size(swin) == 224  # timm refuses any other size unless strict_img_size=False
    assert MODELS.build(
        dict(
            type='CBNet',
            backbone=dict(
                type='mmpretrain.TIMMBackbone',
                model_name='swin_tiny_patch4_window7_224',
                features_only=True,
                pretrained=False,
                embed_dim=8,
                depths=(1, 1, 1, 1),
                num_heads=(1, 1, 2, 2)))).stage_out_channels == [8, 16, 32, 64]


_RESNET = dict(
    type='mmpretrain.TIMMBackbone',
    model_name='resnet18',
    features_only=True,
    pretrained=False,
    channels=(8, 16, 32, 64))


@pytest.mark.parametrize(
    'inner, match', [
        (dict(_RESNET, features_only=False), 'must be built with features_only=True'),
        (dict(_RESNET,
              out_indices=(0, 1, 2, 3, 4)), r'include timm feature 0 \(act1, stride 2\).*drop 0 from out_indices'),
    ],
    ids=['not-features-only', 'stem-feature'])
def test_timm_models_the_composite_cannot_cut_are_refused_with_what_to_change(inner, match):
    inner = {k: v for k, v in inner.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='CBNet', backbone=inner))
    MODELS.build(inner)  # the single TIMMBackbone accepts them: the refusal is CBNet's


def _timm_test_models():
    import timm
    return timm.list_models('test_*')  # timm's own tiny variants of its families, for its tests


@pytest.mark.parametrize('name', _timm_test_models())
def test_every_timm_test_model_is_composed_exactly_or_refused_for_its_feature_net(name):
    """Generated from timm's registry: a model composes exactly (zero init: the single model's features in every
    branch; moved connections train every parameter the single model trains) unless timm collects its features
    in a way that cannot be cut into stages, and then CBNet says so."""
    result = check_timm_model(name)
    if result['status'] == 'refused':  # a model whose forward is not a sequence of modules or one loop over blocks
        net = MODELS.build(timm_backbone(name)).timm_model
        assert not isinstance(net, sequential_feature_nets()), result['reason']
        assert result['reason'].startswith('CBNet cannot cut'), result['reason']
    else:
        assert result['status'] == 'ok', result
