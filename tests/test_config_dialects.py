"""The two ways of writing a composite backbone build the same model.

- Official form (for migrating CBNetV2 configs): ``CBResNet`` / ``CBRes2Net`` / ``CBSwinTransformer`` with the
  official arguments (``cb_del_stages``, ``cb_zero_init``, ``cb_inplanes``, Swin's ``embed_dim``, ``ape``,
  ``use_checkpoint``).
- Generic form: ``CBNet(backbone=<the mmdet backbone config>, num_backbones, composition, del_stages, zero_init)``.

Same state-dict keys and shapes, and the same outputs for the same weights (eval: the lead's features; train:
every branch's), for a ResNet and a Swin case, K = 2 and 3; plus the full-size translation of the paper configs'
Dual-R50 and Dual-Swin-T backbones (keys and shapes only).
"""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from cbnet.models.structures import MultiBranchFeatures
from cbnet.testing import family, images
from cbnet.utils.configs import strip_pretrained

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the official Swin composition: 1x1 conv with bias and no norm; identity where the widths match (same level)
SWIN_COMPOSITION = dict(type='DHLC', norm_cfg=None, conv_bias=True, identity_if_same_channels=True)


def resnet_pair(num_backbones: int):
    inner = family('ResNet')  # tiny ResNet-18: stem 8, stages 8/16/32/64
    official = {k: v for k, v in inner.items() if k != 'type'}
    official.update(
        type='CBResNet',
        num_backbones=num_backbones,
        cb_inplanes=[8, 8, 16, 32, 64],
        cb_del_stages=1,
        cb_zero_init=True)
    generic = dict(
        type='CBNet', backbone=inner, num_backbones=num_backbones, composition='DHLC', del_stages=1, zero_init=True)
    return official, generic


def swin_pair(num_backbones: int):
    inner = family('Swin')
    swin = {k: v for k, v in inner.items() if k not in ('type', 'embed_dims')}
    official = dict(
        swin,
        type='CBSwinTransformer',
        num_backbones=num_backbones,
        embed_dim=inner['embed_dims'],
        ape=False,
        use_checkpoint=False,
        cb_del_stages=1,
        cb_zero_init=True)
    # the official cb_del_stages=1 counts the patch embedding as a stage: no Swin stage is shared (del_stages=0)
    generic = dict(
        type='CBNet',
        backbone=dict(inner, use_abs_pos_embed=False, with_cp=False, convert_weights=True),
        num_backbones=num_backbones,
        composition=SWIN_COMPOSITION,
        del_stages=0,
        zero_init=True)
    return official, generic


def shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def randomise(model, seed: int = 0) -> None:
    """Non-zero weights everywhere, the composite connections included, so that they count in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def assert_same(a, b) -> None:
    if isinstance(a, MultiBranchFeatures):
        assert isinstance(b, MultiBranchFeatures) and a.num_branches == b.num_branches
        a, b = a.branches, b.branches
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('num_backbones', [2, 3])
@pytest.mark.parametrize('pair', [resnet_pair, swin_pair], ids=['resnet', 'swin'])
def test_official_and_generic_forms_build_the_same_model(pair, num_backbones):
    official_cfg, generic_cfg = pair(num_backbones)
    official, generic = MODELS.build(official_cfg), MODELS.build(generic_cfg)
    assert type(generic).__name__ == 'CBNet' and isinstance(official, type(generic))
    assert shapes(official) == shapes(generic)
    randomise(official)
    generic.load_state_dict(official.state_dict(), strict=True)
    x = images(2, 64)
    for mode in (False, True):  # eval: the lead's features; train: every branch's (BN with batch statistics)
        official.train(mode), generic.train(mode)
        with torch.no_grad():
            out_official, out_generic = official(x), generic(x)
        assert isinstance(out_official, MultiBranchFeatures) == mode
        assert_same(out_official, out_generic)


def test_swin_same_level_connections_are_live_identities_at_init():
    """The official Swin composite: same level = identity (no weights, live at init), higher levels = zero-init
    1x1 convs. So, unlike the CNN composites, its lead does NOT start as a copy of the single backbone."""
    x = images(1, 64)
    for pair, starts_as_copy in ((resnet_pair, True), (swin_pair, False)):
        official = MODELS.build(pair(2)[0])
        connections = dict(official.composition.connections[0].items())
        identities = {k for k, c in connections.items() if c.identity}
        if pair is swin_pair:
            assert identities == {f'into{i}_from{i}' for i in range(4)}
        else:
            assert not identities
        for key, connection in connections.items():
            if key not in identities:  # the others output exactly zero
                source = torch.randn(1, connection.conv.in_channels, 4, 4)
                assert torch.count_nonzero(connection.eval()(source, (8, 8))) == 0, key
        official.train()
        with torch.no_grad():
            feats = official(x)
        same = all(torch.equal(a, b) for a, b in zip(feats.assisting[0], feats.lead))
        assert same == starts_as_copy


def _paper_backbone(config: str) -> dict:
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'cbnet', config))
    strip_pretrained(cfg.model)
    return cfg.model.backbone.to_dict()


def test_paper_configs_backbones_translate_to_the_generic_form():
    """Full size: the Dual-R50 (mmdet ResNet-50 arguments of the base) and Dual-Swin-T of the paper configs."""
    r50 = _paper_backbone('dual_r50_faster_rcnn.py')
    inner = {k: v for k, v in r50.items() if not k.startswith('cb_') and k != 'type'}
    generic_r50 = dict(type='CBNet', backbone=dict(inner, type='ResNet'), del_stages=r50['cb_del_stages'])

    swin = _paper_backbone('dual_swin_t_mask_rcnn.py')
    renames = dict(embed_dim='embed_dims', ape='use_abs_pos_embed', use_checkpoint='with_cp')
    inner = {renames.get(k, k): v for k, v in swin.items() if not k.startswith('cb_') and k != 'type'}
    generic_swin = dict(
        type='CBNet',
        backbone=dict(inner, type='SwinTransformer', convert_weights=True),
        del_stages=swin['cb_del_stages'] - 1,
        composition=SWIN_COMPOSITION)
    for official_cfg, generic_cfg in ((r50, generic_r50), (swin, generic_swin)):
        official, generic = MODELS.build(official_cfg), MODELS.build(generic_cfg)
        assert shapes(official) == shapes(generic)
        assert sum(p.numel() for p in official.parameters()) == sum(p.numel() for p in generic.parameters())
        del official, generic
