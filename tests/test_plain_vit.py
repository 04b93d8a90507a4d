"""Composite plain ViTs beyond the per-family harness: the simple feature pyramid, what the adapters refuse,
layer-wise lr decay by block, the ViT -> ViTSAM checkpoint layout, a plain ViT detector expanded into a CB one
(same predictions) and one CB training step (assisting losses, a gradient for every parameter).

The per-family checks (zero init with the checkpoint in every branch, every composition, freezing, pruning) run
on the mmpretrain ViT cases in tests/test_backbone_families.py.
"""
import pytest
import torch
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.config import ConfigDict

from cbnet.converters import expand_single_state_dict
from cbnet.converters.vit_layouts import vit_to_vitsam_state_dict
from cbnet.models.necks import SimpleFeaturePyramid
from cbnet.testing import family, load_tool, mmdet_config, shrink_detector, tiny_batch
from cbnet.testing.backbones import torch_threads
from cbnet.testing.checkpoint_formats import randomize_, save_mmpretrain_classifier

WIDTH = 16  # embed_dims of the tiny ViT cases


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


# -- simple feature pyramid ---------------------------------------------------------------------------------
def pyramid(**kwargs):
    cfg = dict(
        type='SimpleFeaturePyramid', backbone_channel=32, in_channels=[8, 16, 32, 32], out_channels=24, num_outs=5)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_simple_pyramid_makes_p2_to_p6_from_the_last_stride16_map():
    neck = pyramid()
    first, last = torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8)
    outs = neck((first, last))
    # stride 16 map of a 128 px image -> strides 4, 8, 16, 32, 64
    assert [tuple(o.shape) for o in outs] == [(2, 24, 32, 32), (2, 24, 16, 16), (2, 24, 8, 8), (2, 24, 4, 4),
                                              (2, 24, 2, 2)]
    assert all(torch.equal(a, b) for a, b in zip(outs, neck(last)))  # only the last input is read
    assert not torch.equal(outs[0], neck(first)[0])
    assert torch.equal(outs[4], outs[3][:, :, ::2, ::2])  # p6: stride-2 subsampling of p5
    norms = [m for m in neck.modules() if type(m).__name__ == 'LN2d']
    assert len(norms) == 1 + 2 * 4  # inside the 4x branch, after every 1x1 and 3x3 conv
    assert len(pyramid(num_outs=4)(last)) == 4


def test_simple_pyramid_is_registered_under_vitdets_name_and_checks_widths():
    assert MODELS.get('SimpleFPN') is SimpleFeaturePyramid  # mmdet's package has none: cbnet registers its own
    with pytest.raises(ValueError, match=r'in_channels=\[8, 16, 32, 32\]'):
        pyramid(in_channels=[32, 32, 32, 32])
    ln = MODELS.build(dict(type='LN2d', num_channels=4))
    x = torch.randn(2, 4, 3, 3)
    assert torch.allclose(
        ln(x),
        torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4, ), eps=1e-6).permute(0, 3, 1, 2))


# -- what the composite refuses ------------------------------------------------------------------------------
def build_cb(name, **inner):
    return MODELS.build(dict(type='CBNet', backbone=family(name, **inner), num_backbones=2))


@pytest.mark.parametrize('inner,message', [
    (dict(out_type='cls_token'), "out_type='featmap'"),
    (dict(out_indices=[1, 2]), r'set out_indices to end with 3'),
])
def test_refuses_what_a_composite_vit_cannot_honour(inner, message):
    with pytest.raises(ValueError, match=message):
        build_cb('ViT', **inner)


def test_refuses_pretraining_subclasses_and_unused_parameters():
    with pytest.raises(ValueError, match='overrides the forward of VisionTransformer'):
        MODELS.build(dict(type='CBNet', backbone=dict(family('ViT'), type='mmpretrain.MAEViT')))
    with pytest.raises(ValueError, match='set pre_norm=False'):
        build_cb('DeiT-distilled', pre_norm=True)


