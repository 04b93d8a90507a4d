"""The composite backbone beyond the per-family harness (``test_backbone_families.py``): connections chain
through branches, the lead's pruning, the official-architecture aliases, the width probe on every family
(deformable convs, SAC), DetectoRS' RFP refused, ``import cbnet`` without mmpretrain, clear errors."""
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS

from cbnet.models.backbones.adapters import Pruned, get_adapter
from cbnet.testing import family, images, mmdet_config
from cbnet.testing.backbones import torch_threads
from cbnet.utils.configs import strip_pretrained


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


def build(name, num_backbones=2, **kwargs):
    inner = kwargs.pop('inner', {})
    return MODELS.build(dict(type='CBNet', backbone=family(name, **inner), num_backbones=num_backbones, **kwargs))


def parameter_free(module):
    return isinstance(module, Pruned) and not any(True for _ in module.parameters())


def test_nonzero_connections_change_the_lead_and_chain_through_branches():
    model = build('ResNet', 3)
    model.init_weights()
    model.eval()
    x = images()
    with torch.no_grad():
        base = model(x)[-1].clone()
        for p in model.composition.connections[1].parameters():  # branch 1 -> lead
            p.add_(0.5)
        direct = model(x)[-1].clone()
        for p in model.composition.connections[0].parameters():  # branch 0 -> branch 1
            p.add_(0.5)
        chained = model(x)[-1]
    assert not torch.allclose(base, direct), 'branch 1 -> lead connections must change the lead'
    assert not torch.allclose(direct, chained), 'branch 0 -> 1 connections must reach the lead of a Triple'


def test_lead_drops_stages_after_its_last_output():
    model = build('ResNet', 2, inner=dict(out_indices=(0, 1, 2)))
    lead = model.branches[-1]
    assert parameter_free(lead.layer4) and not isinstance(model.branches[0].layer4, Pruned)
    model.train()
    feats = model(images())
    assert len(feats.lead) == 3
    sum(f.mean() for b in feats.branches for f in b).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('num_backbones', [2, 3])
@pytest.mark.parametrize('composition', ['DHLC', 'AHLC', 'SLC', 'ALLC'])
def test_no_branch_runs_a_stage_nobody_reads(composition, num_backbones):
    """Without the last stage in out_indices, DHLC still feeds it forward (the assisting branches keep it), the
    adjacent compositions never read it: there every branch drops it, so no parameter lacks a gradient."""
    model = build('ResNet', num_backbones, composition=composition, inner=dict(out_indices=(0, 1, 2)))
    keeps_layer4 = composition == 'DHLC'
    for k, branch in enumerate(model.branches):
        lead = k == num_backbones - 1
        assert parameter_free(branch.layer4) == (lead or not keeps_layer4), (k, composition)
    model.train()
    with torch.no_grad():
        for p in model.composition.parameters():
            p.add_(0.1)
    feats = model(images())
    sum(f.mean() for b in feats.branches for f in b).backward()
    dead = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    assert not dead, dead


def test_swin_absolute_position_embedding_is_pruned_to_an_empty_buffer_and_still_freezes():
    model = build('Swin', 3, del_stages=0, inner=dict(use_abs_pos_embed=True, frozen_stages=0))
    first, *others = model.branches
    assert isinstance(first.absolute_pos_embed, nn.Parameter)
    for branch in others:
        assert branch.get_buffer('absolute_pos_embed').numel() == 0
        assert 'absolute_pos_embed' not in branch.state_dict()
    model.train()  # mmdet's Swin._freeze_stages sets absolute_pos_embed.requires_grad = False in every branch
    assert not first.absolute_pos_embed.requires_grad
    model.eval()
    assert len(model(images())) == 4


# -- the width probe suits every family -------------------------------------------------------------------
def mmdet_backbone(config, **overrides):
    backbone = mmdet_config(config).model.backbone.to_dict()
    strip_pretrained(backbone)
    backbone.update(overrides)
    return backbone


