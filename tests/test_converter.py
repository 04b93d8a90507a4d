"""Official CBNetV2 checkpoint converter: synthetic official files (official key layout, random non-zero
weights) convert, load strictly into our models and give the official forward's features
(tests/official_reference.py), for Dual ResNet and Dual Swin; heads of the released detectors load; bad input
is refused clearly."""
import copy
from collections import OrderedDict

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from cbnet.converters import convert_cbnetv2_state_dict, detect_family
from cbnet.converters.cbnetv2 import convert_checkpoint, load_official_checkpoint
from cbnet.testing import family, images, load_tool, tiny_detector_cfg
from cbnet.testing.checkpoint_formats import to_original_swin
from tests.official_reference import official_cbresnet_forward, official_cbswin_forward, official_fpn_forward

RESNET50 = dict(
    type='ResNet',
    depth=50,
    base_channels=8,
    stem_channels=8,
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=True,
    style='pytorch')
SWIN = dict(
    type='SwinTransformer',
    embed_dims=8,
    depths=(2, 1, 2, 1),
    num_heads=(1, 2, 2, 4),
    window_size=4,
    pretrain_img_size=64,
    drop_path_rate=0.0,
    out_indices=(0, 1, 2, 3))
FPN = dict(in_channels=[32, 64, 128, 256], out_channels=16, num_outs=5)
SWIN_FPN = dict(in_channels=[8, 16, 32, 64], out_channels=16, num_outs=5)


# -- synthetic official checkpoints (the official layout; widths from plain mmdet backbones) -----------------
def _randomize(state, generator):
    """Non-trivial values everywhere: BN statistics too (variances positive), integer buffers untouched."""
    out = OrderedDict()
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith('running_var'):
            out[k] = torch.rand(v.shape, generator=generator) + 0.5
        elif v.dim() > 1:  # keep the init's scale so that activations stay moderate through deep stacks
            out[k] = v * (1 + 0.2 * torch.randn(v.shape, generator=generator))
        else:
            out[k] = v + 0.1 * torch.randn(v.shape, generator=generator)
    return out


def _stage_widths(backbone, size=64):
    """(input width of every stage, output width of every stage) of a plain mmdet backbone."""
    with torch.no_grad():
        backbone.eval()  # mmdet ResNet.train() returns None
        outs = backbone(torch.zeros(1, 3, size, size))
    return [o.shape[1] for o in outs]


def official_resnet_backbone(resnet_cfg, seed=0):
    """``backbone.*`` of an official Dual CBResNet (cb_del_stages=1): the lead without conv1/layer1 but with
    its unused bn1; cb_linears.{i}.{j} = conv(no bias)+BN from cb_inplanes[i+j+1] to cb_inplanes[i]."""
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for k in range(2):
        resnet = MODELS.build(dict(resnet_cfg, init_cfg=None))
        for name, v in _randomize(resnet.state_dict(), g).items():
            if k == 1 and name.startswith(('conv1.', 'layer1.')):
                continue
            state[f'backbone.cb_modules.{k}.{name}'] = v
    cb_inplanes = [resnet.stem_channels] + _stage_widths(resnet)
    for i in range(1, 4):
        for j in range(4 - i):
            cin, cout = cb_inplanes[i + j + 1], cb_inplanes[i]
            p = f'backbone.cb_linears.{i}.{j}.'
            state[p + '0.weight'] = torch.randn(cout, cin, 1, 1, generator=g) / cin**0.5
            state[p + '1.weight'] = torch.rand(cout, generator=g) + 0.5  # non-zero: the connection matters
            state[p + '1.bias'] = torch.randn(cout, generator=g)
            state[p + '1.running_mean'] = torch.randn(cout, generator=g)
            state[p + '1.running_var'] = torch.rand(cout, generator=g) + 0.5
            state[p + '1.num_batches_tracked'] = torch.tensor(7)
    return state


def official_swin_backbone(swin_cfg, seed=0):
    """``backbone.*`` of an official Dual CBSwinTransformer: original Swin layout, no lead patch_embed,
    cb_linears.{i}.{j} = conv with bias from width(i+j) to width(i), identity (no keys) for j=0."""
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for k in range(2):
        swin = MODELS.build(dict(swin_cfg, init_cfg=None))
        for name, v in to_original_swin(_randomize(swin.state_dict(), g)).items():
            if k == 1 and name.startswith('patch_embed.'):
                continue
            state[f'backbone.cb_modules.{k}.{name}'] = v
    widths = _stage_widths(swin)
    for i in range(4):
        for j in range(1, 4 - i):
            state[f'backbone.cb_linears.{i}.{j}.weight'] = torch.randn(
                widths[i], widths[i + j], 1, 1, generator=g) / widths[i + j]**0.5
            state[f'backbone.cb_linears.{i}.{j}.bias'] = torch.randn(widths[i], generator=g)
    return state


