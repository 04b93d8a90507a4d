"""The official neck names build the plain neck: the CB detector shares it across branches by itself."""
import pytest
import torch
from mmdet.models.necks import FPN, PAFPN
from mmdet.registry import MODELS

from cbnet.models import MultiBranchFeatures

FPN_CFG = dict(in_channels=[8, 16, 32, 64], out_channels=16, num_outs=5)


def _feats():
    return tuple(torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(FPN_CFG['in_channels']))


def test_cbfpn_is_mmdets_fpn_with_the_same_keys():
    cb, plain = MODELS.build(dict(type='CBFPN', **FPN_CFG)), MODELS.build(dict(type='FPN', **FPN_CFG))
    assert type(cb) is FPN
    assert list(cb.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(cb.state_dict())
    feats = _feats()
    for a, b in zip(cb(feats), plain(feats)):
        assert torch.equal(a, b)


def test_cbneck_builds_the_wrapped_neck():
    neck = MODELS.build(dict(type='CBNeck', neck=dict(type='PAFPN', **FPN_CFG)))
    assert type(neck) is PAFPN
    with pytest.raises(TypeError, match='CBNeck needs neck=dict'):
        MODELS.build(dict(type='CBNeck', neck='PAFPN'))


def test_a_plain_neck_refuses_all_branches_with_the_fix():
    neck = MODELS.build(dict(type='CBFPN', **FPN_CFG))
    with pytest.raises(TypeError, match='CB detector'):
        neck(MultiBranchFeatures([_feats(), _feats()]))
