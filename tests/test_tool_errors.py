"""What a new user sees when something is wrong: cbnet's tools end with one message that says what to change
(``--debug`` and the Python API keep the traceback), typos get close matches first, an unreachable
``Pretrained`` checkpoint names the weights, where they come from and the two ways out."""
import sys
import urllib.error

import pytest
from mmdet.registry import MODELS

from cbnet.engine.tools_support import tool_errors
from cbnet.models.backbones import CBNet
from cbnet.testing import DUAL_TOY, FASTER_TOY, load_tool, make_tiny_toy, write_tiny_config
from cbnet.utils.compat_checks import registry_hint
from cbnet.utils.remote_weights import PretrainedUnavailableError

TINY_R18 = dict(type='ResNet', depth=18, base_channels=8, num_stages=4, out_indices=(0, 1, 2, 3), init_cfg=None)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tool_errors')
    data_root = make_tiny_toy(str(tmp / 'toy'))
    return dict(
        tmp=tmp,
        dual=write_tiny_config(str(tmp / 'dual.py'), data_root, base=DUAL_TOY, max_iters=1),
        plain=write_tiny_config(str(tmp / 'plain.py'), data_root, base=FASTER_TOY, max_iters=1))


def _train(monkeypatch, capsys, config, *args):
    """tools/train.py in this process: (exit status, what it printed from its ``error:`` line on). (Logging
    handlers that earlier tests bound to their own captured streams may print errors before it.)"""
    train = load_tool('tools/train.py')
    monkeypatch.setattr(sys, 'argv', ['train.py', config, '--threads', '1'] + list(args))
    with pytest.raises(SystemExit) as e:
        train.main()
    err = capsys.readouterr().err
    return e.value.code, err[err.find('error: '):] if 'error: ' in err else err


# -- "X is not in the mmdet::model registry" ----------------------------------------------------------------
def test_typo_gets_the_close_match_first_and_no_import_advice_when_cbnet_is_imported():
    with pytest.raises(KeyError) as e:
        MODELS.build(dict(type='CBFasterRCN'))
    hint = registry_hint(e.value, registry_names=MODELS.module_dict)
    assert hint.startswith('Did you mean: CBFasterRCNN')
    assert 'custom_imports' not in hint  # cbnet is imported: the import is not what is missing


def test_import_advice_when_cbnet_is_really_missing():
    error = KeyError('CBFasterRCNN is not in the mmdet::model registry')
    hint = registry_hint(error, registry_names=['FasterRCNN', 'MaskRCNN'])  # a process without cbnet
    assert "custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)" in hint


def test_train_tool_typo_one_message_before_the_config_dump(tiny, monkeypatch, capsys):
    code, err = _train(monkeypatch, capsys, tiny['dual'], '--cfg-options', 'model.type=CBFasterRCN')
    assert code != 0 and 'Did you mean: CBFasterRCNN' in err
    assert 'cbnet type' not in err and 'Traceback' not in err


# -- cbnet's own errors: one message from the tools, exceptions from the API --------------------------------
def test_train_tool_prints_cbnet_errors_as_one_message(tiny, monkeypatch, capsys):
    code, err = _train(monkeypatch, capsys, tiny['dual'], '--cfg-options', 'model.backbone.composition=DHLX')
    assert code == 1
    assert "error: Unknown composition 'DHLX'; registered: AHLC, ALLC, DHLC, SLC" in err
    assert 'Traceback' not in err and 'class `' not in err  # no mmengine registry prefix either
    with pytest.raises(KeyError, match='Unknown composition'):  # --debug: the exception itself
        _train(monkeypatch, capsys, tiny['dual'], '--debug', '--cfg-options', 'model.backbone.composition=DHLX')


def test_tool_errors_leaves_other_errors_alone():
    with pytest.raises(ValueError, match='not ours'):
        with tool_errors():
            raise ValueError('not ours')


def test_composition_names_are_case_insensitive():
    model = CBNet(backbone=TINY_R18, composition='dhlc')
    assert type(model.composition).__name__ == 'DHLC'


# -- Pretrained weights that cannot be fetched ----------------------------------------------------------------
def _offline(monkeypatch, tmp_path):
    import torch.hub

    def refuse(*args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))  # nothing cached
    monkeypatch.setattr(torch.hub, 'urlopen', refuse)


def test_composite_backbone_offline_pretrained_says_what_to_do(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    backbone = dict(TINY_R18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18'))
    model = CBNet(backbone=backbone)
    with pytest.raises(PretrainedUnavailableError) as e:
        model.init_weights()
    msg = str(e.value)
    assert "'torchvision://resnet18' from https://download.pytorch.org/models/resnet18" in msg
    assert 'Temporary failure in name resolution' in msg
    assert '--cfg-options model.backbone.backbone.init_cfg.checkpoint=/path/to/resnet18' in msg
    assert '--cfg-options model.backbone.backbone.init_cfg=None' in msg
    assert str(tmp_path / 'torch_home') in msg  # where torch looks for a copy first


@pytest.mark.slow
def test_train_tool_plain_backbone_unreachable_pretrained(tiny, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = 'http://127.0.0.1:9/r18.pth'  # nothing listens on the discard port: refused at once
    config = tmp_path / 'pretrained.py'
    config.write_text(
        f"_base_ = {tiny['plain']!r}\n"
        f"model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint={url!r})))\n")
    code, err = _train(monkeypatch, capsys, str(config), '--work-dir', str(tmp_path / 'run'))
    assert code == 1 and 'Traceback' not in err
    assert f"Cannot load the pretrained weights '{url}' of model.backbone.init_cfg" in err
    assert 'model.backbone.init_cfg.checkpoint=/path/to/r18.pth' in err and 'model.backbone.init_cfg=None' in err