def official_neck(fpn_cfg, seed=1):
    g = torch.Generator().manual_seed(seed)
    fpn = MODELS.build(dict(fpn_cfg, type='FPN', init_cfg=None))
    return OrderedDict((f'neck.{k}', v) for k, v in _randomize(fpn.state_dict(), g).items())


def _load_backbone_and_neck(model_backbone, model_neck, state):
    model_backbone.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith('backbone.')}, strict=True)
    model_neck.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith('neck.')}, strict=True)


def _assert_close(ours, ref):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        # float32 sums in another order (we resize before the 1x1 conv when shrinking): relative to the scale
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


# -- same outputs as the official forward -------------------------------------------------------------------------
def test_dual_resnet_converted_matches_official_forward():
    official = official_resnet_backbone(RESNET50)
    official.update(official_neck(FPN))
    converted, report = convert_cbnetv2_state_dict(official)
    assert report.family == 'resnet' and report.num_branches == 2

    backbone = MODELS.build(dict(RESNET50, type='CBResNet', cb_del_stages=1, cb_inplanes=[8, 32, 64, 128, 256]))
    neck = MODELS.build(dict(FPN, type='CBFPN'))
    _load_backbone_and_neck(backbone, neck, converted)
    backbone.eval(), neck.eval()
    x = images(2, 64)
    with torch.no_grad():
        ours = backbone(x)
        ref = official_cbresnet_forward(official, RESNET50, x)
        _assert_close(ours, ref)
        _assert_close(neck(ours), official_fpn_forward(official, FPN, ref))
        # the connections matter: without them the lead computes something else
        zeroed = copy.deepcopy(official)
        for k in zeroed:
            if k.startswith('backbone.cb_linears') and k.endswith('1.weight'):
                zeroed[k] = torch.zeros_like(zeroed[k])
        assert not torch.allclose(official_cbresnet_forward(zeroed, RESNET50, x)[-1], ref[-1], atol=1e-3)

    dropped = sorted(k for k, _ in report.dropped)
    assert dropped == sorted(f'backbone.cb_modules.1.bn1.{p}'
                             for p in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'))


def test_dual_swin_converted_matches_official_forward():
    official = official_swin_backbone(SWIN)
    official.update(official_neck(SWIN_FPN))
    converted, report = convert_cbnetv2_state_dict(official)
    assert report.family == 'swin'
    assert not report.dropped

    swin = {k: v for k, v in SWIN.items() if k not in ('type', 'embed_dims')}
    backbone = MODELS.build(dict(swin, type='CBSwinTransformer', embed_dim=8, cb_del_stages=1))
    neck = MODELS.build(dict(SWIN_FPN, type='CBFPN'))
    _load_backbone_and_neck(backbone, neck, converted)
    backbone.eval(), neck.eval()
    x = images(2, 64)
    with torch.no_grad():
        ours = backbone(x)
        ref = official_cbswin_forward(official, SWIN, x)
        _assert_close(ours, ref)
        _assert_close(neck(ours), official_fpn_forward(official, SWIN_FPN, ref))


def test_connection_indices_follow_official_shapes():
    """In the official layout cb_linears.1.0.0.weight of Dual R50 is [256, 512, 1, 1] (C3 -> input of layer2):
    stage index 1 -> stage index 1, i.e. into{i}_from{i+j}; every official R50 connection lands on a same-shaped
    one."""
    cb_inplanes = [64, 256, 512, 1024, 2048]
    shapes = {
        f'backbone.cb_linears.{i}.{j}.0.weight': (cb_inplanes[i], cb_inplanes[i + j + 1], 1, 1)
        for i in range(1, 4)
        for j in range(4 - i)
    }
    assert shapes['backbone.cb_linears.1.0.0.weight'] == (256, 512, 1, 1)
    fake = {k: torch.empty(s) for k, s in shapes.items()}
    fake['backbone.cb_modules.0.conv1.weight'] = torch.empty(64, 3, 7, 7)
    fake['backbone.cb_modules.1.layer2.0.conv1.weight'] = torch.empty(128, 256, 1, 1)
    converted, _ = convert_cbnetv2_state_dict(fake)
    model = MODELS.build(dict(type='CBResNet', depth=50, init_cfg=None))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.endswith('conv.weight')}
    assert len(ours) == len(shapes) == 6
    assert {k[len('backbone.'):]: tuple(v.shape) for k, v in converted.items() if 'composition' in k} == ours
    assert 'backbone.composition.connections.0.into1_from1.conv.weight' in converted


