"""The composite backbone: every family x K x composition builds, runs, back-propagates; zero-init invariant;
pruning; freezing; gradient checkpointing; official-architecture aliases; clear errors."""
import copy

import pytest
import torch
import torch.nn as nn
from cbnet.testing import FAMILIES, family, images
from mmdet.registry import MODELS

from cbnet.models import MultiBranchFeatures
from cbnet.models.backbones import CBNet

COMPOSITIONS = ['DHLC', 'AHLC', 'SLC', 'ALLC']


def build(name, num_backbones=2, **kwargs):
    inner = kwargs.pop('inner', {})
    return MODELS.build(dict(type='CBNet', backbone=family(name, **inner), num_backbones=num_backbones, **kwargs))


def perturb_connections(model, scale=0.1):
    """Move connections off zero so that every path carries signal."""
    with torch.no_grad():
        for p in model.composition.parameters():
            p.add_(torch.randn_like(p) * scale + scale)


@pytest.mark.parametrize('num_backbones', [2, 3])
@pytest.mark.parametrize('composition', COMPOSITIONS)
@pytest.mark.parametrize('name', list(FAMILIES))
def test_every_family_builds_runs_and_backpropagates(name, composition, num_backbones):
    single = MODELS.build(family(name))
    model = build(name, num_backbones, composition=composition)
    x = images()

    model.eval()
    with torch.no_grad():
        lead = model(x)
        single.eval()
        expected = single(x)
    assert isinstance(lead, tuple) and len(lead) == len(expected)
    assert [f.shape for f in lead] == [f.shape for f in expected]

    model.train()
    perturb_connections(model)
    feats = model(x)
    assert isinstance(feats, MultiBranchFeatures) and feats.num_branches == num_backbones
    for branch in feats.branches:
        assert [f.shape for f in branch] == [f.shape for f in expected]
    sum(f.float().mean() for branch in feats.branches for f in branch).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f'parameters without gradient (DDP would need find_unused_parameters): {unused}'


@pytest.mark.parametrize('name', list(FAMILIES))
def test_zero_init_lead_equals_single_backbone(name):
    model = build(name, 3)
    model.init_weights()
    single = MODELS.build(family(name))
    single.load_state_dict(model.branches[0].state_dict())
    x = images()
    model.eval(), single.eval()
    with torch.no_grad():
        for a, b in zip(model(x), single(x)):
            assert torch.equal(a, b)
    # connections really start at zero, whatever the family's norm
    assert any(p.numel() for p in model.composition.parameters())


def test_zero_init_holds_in_training_mode_for_every_branch():
    model = build('ResNet', 2)
    model.init_weights()
    model.train()
    feats = model(images())
    for a, b in zip(*feats.branches):
        assert torch.allclose(a, b, atol=1e-6)


def test_nonzero_connections_change_the_lead_and_chain_through_branches():
    model = build('ResNet', 3)
    model.init_weights()
    model.eval()
    x = images()
    with torch.no_grad():
        for p in model.composition.connections[1].parameters():  # branch 1 -> lead
            p.add_(0.5)
        base = model(x)[-1].clone()
        for p in model.composition.connections[0].parameters():  # branch 0 -> branch 1
            p.add_(0.5)
        changed = model(x)[-1]
    assert not torch.allclose(base, changed), 'branch 0 -> 1 connections must reach the lead of a Triple'


@pytest.mark.parametrize('name,stem', [('ResNet', 'conv1'), ('ResNetV1d', 'stem'), ('Swin', 'patch_embed'),
                                       ('ConvNeXt', None)])
def test_pruned_modules_do_not_exist(name, stem):
    model = build(name, 3, del_stages=1)
    first, *others = model.branches
    for branch in others:
        names = {n for n, _ in branch.named_parameters()}
        assert not any(n.startswith(model.adapter.stage_modules(branch, 0)[0] + '.') for n in names)
        if stem:
            assert not hasattr(branch, stem)
            assert hasattr(first, stem)
    if name == 'ConvNeXt':
        assert isinstance(others[0].downsample_layers[0], nn.Identity)
    n_first = sum(p.numel() for p in first.parameters())
    assert all(sum(p.numel() for p in b.parameters()) < n_first for b in others)


def test_lead_drops_stages_after_its_last_output():
    model = build('ResNet', 2, inner=dict(out_indices=(0, 1, 2)))
    lead = model.branches[-1]
    assert not hasattr(lead, 'layer4') and hasattr(model.branches[0], 'layer4')
    model.train()
    feats = model(images())
    assert len(feats.lead) == 3
    sum(f.mean() for b in feats.branches for f in b).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('name,frozen', [('ResNet', 1), ('Swin', 1), ('ConvNeXt', 1)])