def test_lead_shares_the_embedding_only_and_connections_are_convs_with_bias():
    model = build_cb('ViT')
    assert model.del_stages == 0 and model.num_stages == 2
    lead = model.branches[1]
    assert type(lead.patch_embed).__name__ == 'Pruned' and lead.get_buffer('pos_embed').numel() == 0
    assert sorted(model.composition.connections[0]) == ['into0_from0', 'into0_from1', 'into1_from1']
    connection = model.composition.connections[0]['into0_from1']
    assert connection.norm is None and connection.conv.bias is not None


def test_eva02_rope_tables_keep_their_built_size():
    """The width probe runs on a small image; EVA-02's RoPE would otherwise keep tables for that grid."""
    model = build_cb('EVA02')
    assert all(b.rope.freqs_cos.shape[0] == 16 for b in model.branches)  # 4x4 patches of the 64 px img_size


# -- layer-wise lr decay by block ---------------------------------------------------------------------------
class Detector(torch.nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.neck = torch.nn.Linear(2, 2)


def lrs(model, decay=0.5):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='CBLearningRateDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
            paramwise_cfg=dict(layer_decay_rate=decay)))
    optimizer = constructor(model).optimizer
    lr_of = {id(p): g['lr'] for g in optimizer.param_groups for p in g['params']}
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)
    return lambda p: lr_of[id(p)]


def test_layer_decay_by_block_in_every_branch():
    model = Detector(MODELS.build(dict(type='CBNet', backbone=family('ViT'), num_backbones=3)))
    lr = lrs(model)
    backbone = model.backbone
    # 4 blocks -> layer ids 0 (embedding) .. 5 (neck, heads, final norm): lr = 0.5 ** (5 - id)
    for j in range(4):
        assert {lr(b.layers[j].attn.qkv.weight) for b in backbone.branches} == {0.5**(4 - j)}, j
    assert lr(backbone.branches[0].patch_embed.projection.weight) == lr(backbone.branches[0].pos_embed) == 0.5**5
    assert lr(backbone.branches[2].ln1.weight) == lr(model.neck.weight) == 1.0
    # groups end at blocks 1 and 3: a connection into group 1 decays like block 2, into group 0 like block 0
    assert lr(backbone.composition.connections[1]['into1_from1'].conv.weight) == 0.5**2
    assert lr(backbone.composition.connections[0]['into0_from1'].conv.bias) == 0.5**4


def test_layer_decay_of_a_plain_vit_detector_is_mmpretrains():
    model = Detector(MODELS.build(family('BEiT-shared-bias')))
    lr = lrs(model)
    assert lr(model.backbone.layers[1].attn.qkv.weight) == 0.5**3
    assert lr(model.backbone.rel_pos_bias.relative_position_bias_table) == 1.0  # mmpretrain: the last layer id
    with pytest.raises(TypeError, match='plain ViTs by block'):
        lrs(Detector(MODELS.build(dict(type='CBNet', backbone=family('ConvNeXt')))))


# -- ViT file -> ViTSAM layout ------------------------------------------------------------------------------
def test_vit_checkpoint_converts_into_vitsam_layout():
    vit = MODELS.build(family('ViT', out_indices=[3], final_norm=True))
    sam = MODELS.build(family('ViTSAM', out_channels=0, out_indices=[3]))
    state = {'backbone.' + k: v for k, v in vit.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(2, WIDTH)
    converted, dropped = vit_to_vitsam_state_dict(state)
    assert set(dropped) == {'backbone.cls_token', 'backbone.ln1.weight', 'backbone.ln1.bias', 'head.fc.weight'}
    missing, unexpected = sam.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()}, strict=False)
    assert not unexpected and all('rel_pos' in k for k in missing)  # as ViTDet: zero-initialised tables
    grid = vit.pos_embed[0, 1:].reshape(4, 4, WIDTH)
    assert torch.equal(sam.pos_embed[0], grid)
    assert torch.equal(sam.layers[2].attn.qkv.weight, vit.layers[2].attn.qkv.weight)