# -- heads of the released detectors ------------------------------------------------------------------------------
#: parameter names as written by mmdet 2.14 (the official files); the converter keeps them
MMDET2_HEAD_KEYS = {
    'CBMaskRCNN': [
        'rpn_head.rpn_conv.weight', 'rpn_head.rpn_cls.weight', 'rpn_head.rpn_reg.bias',
        'roi_head.bbox_head.shared_fcs.1.weight', 'roi_head.bbox_head.fc_cls.weight',
        'roi_head.mask_head.convs.3.conv.weight', 'roi_head.mask_head.upsample.weight',
        'roi_head.mask_head.conv_logits.bias'
    ],
    'CBCascadeRCNN': [
        'roi_head.bbox_head.2.shared_convs.3.conv.weight', 'roi_head.bbox_head.2.shared_convs.3.bn.bias',
        'roi_head.bbox_head.0.shared_fcs.0.weight', 'roi_head.bbox_head.1.fc_reg.weight',
        'roi_head.mask_head.2.conv_logits.weight'
    ],
    'CBHybridTaskCascade': [
        'roi_head.semantic_head.lateral_convs.0.conv.weight', 'roi_head.semantic_head.conv_embedding.conv.weight',
        'roi_head.semantic_head.conv_logits.weight', 'roi_head.mask_head.1.conv_res.conv.weight',
        'roi_head.bbox_head.2.shared_convs.0.conv.weight'
    ],
}
_4CONV1FC = dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=32, norm_cfg=dict(type='BN', requires_grad=True))


def _tiny_cb_detector(name):
    if name == 'CBMaskRCNN':
        return tiny_detector_cfg('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', name)
    cfg = tiny_detector_cfg(
        'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'
        if name == 'CBCascadeRCNN' else 'htc/htc_r50_fpn_1x_coco.py', name)
    for head in cfg.roi_head.bbox_head:  # the released Swin models use 4conv1fc box heads with BN
        head.update(_4CONV1FC)
    if name == 'CBHybridTaskCascade':
        cfg.roi_head.semantic_head.update(in_channels=32, conv_out_channels=32)
    return cfg


@pytest.mark.parametrize('name', list(MMDET2_HEAD_KEYS))
def test_released_detector_heads_load(name):
    cfg = _tiny_cb_detector(name)
    model = MODELS.build(cfg)
    ours = model.state_dict()
    assert all(k in ours for k in MMDET2_HEAD_KEYS[name]), [k for k in MMDET2_HEAD_KEYS[name] if k not in ours]
    g = torch.Generator().manual_seed(3)
    official = official_resnet_backbone(cfg.backbone.backbone)
    heads = _randomize(OrderedDict((k, v) for k, v in ours.items() if not k.startswith('backbone.')), g)
    official.update(heads)
    converted, report = convert_cbnetv2_state_dict(official)
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in heads.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert report.unchanged == len(heads)


# -- files, CLI and verification against a config -------------------------------------------------------------
def _write_config(tmp_path, model_cfg):
    path = tmp_path / 'dual_tiny.py'
    Config(dict(model=model_cfg, custom_imports=dict(imports=['cbnet'], allow_failed_imports=False))).dump(str(path))
    return str(path)


def _inner(cb_resnet_cfg):
    """The plain mmdet ResNet of a CBResNet config (what each official cb_module is)."""
    return dict({k: v for k, v in cb_resnet_cfg.items() if not k.startswith('cb_')}, type='ResNet')


def _cli_main():
    return load_tool('tools/model_converters/cbnetv2_to_cbnet.py').main