def test_frozen_stages_frozen_in_every_branch(name, frozen):
    model = build(name, 3, del_stages=0, inner=dict(frozen_stages=frozen))
    model.train()
    adapter = model.adapter
    for k, branch in enumerate(model.branches):
        frozen_names = adapter.frozen_modules(branch)
        assert frozen_names
        for module_name in frozen_names:
            module = dict(branch.named_modules()).get(module_name)
            if module is None or isinstance(module, nn.Identity):  # pruned from this branch
                continue
            assert not module.training, (k, module_name)
            assert all(not p.requires_grad for p in module.parameters()), (k, module_name)
    # the stage after the frozen ones trains
    later = adapter.stage_modules(model.branches[-1], frozen)[-1]
    assert any(p.requires_grad for p in dict(model.branches[-1].named_modules())[later].parameters())
    before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    feats = model(images())
    sum(f.mean() for b in feats.branches for f in b).backward()
    opt.step()
    for n, p in model.named_parameters():
        if n in before:
            assert torch.equal(before[n], p), n


def test_norm_eval_keeps_branch_bns_in_eval_but_connection_bns_always_eval():
    model = build('ResNet', 2, inner=dict(norm_eval=True))
    model.train()
    bns = [m for m in model.branches.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    model2 = build('ResNet', 2)
    model2.train()
    assert any(m.training for m in model2.branches.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(m.training for m in model2.composition.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize('name', ['ResNet', 'Swin', 'ConvNeXt'])
def test_with_cp_same_outputs_and_gradients(name):
    torch.manual_seed(1)
    plain = build(name, 2)
    perturb_connections(plain)
    checkpointed = build(name, 2, inner=dict(with_cp=True))
    checkpointed.load_state_dict(plain.state_dict())
    x = images()
    results = []
    for model in (plain, checkpointed):
        model.train()
        feats = model(x)
        loss = sum((f * f).mean() for b in feats.branches for f in b)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                        if p.grad is not None}))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert results[0][1].keys() == results[1][1].keys()
    for n in results[0][1]:
        assert torch.allclose(results[0][1][n], results[1][1][n], atol=1e-5), n


def test_share_weights_adds_only_connections():
    single = MODELS.build(family('ResNet'))
    shared = build('ResNet', 3, share_weights=True)
    n_single = sum(p.numel() for p in single.parameters())
    n_conn = sum(p.numel() for p in shared.composition.parameters())
    assert sum(p.numel() for p in shared.parameters()) == n_single + n_conn
    shared.train()
    feats = shared(images())
    assert feats.num_branches == 3


def test_dhlc_connection_layout_matches_official_resnet():
    """Official CBNetV2 R50: 6 connections, conv(no bias)+BN, C_{i+j+1} -> input of layer{i+1}."""
    model = MODELS.build(dict(type='CBResNet', depth=50, cb_inplanes=[64, 256, 512, 1024, 2048],
                              out_indices=(0, 1, 2, 3), init_cfg=None))
    link = model.composition.connections[0]
    assert sorted(link.keys()) == sorted(
        ['into1_from1', 'into1_from2', 'into1_from3', 'into2_from2', 'into2_from3', 'into3_from3'])
    assert link['into1_from1'].conv.weight.shape == (256, 512, 1, 1)
    assert link['into3_from3'].conv.weight.shape == (1024, 2048, 1, 1)
    assert link['into1_from1'].conv.bias is None and isinstance(link['into1_from1'].norm, nn.BatchNorm2d)
    assert not hasattr(model.branches[1], 'conv1') and not hasattr(model.branches[1], 'layer1')


def test_swin_alias_matches_official_layout():
    model = MODELS.build(dict(type='CBSwinTransformer', embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                              window_size=4, pretrain_img_size=64, out_indices=(0, 1, 2, 3), init_cfg=None))
    link = model.composition.connections[0]
    assert len(link) == 10
    identities = [k for k, c in link.items() if c.identity]
    assert sorted(identities) == ['into0_from0', 'into1_from1', 'into2_from2', 'into3_from3']
    assert link['into0_from1'].conv.bias is not None and link['into0_from1'].norm is None
    lead = model.branches[1]
    assert not hasattr(lead, 'patch_embed') and len([s for s in lead.stages if not isinstance(s, nn.Identity)]) == 4
    model.eval()
    assert len(model(images())) == 4


def test_aliases_build_res2net_and_convnext():
    res2 = MODELS.build(dict(type='CBRes2Net', depth=50, scales=2, base_width=4, base_channels=8, stem_channels=8,
                             init_cfg=None))
    assert res2.num_backbones == 2 and type(res2.branches[0]).__name__ == 'Res2Net'
    cnx = MODELS.build(dict(type='CBConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                            init_cfg=None))
    cnx.eval()
    assert [f.shape[1] for f in cnx(images())] == [8, 16, 32, 64]


# -- errors ---------------------------------------------------------------------------------------------------
def test_single_backbone_is_an_error():
    with pytest.raises(ValueError, match='num_backbones must be an int >= 2'):
        build('ResNet', 1)


def test_unsupported_family_lists_supported():
    with pytest.raises(TypeError, match='Supported.*ResNet.*SwinTransformer'):
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
