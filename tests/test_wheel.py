"""Installation without a clone: the wheel carries cbnet's configs and tools (``cbnet/.mim/``) like the
OpenMMLab packages, so that ``_base_ = 'cbnet::cbnet/<config>.py'`` and cbnet's tools work from anywhere.

The wheel is built as a release is (source distribution first, then the wheel from it), installed into a
fresh virtual environment that borrows torch/mmcv/mmdet from this one (a ``.pth`` file) and used outside the
repository, so that the checkout's files cannot be picked up by accident.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from cbnet.testing import REPO, make_tiny_toy, write_tiny_config

#: what a source distribution is made from (MANIFEST.in decides what of it goes in)
SOURCE = ('cbnet', 'configs', 'tools', 'requirements', 'setup.py', 'setup.cfg', 'pyproject.toml', 'MANIFEST.in',
          'README.md')
USER_CONFIG_BASE = 'cbnet::cbnet/dual_r18_faster_rcnn_toy.py'


def _run(args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('wheel')
    src, dist = tmp / 'src', tmp / 'dist'
    src.mkdir()
    for name in SOURCE:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        elif osp.isfile(path):
            shutil.copy(path, src / name)
    _run([sys.executable, 'setup.py', '-q', 'sdist', '-d', str(dist)], cwd=src)
    sdist = next(dist.glob('cbnet-*.tar.gz'))
    offline = ['--no-deps', '--no-index', '--no-cache-dir']
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-build-isolation', *offline,
          str(sdist), '-w',
          str(dist)],
         cwd=tmp)
    wheel = next(dist.glob('cbnet-*.whl'))

    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=tmp)
    python = str(venv / 'bin' / 'python')
    site = _run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], cwd=tmp).strip()
    with open(osp.join(site, 'project_site_packages.pth'), 'w') as f:  # torch, mmcv, mmdet, pip of this env
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    _run([python, '-m', 'pip', 'install', '-q', '--ignore-installed', *offline, str(wheel)], cwd=tmp)
    outside = tmp / 'elsewhere'
    outside.mkdir()
    return dict(tmp=tmp, wheel=str(wheel), python=python, site=site, cwd=str(outside))


def test_wheel_carries_every_config_and_the_tools(wheel_env):
    names = set(zipfile.ZipFile(wheel_env['wheel']).namelist())
    for root, dirs, files in os.walk(osp.join(REPO, 'configs')):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            rel = osp.relpath(osp.join(root, name), osp.join(REPO, 'configs'))
            assert f'cbnet/.mim/configs/{rel}' in names, rel
    for tool in ('train.py', 'test.py', 'model_converters/single_to_cb.py', 'misc/image_demo.py'):
        assert f'cbnet/.mim/tools/{tool}' in names
    assert 'cbnet/.mim/model-index.yml' in names and 'cbnet/global_effects.py' in names
    assert not any(n.startswith('tests/') or '__pycache__' in n for n in names)


def test_installed_package_resolves_cbnet_config_names_outside_the_repo(wheel_env):
    user_config = write_tiny_config(osp.join(wheel_env['cwd'], 'user.py'), '/nonexistent/', base=USER_CONFIG_BASE)
    script = f'''
import json
import cbnet
import mmengine.config.config as mmengine_config
from mmengine.config import Config
from cbnet.engine.tools_support import load_config
from cbnet.testing.toy_runs import DUAL_TOY, FASTER_TOY
from cbnet.utils.configs import resolve_config_path
user = Config.fromfile({user_config!r})
named = load_config({USER_CONFIG_BASE!r})
print(json.dumps(dict(
    package=cbnet.__file__, resolved=resolve_config_path({USER_CONFIG_BASE!r}), toy=[DUAL_TOY, FASTER_TOY],
    user_type=user.model.type, user_rpn=user.model.rpn_head.type, user_data_root=user.data_root,
    named_type=named.model.type, named_work_dir=named.work_dir,
    lookup_wrapped=getattr(mmengine_config.get_installed_path, 'cbnet_wrapped', False))))
'''
    out = json.loads(_run([wheel_env['python'], '-c', script], cwd=wheel_env['cwd']).strip().splitlines()[-1])
    package_dir = osp.join(wheel_env['site'], 'cbnet')
    assert out['package'] == osp.join(package_dir, '__init__.py')
    assert out['resolved'] == osp.join(package_dir, '.mim', 'configs', 'cbnet', 'dual_r18_faster_rcnn_toy.py')
    assert all(p.startswith(osp.join(package_dir, '.mim', 'configs')) and osp.isfile(p) for p in out['toy'])
    # the whole chain: cbnet:: base -> ../_toy_/ relative bases -> mmdet:: bases
    assert out['user_type'] == out['named_type'] == 'CBFasterRCNN' and out['user_rpn'] == 'RPNHead'
    assert out['user_data_root'] == '/nonexistent/'
    assert out['named_work_dir'] == './work_dirs/dual_r18_faster_rcnn_toy'
    assert out['lookup_wrapped'] is False  # a real install needs no help finding its configs


def test_toy_training_step_from_a_cbnet_config_with_the_installed_tool(wheel_env):
    data_root = make_tiny_toy(osp.join(wheel_env['cwd'], 'toy'))
    config = write_tiny_config(
        osp.join(wheel_env['cwd'], 'train_user.py'), data_root, base=USER_CONFIG_BASE, max_iters=1)
    train = osp.join(wheel_env['site'], 'cbnet', '.mim', 'tools', 'train.py')
    work_dir = osp.join(wheel_env['cwd'], 'work')
    out = _run([wheel_env['python'], train, config, '--work-dir', work_dir], cwd=wheel_env['cwd'])
    checkpoint = osp.join(work_dir, 'iter_1.pth')
    assert osp.isfile(checkpoint), out[-2000:]
    logs = [osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs if f.endswith('.log')]
    log = open(logs[0]).read()
    assert 'Iter(train) [1/1]' in log and 'assist1_loss_cls' in log and 'coco/bbox_mAP' in log
    assert 'Failed to search registry' not in log  # the cbnet:: base's nodes build in the cbnet scope