@pytest.mark.parametrize('config', [
    'dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py', 'dcnv2/faster-rcnn_r50-mdconv-c3-c5_fpn_1x_coco.py',
    'detectors/cascade-rcnn_r50-sac_1x_coco.py'
])
def test_dual_deformable_and_sac_resnets_of_the_mmdet_configs_build_and_run(config):
    """mmcv's deformable conv refuses maps smaller than its kernel and SAC reflect-pads by 2: the probe must
    reach a 3x3 map at the deepest stage (it used to end at 1x1 and fail to build)."""
    backbone = mmdet_backbone(config, base_channels=8, stem_channels=8)
    assert backbone.get('dcn') or backbone.get('sac')  # the config's own deformable settings are kept
    model = MODELS.build(dict(type='CBNet', backbone=backbone, num_backbones=2))
    x = images(size=96)
    model.train()
    feats = model(x)
    sum(f.mean() for b in feats.branches for f in b).backward()
    assert not [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.eval()
    with torch.no_grad():
        assert [f.shape[-1] for f in model(x)] == [24, 12, 6, 3]


def test_probe_size_follows_the_total_stride_and_stays_small_for_transformers():
    dilated = family('ResNet', strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))
    backbones = [MODELS.build(cfg) for cfg in (family('ResNet'), dilated, family('RegNet'), family('Swin'))]
    sizes = [get_adapter(b).probe_size(b) for b in backbones]
    assert sizes == [96, 48, 96, 32]  # 3 cells of stride 32 / 16; Swin pads windows: one 32 px cell


@pytest.mark.parametrize(
    'config', ['detectors/cascade-rcnn_r50-rfp_1x_coco.py', 'detectors/detectors_cascade-rcnn_r50_1x_coco.py'])
def test_detectors_rfp_is_refused_with_the_reason_and_the_sac_alternative(config):
    backbone = mmdet_backbone(config, base_channels=8, stem_channels=8)
    with pytest.raises(ValueError, match=r'Recursive Feature Pyramid.*rfp_forward.*cascade-rcnn_r50-sac_1x_coco'):
        MODELS.build(dict(type='CBNet', backbone=backbone, num_backbones=2))


# -- optional packages ----------------------------------------------------------------------------------------
BLOCK_MMPRETRAIN = textwrap.dedent('''
    import importlib.abc, sys

    class NoMMPretrain(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == 'mmpretrain' or name.startswith('mmpretrain.'):
                raise ModuleNotFoundError(f'No module named {name!r}', name=name)
            return None

    sys.meta_path.insert(0, NoMMPretrain())
    import cbnet  # noqa
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from cbnet.models.backbones import supported_backbones
    register_all_modules()
    assert 'mmpretrain' not in sys.modules
    assert 'mmpretrain.ConvNeXt' not in supported_backbones() and 'mmdet.ResNet' in supported_backbones()
    assert 'CBConvNeXt' not in MODELS.module_dict and 'CBNet' in MODELS.module_dict
    model = MODELS.build(dict(type='CBNet', num_backbones=2, backbone=dict(
        type='ResNet', depth=18, base_channels=8, stem_channels=8, init_cfg=None)))
    model.eval()
    import torch
    print('features', len(model(torch.zeros(1, 3, 64, 64))))
''')