def _tiny_faster_cfg():
    cfg = tiny_detector_cfg('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'CBFasterRCNN')
    inner = cfg.pop('backbone').backbone
    cfg.backbone = dict(inner, type='CBResNet', cb_del_stages=1)
    cfg.neck.type = 'CBFPN'
    return cfg


def test_cli_converts_verifies_and_writes_a_load_from_file(tmp_path, capsys):
    from mmengine.runner import load_checkpoint
    main = _cli_main()
    cfg = _tiny_faster_cfg()
    model = MODELS.build(cfg)
    official = official_resnet_backbone(_inner(cfg.backbone))
    official.update((k, v) for k, v in model.state_dict().items() if not k.startswith('backbone.'))
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save(dict(state_dict=official, meta=dict(mmdet_version='2.14.0', CLASSES=('a', 'b'))), src)

    assert main([str(src), str(dst), '--config', _write_config(tmp_path, cfg)]) == 0
    printed = capsys.readouterr().out
    assert 'backbone.cb_modules.1.bn1.weight' in printed and 'no missing and no unexpected keys' in printed

    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['converted_from'] == str(src)
    assert saved['meta']['dataset_meta'] == dict(classes=('a', 'b'))
    fresh = MODELS.build(cfg)
    load_checkpoint(fresh, str(dst), strict=True)  # what load_from does
    torch.testing.assert_close(fresh.state_dict()['backbone.composition.connections.0.into2_from3.norm.bias'],
                               official['backbone.cb_linears.2.1.1.bias'])


def test_verification_fails_on_the_wrong_config(tmp_path):
    official = official_swin_backbone(SWIN)
    src = tmp_path / 'official.pth'
    torch.save(dict(state_dict=official, meta={}), src)
    with pytest.raises(ValueError, match='do not fit the model|missing keys'):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'), config=_write_config(tmp_path, _tiny_faster_cfg()))
    assert not (tmp_path / 'out.pth').exists()


def test_lead_stages_pruned_in_the_target_are_dropped_and_reported(tmp_path):
    cfg = _tiny_faster_cfg()
    cfg.backbone.out_indices = (0, 1, 2)
    cfg.neck.in_channels = cfg.neck.in_channels[:3]
    official = official_resnet_backbone(dict(_inner(cfg.backbone), out_indices=(0, 1, 2, 3)))
    official.update((k, v) for k, v in MODELS.build(cfg).state_dict().items() if not k.startswith('backbone.'))
    src = tmp_path / 'official.pth'
    torch.save(dict(state_dict=official, meta={}), src)
    report = convert_checkpoint(str(src), str(tmp_path / 'out.pth'), config=_write_config(tmp_path, cfg))
    dropped = [k for k, _ in report.dropped]
    assert any(k.startswith('backbone.branches.1.layer4.') for k in dropped)
    assert 'backbone.composition.connections.0.into3_from3.conv.weight' in dropped


# -- refusals -------------------------------------------------------------------------------------------------------
def test_refuses_a_plain_mmdet_checkpoint():
    plain = {'backbone.conv1.weight': torch.zeros(1), 'neck.lateral_convs.0.conv.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match='Not an official CBNetV2 checkpoint.*cb_modules'):
        detect_family(plain)


def test_refuses_an_already_converted_checkpoint():
    converted, _ = convert_cbnetv2_state_dict(official_resnet_backbone(family('ResNet')))
    with pytest.raises(ValueError, match='already in cbnet format'):
        convert_cbnetv2_state_dict(converted)


def test_refuses_connections_of_the_other_family():
    resnet = official_resnet_backbone(family('ResNet'))
    swin = official_swin_backbone(SWIN)
    swin_links = {k: v for k, v in swin.items() if 'cb_linears' in k}
    resnet_links = {k: v for k, v in resnet.items() if 'cb_linears' in k}
    mixed = {k: v for k, v in resnet.items() if 'cb_linears' not in k}
    mixed.update(swin_links)
    with pytest.raises(ValueError, match='ResNet-family.*do not match'):
        convert_cbnetv2_state_dict(mixed)
    mixed = {k: v for k, v in swin.items() if 'cb_linears' not in k}
    mixed.update(resnet_links)
    with pytest.raises(ValueError, match='Swin CBNetV2 checkpoint.*do not match'):
        convert_cbnetv2_state_dict(mixed)


def test_refuses_a_family_that_is_not_the_requested_one():
    with pytest.raises(ValueError, match="family='swin'.*resnet"):
        convert_cbnetv2_state_dict(official_resnet_backbone(family('ResNet')), family='swin')


def test_bare_state_dict_files_are_read(tmp_path):
    official = official_resnet_backbone(family('ResNet'))
    path = tmp_path / 'bare.pth'
    torch.save(official, path)
    state, meta = load_official_checkpoint(str(path))
    assert meta == {} and set(state) == set(official)


# -- the paper configs ----------------------------------------------------------------------------------------------
def _official_for_config(model, inner_cfg, widths, family_name):
    """A synthetic official file for a paper config: plain mmdet backbones in the official layout, connections
    with the official shapes (cb_linears.{i}.{j}), the model's own neck/head keys (same names in mmdet 2.14, see
    above)."""
    inner = MODELS.build(dict(inner_cfg, init_cfg=None))
    state = OrderedDict()
    for k in range(2):
        for name, v in (to_original_swin(inner.state_dict()) if family_name == 'swin' else inner.state_dict()).items():
            lead_pruned = ('patch_embed.', ) if family_name == 'swin' else ('conv1.', 'stem.', 'layer1.')
            if k == 1 and name.startswith(lead_pruned):
                continue
            state[f'backbone.cb_modules.{k}.{name}'] = v
    if family_name == 'resnet':  # widths = cb_inplanes (stem + 4 stages)
        for i in range(1, 4):
            for j in range(4 - i):
                p = f'backbone.cb_linears.{i}.{j}.'
                state[p + '0.weight'] = torch.zeros(widths[i], widths[i + j + 1], 1, 1)
                for n in ('weight', 'bias', 'running_mean', 'running_var'):
                    state[p + '1.' + n] = torch.zeros(widths[i])
                state[p + '1.num_batches_tracked'] = torch.tensor(0)
    else:  # widths = the 4 stage widths; j = 0 is an identity
        for i in range(4):
            for j in range(1, 4 - i):
                state[f'backbone.cb_linears.{i}.{j}.weight'] = torch.zeros(widths[i], widths[i + j], 1, 1)
                state[f'backbone.cb_linears.{i}.{j}.bias'] = torch.zeros(widths[i])
    state.update((k, v) for k, v in model.state_dict().items() if not k.startswith('backbone.'))
    return state


PAPER_CONFIGS = {
    'configs/cbnet/dual_r50_faster_rcnn.py': (dict(type='ResNet', depth=50), [64, 256, 512, 1024, 2048], 'resnet'),
    'configs/cbnet/dual_res2net101_dcn_cascade_rcnn.py': (dict(
        type='Res2Net',
        depth=101,
        scales=4,
        base_width=26,
        stage_with_dcn=(False, True, True, True),
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False)), [64, 256, 512, 1024, 2048], 'resnet'),
    'configs/cbnet/dual_swin_t_mask_rcnn.py':
    (dict(type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
          window_size=7), [96, 192, 384, 768], 'swin'),
    'configs/cbnet/dual_swin_t_cascade_mask_rcnn.py':
    (dict(type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
          window_size=7), [96, 192, 384, 768], 'swin'),
    'configs/cbnet/dual_swin_b_htc.py':
    (dict(type='SwinTransformer', embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
          window_size=7), [128, 256, 512, 1024], 'swin'),
}


@pytest.mark.parametrize(
    'config',
    [pytest.param(c, marks=pytest.mark.slow) if 'swin_b' in c or 'res2net' in c else c for c in PAPER_CONFIGS])
def test_official_checkpoint_of_a_paper_config_loads_strictly(config):
    import os.path as osp

    from cbnet.converters.cbnetv2 import build_target_model, drop_pruned_stages, verify_against_model
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    model = build_target_model(osp.join(root, config))
    inner_cfg, widths, family_name = PAPER_CONFIGS[config]
    official = _official_for_config(model, inner_cfg, widths, family_name)
    converted, report = convert_cbnetv2_state_dict(official)
    assert report.family == family_name
    converted = drop_pruned_stages(converted, model, report)
    assert verify_against_model(converted, model) == ([], [])
    if family_name == 'resnet':
        assert tuple(official['backbone.cb_linears.1.0.0.weight'].shape) == (256, 512, 1, 1)
        # the official lead's unused stem BN (deep-stem Res2Net: its stem was already removed above)
        assert [k for k, _ in report.dropped] == [
            f'backbone.cb_modules.1.bn1.{p}'
            for p in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked') if 'res2net' not in config
        ]
    else:
        assert not report.dropped


def test_swin_classification_head_and_attention_masks_are_dropped_and_reported():
    official = official_swin_backbone(SWIN)
    official['backbone.cb_modules.0.layers.0.blocks.0.attn_mask'] = torch.zeros(4, 16, 16)
    official['backbone.cb_modules.0.head.weight'] = torch.zeros(10, 64)
    official['backbone.cb_modules.1.absolute_pos_embed'] = torch.zeros(1, 256, 8)
    converted, report = convert_cbnetv2_state_dict(official)
    reasons = dict(report.dropped)
    assert set(reasons) == {
        'backbone.cb_modules.0.layers.0.blocks.0.attn_mask', 'backbone.cb_modules.0.head.weight',
        'backbone.cb_modules.1.absolute_pos_embed'
    }
    assert 'recomputed' in reasons['backbone.cb_modules.0.layers.0.blocks.0.attn_mask']
    assert not any('attn_mask' in k or 'head.' in k or 'absolute_pos_embed' in k for k in converted)
    assert 'dropped backbone.cb_modules.0.head.weight' in report.summary()
