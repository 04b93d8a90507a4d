"""``import cbnet`` next to a transformers that mmpretrain 1.2.0's multimodal models cannot import (effect 0 of
:mod:`cbnet.global_effects`), with the pinned transformers and with the newest 5.x release.

Each check runs in a fresh interpreter: the failure happens while mmdet's models are first imported.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

import pytest

from cbnet.testing import REPO

pytest.importorskip('transformers', reason='the grounding requirements (requirements/grounding.txt) are not installed')

#: the newest transformers release, with what it needs beyond this environment (measured together)
NEWEST_TRANSFORMERS = ('transformers==5.25.0', 'huggingface_hub==2.4.0', 'tokenizers==0.23.3', 'safetensors==0.8.0',
                       'kernels==0.19.1')

#: what transformers >= 4.56 / 5.0 no longer has in transformers.modeling_utils (the stand-in removes it)
MOVED = ('GenerationMixin', 'apply_chunking_to_forward', 'find_pruneable_heads_and_indices', 'prune_linear_layer')

CHECK = r'''
import json, sys, warnings
warnings.simplefilter('ignore')
if sys.argv[1] == 'stand-in':  # what transformers 5.x lacks, removed from the installed one
    import transformers.modeling_utils as modeling_utils
    for name in %(moved)r:
        if hasattr(modeling_utils, name):
            delattr(modeling_utils, name)
import transformers
if sys.argv[2] == 'mmdet-only':  # without cbnet
    try:
        import mmdet.models
        print(json.dumps(dict(error='')))
    except Exception as e:
        print(json.dumps(dict(error=f'{type(e).__name__}: {e}')))
    sys.exit(0)
import importlib.util, os.path as osp
from cbnet import global_effects  # cbnet/__init__ applies effect 0 first
folder = osp.join(importlib.util.find_spec('mmpretrain').submodule_search_locations[0], 'models', 'multimodal')
broken = bool(global_effects.missing_transformers_names(global_effects.transformers_imports_of(folder)))
import torch
import cbnet
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope
DefaultScope.get_instance('compat', scope_name='mmdet')
from cbnet.testing import family
out = dict(version=transformers.__version__, broken=broken, applied=cbnet.global_effects._applied)
x = torch.rand(1, 3, 64, 64)
for name, cfg in (('ConvNeXt', family('ConvNeXt')), ('timm', family('timm-resnet18'))):
    net = MODELS.build(dict(type='CBNet', backbone=cfg, num_backbones=2)).eval()
    with torch.no_grad():
        out[name] = [list(f.shape) for f in net(x)]
try:
    MODELS.build(dict(type='mmpretrain.BlipCaption'))
except Exception as e:
    out['blip'] = f'{type(e).__name__}: {e}'
from cbnet.testing.language_models import tiny_bert
try:
    bert = MODELS.build(dict(type='BertModel', name=tiny_bert(), pad_to_max=False))
    out['bert'] = list(bert(['rectangle. ellipse.'])['embedded'].shape)
except Exception as e:
    out['bert'] = f'{type(e).__name__}: {e}'
from mmengine.config import Config, ConfigDict
from cbnet.testing.zoo import tiny_zoo_detector
from cbnet.testing import mmdet_config
plain = tiny_zoo_detector(mmdet_config('grounding_dino/grounding_dino_r50_scratch_8xb2_1x_coco.py').model)
try:
    MODELS.build(cbnet.cbnetify(Config(dict(model=plain))).model)
    out['grounding'] = 'built'
except Exception as e:
    out['grounding'] = f'{type(e).__name__}: {e}'
print(json.dumps(out))
''' % dict(moved=MOVED)


def _run(mode: str, what: str, extra_path: str = '') -> dict:
    path = os.pathsep.join(p for p in (extra_path, REPO, os.environ.get('PYTHONPATH', '')) if p)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', PYTHONPATH=path)
    proc = subprocess.run([sys.executable, '-c', CHECK, mode, what],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_cbnet_works(out: dict) -> None:
    assert out['applied'][0] == 'mmpretrain multimodal models off (they cannot import this transformers)'
    assert len(out['ConvNeXt']) >= 3 and len(out['timm']) >= 3  # mmpretrain and timm backbones, composite
    assert 'requires extra multi-modal dependencies' in out['blip']  # mmpretrain's placeholder (its name: sic)


def test_pinned_transformers_needs_no_fix():
    """The pinned transformers has everything mmpretrain's multimodal models import: effect 0 stays off."""
    import mmpretrain

    from cbnet import global_effects
    folder = osp.join(osp.dirname(mmpretrain.__file__), global_effects.MMPRETRAIN_MULTIMODAL_DIR)
    imports = global_effects.transformers_imports_of(folder)
    assert 'transformers.modeling_utils' in imports  # what the effect watches is still there in mmpretrain
    assert global_effects.missing_transformers_names(imports) == []
    assert global_effects.MMPRETRAIN_MULTIMODAL_OFF not in global_effects.apply()


@pytest.mark.slow
def test_stand_in_of_newer_transformers_import_cbnet_works():
    """The installed transformers without what 4.56/5.0 moved out of modeling_utils: without effect 0, mmdet's
    models fail to import (first check); with it, cbnet, ConvNeXt and timm backbones and mmdet's BertModel work."""
    assert 'NoneType takes no arguments' in _run('stand-in', 'mmdet-only')['error']
    out = _run('stand-in', 'all')
    assert out['broken']
    _assert_cbnet_works(out)
    assert out['bert'][::2] == [1, 768] and out['grounding'] == 'built'


@pytest.fixture(scope='session')
def newest_transformers() -> str:
    """The newest transformers release in a folder of its own (installed once per machine from the registry)."""
    target = osp.join(tempfile.gettempdir(), 'cbnet_' + '_'.join(p.replace('==', '-') for p in NEWEST_TRANSFORMERS))
    if not osp.isdir(osp.join(target, 'transformers')):
        command = [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', target + '.partial']
        proc = subprocess.run(command + list(NEWEST_TRANSFORMERS), capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f'the package registry is not reachable: {proc.stderr.strip()[-300:]}')
        os.replace(target + '.partial', target)
    return target


@pytest.mark.slow
def test_newest_transformers_import_cbnet_works(newest_transformers):
    out = _run('as-installed', 'all', newest_transformers)
    assert out['version'].startswith('5.') and out['broken']
    _assert_cbnet_works(out)
    # mmdet 3.3's own BertModel cannot run with 5.x; the CB grounding detectors say so and what to install
    assert 'batch_encode_plus' in out['bert']
    assert 'cannot run with transformers 5.' in out['grounding'] and 'requirements/grounding.txt' in out['grounding']