def test_vit_to_vitsam_tool_writes_a_file_that_loads_into_every_branch(tmp_path, capsys):
    vit = randomize_(MODELS.build(family('ViT', out_indices=[3])))
    save_mmpretrain_classifier(vit, str(tmp_path / 'vit.pth'))
    main = load_tool('tools/model_converters/vit_to_vitsam.py').main
    assert main([str(tmp_path / 'vit.pth'), str(tmp_path / 'sam.pth')]) == 0
    assert 'dropped 5 ViT-only keys' in capsys.readouterr().out
    init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'sam.pth'), prefix='backbone.')
    model = build_cb('ViTSAM', out_channels=0, init_cfg=init_cfg)
    model.init_weights()
    assert all(
        torch.equal(b.layers[3].ffn.layers[1].weight, vit.layers[3].ffn.layers[1].weight) for b in model.branches)
    assert main([str(tmp_path / 'sam.pth'), str(tmp_path / 'again.pth')]) == 1  # already converted: refused
    assert 'not a (1, tokens, C) ViT position embedding' in capsys.readouterr().err


# -- detectors ----------------------------------------------------------------------------------------------
def vit_mask_rcnn(cb_type=None, num_backbones=2, width=WIDTH):
    """mmdet's Mask R-CNN with a tiny ViTDet-style ViT (ViTSAM: windowed + global blocks) and the pyramid."""
    cfg = mmdet_config('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py').model.to_dict()
    inner = family('ViTSAM', out_channels=0, drop_path_rate=0.0)
    cfg['neck'] = dict(
        type='SimpleFeaturePyramid',
        backbone_channel=width,
        in_channels=[width // 4, width // 2, width, width],
        out_channels=32,
        num_outs=5)
    cfg['backbone'] = inner if cb_type is None else dict(type='CBNet', backbone=inner, num_backbones=num_backbones)
    shrink_detector(cfg)
    cfg['test_cfg']['rcnn'].update(score_thr=0.0, max_per_img=20)
    if cb_type:
        cfg['type'] = cb_type
    return MODELS.build(ConfigDict(cfg))


def test_plain_vit_detector_expands_into_a_cb_one_that_predicts_the_same():
    plain, cb = vit_mask_rcnn(), vit_mask_rcnn('CBMaskRCNN').eval()
    plain.init_weights()
    randomize_(plain).eval()
    expanded, report = expand_single_state_dict(cb, plain.state_dict())
    cb.load_state_dict(expanded, strict=True)
    assert sorted(report.pruned[1]) == ['patch_embed', 'pos_embed'] and report.zero_keys
    batch = tiny_batch(plain, training=False, with_mask=True, seed=1)
    with torch.no_grad():
        expected = plain.predict(batch['inputs'], batch['data_samples'])
        got = cb.predict(batch['inputs'], batch['data_samples'])
    for a, b in zip(expected, got):
        assert len(a.pred_instances) > 0
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(a.pred_instances[key], b.pred_instances[key]), key


def test_cb_detector_checks_the_pyramid_width_against_the_last_map():
    with pytest.raises(ValueError, match='set backbone_channel=16'):
        vit_mask_rcnn('CBMaskRCNN', width=32)


@pytest.mark.parametrize('num_backbones', [2, 3])
def test_cb_vit_detector_trains_every_parameter_with_assisting_losses(num_backbones):
    model = vit_mask_rcnn('CBMaskRCNN', num_backbones)
    model.init_weights()
    model.train()
    with torch.no_grad():  # connections off zero: every path carries gradient
        for p in model.backbone.composition.parameters():
            p.add_(0.05)
    batch = tiny_batch(model, with_mask=True)
    torch.manual_seed(0)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    lead = {k for k in losses if not k.startswith('assist')}
    for k in range(1, num_backbones):
        assert {f'assist{k}_{key}' for key in lead} <= set(losses)
    loss, _ = model.parse_losses(losses)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