def test_import_cbnet_and_build_a_dual_resnet_without_mmpretrain():
    result = subprocess.run([sys.executable, '-c', BLOCK_MMPRETRAIN], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'features 4' in result.stdout


# -- official-architecture aliases ------------------------------------------------------------------------
def test_dhlc_connection_layout_matches_official_resnet():
    """Official CBNetV2 R50: 6 connections, conv(no bias)+BN, C_{i+j+1} -> input of layer{i+1}."""
    model = MODELS.build(
        dict(
            type='CBResNet', depth=50, cb_inplanes=[64, 256, 512, 1024, 2048], out_indices=(0, 1, 2, 3), init_cfg=None))
    link = model.composition.connections[0]
    assert sorted(link.keys()) == sorted(
        ['into1_from1', 'into1_from2', 'into1_from3', 'into2_from2', 'into2_from3', 'into3_from3'])
    assert link['into1_from1'].conv.weight.shape == (256, 512, 1, 1)
    assert link['into3_from3'].conv.weight.shape == (1024, 2048, 1, 1)
    assert link['into1_from1'].conv.bias is None and isinstance(link['into1_from1'].norm, nn.BatchNorm2d)
    assert parameter_free(model.branches[1].conv1) and parameter_free(model.branches[1].layer1)


def test_swin_alias_matches_official_layout():
    model = MODELS.build(
        dict(
            type='CBSwinTransformer',
            embed_dim=8,
            depths=(1, 1, 1, 1),
            num_heads=(1, 1, 2, 2),
            window_size=4,
            pretrain_img_size=64,
            out_indices=(0, 1, 2, 3),
            init_cfg=None))
    link = model.composition.connections[0]
    assert len(link) == 10
    identities = [k for k, c in link.items() if c.identity]
    assert sorted(identities) == ['into0_from0', 'into1_from1', 'into2_from2', 'into3_from3']
    assert link['into0_from1'].conv.bias is not None and link['into0_from1'].norm is None
    lead = model.branches[1]
    assert parameter_free(lead.patch_embed)
    assert not any(isinstance(s, Pruned) for s in lead.stages) and len(lead.stages) == 4
    model.eval()
    assert len(model(images())) == 4


def test_aliases_build_res2net_and_convnext():
    res2 = MODELS.build(
        dict(type='CBRes2Net', depth=50, scales=2, base_width=4, base_channels=8, stem_channels=8, init_cfg=None))
    assert res2.num_backbones == 2 and type(res2.branches[0]).__name__ == 'Res2Net'
    cnx = MODELS.build(dict(type='CBConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]), init_cfg=None))
    cnx.eval()
    assert [f.shape[1] for f in cnx(images())] == [8, 16, 32, 64]


# -- errors ---------------------------------------------------------------------------------------------------
def test_single_backbone_is_an_error():
    with pytest.raises(ValueError, match='num_backbones must be an int >= 2'):
        build('ResNet', 1)


def test_unsupported_family_lists_supported():
    with pytest.raises(TypeError, match='Supported.*ResNet.*SwinTransformer'):
        MODELS.build(dict(type='CBNet', backbone=dict(type='mmpretrain.VGG', depth=11, init_cfg=None)))


def test_family_that_cannot_be_cut_is_refused_with_its_reason():
    with pytest.raises(ValueError, match='cannot compose mmpretrain.LeNet5: LeNet-5 is a classifier'):
        MODELS.build(dict(type='CBNet', backbone=dict(type='mmpretrain.LeNet5', num_classes=0)))


def test_unknown_composition():
    with pytest.raises(KeyError, match='Unknown composition .*registered: AHLC, ALLC, DHLC, SLC'):
        build('ResNet', composition='XYZ')


def test_cb_inplanes_must_match_depth():
    with pytest.raises(ValueError, match=r'cb_inplanes=.*do not match ResNet depth=50.*\[64, 256, 512, 1024, 2048\]'):
        MODELS.build(dict(type='CBResNet', depth=50, cb_inplanes=[64, 64, 128, 256, 512], init_cfg=None))


def test_convnext_pooled_outputs_refused():
    with pytest.raises(ValueError, match='gap_before_final_norm=False'):
        MODELS.build(dict(type='CBNet', backbone=family('ConvNeXt', gap_before_final_norm=True)))


def test_pretrained_init_cfg_on_cbnet_itself_points_inside():
    with pytest.raises(ValueError, match='move .*into backbone=dict'):
        build('ResNet', init_cfg=dict(type='Pretrained', checkpoint='x.pth'))


def test_plain_neck_on_training_features_names_the_fix():
    model = build('ResNet', 2)
    model.train()
    fpn = MODELS.build(dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=8, num_outs=4))
    with pytest.raises(TypeError, match="CBFasterRCNN"):
        fpn(model(images()))
