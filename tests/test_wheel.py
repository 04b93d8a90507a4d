"""Installation without a clone: the wheel carries cbnet's configs, tools and model zoo index (``cbnet/.mim/``)
like the OpenMMLab packages, so that ``_base_ = 'cbnet::cbnet/<config>.py'``, cbnet's tools and ``mim search /
download / train / test cbnet`` work from anywhere.

The wheel is built as a release is (source distribution first, then the wheel from it), installed into a
fresh virtual environment that borrows torch/mmcv/mmdet/openmim from this one (a ``.pth`` file) and used outside
the repository, so that the checkout's files cannot be picked up by accident. Everything runs offline.
"""
import importlib.util
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
          'README.md', 'model-index.yml')
USER_CONFIG_BASE = 'cbnet::cbnet/dual_r18_faster_rcnn_toy.py'
#: what `python -m mim` imports: openmim (requirements/mim.txt) and its imports (requirements/tests.txt)
MIM_MODULES = ('mim', 'click', 'modelindex', 'pandas', 'tabulate', 'requests', 'rich', 'yaml')


def _run(args, cwd, timeout=300, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', **(env_extra or {}))
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
    borrowed = [sysconfig.get_paths()['purelib']]  # torch, mmcv, mmdet, pip of this env
    for module in MIM_MODULES:  # openmim where it is installed (a separate folder during development)
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, (f'{module} is not installed: pip install -r requirements/tests.txt '
                                                  '&& pip install --no-deps -r requirements/mim.txt')
        folder = osp.dirname(osp.dirname(spec.origin))
        if folder not in borrowed and osp.realpath(folder) != osp.realpath(REPO):
            borrowed.append(folder)
    with open(osp.join(site, 'project_site_packages.pth'), 'w') as f:
        f.write('\n'.join(borrowed) + '\n')
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
    with zipfile.ZipFile(wheel_env['wheel']) as wheel, open(osp.join(REPO, 'model-index.yml'), 'rb') as index:
        assert wheel.read('cbnet/.mim/model-index.yml') == index.read()
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


def _mim(wheel_env, *args, **kwargs) -> str:
    return _run([wheel_env['python'], '-m', 'mim', *args], cwd=wheel_env['cwd'], **kwargs)


def test_mim_search_lists_the_model_zoo(wheel_env):
    out = _mim(wheel_env, 'search', 'cbnet', '--field', 'weight', 'coco/box_ap', 'epochs', '--display-width', '400')
    for name in ('dual_r50_faster_rcnn', 'dual_res2net101_dcn_cascade_rcnn_swa', 'dual_swin_b_htc_swa',
                 'dual_swin_l_htc'):
        assert f'config id: {name}\n' in out, out[-2000:]
    assert 'htc_cbv2_swin_large22k_patch4_window7_mstrain_400-1400_giou_4conv1f_adamw_1x_coco.pth.zip' in out
    assert out.count('config id: ') == 12
    long = _mim(wheel_env, 'search', 'cbnet', '--condition', 'epochs>30', '--field', 'epochs', '--valid-config')
    # the SWA models (20 + 12 epochs) and the 3x Swin-T/S ones
    assert long.count("'dual_") == 6 and "'dual_swin_b_htc_swa'" in long, long[-2000:]


@pytest.mark.slow
def test_mim_train_and_test_run_the_installed_tools(wheel_env):
    # `mim train cbnet CONFIG --launcher pytorch --gpus 2`: mim starts `python -m torch.distributed.launch
    # --nproc_per_node=2 <installed train.py> CONFIG --launcher pytorch`, which passes --local-rank to each process;
    # without a GPU cbnet's train.py joins them with gloo. (`mim test` below runs the single-process path.)
    data_root = make_tiny_toy(osp.join(wheel_env['cwd'], 'toy'))
    config = write_tiny_config(
        osp.join(wheel_env['cwd'], 'train_user.py'), data_root, base=USER_CONFIG_BASE, max_iters=1)
    work_dir = osp.join(wheel_env['cwd'], 'work')
    out = _mim(wheel_env, 'train', 'cbnet', config, '--launcher', 'pytorch', '--gpus', '2', '--work-dir', work_dir)
    train_tool = osp.join(wheel_env['site'], 'cbnet', '.mim', 'tools', 'train.py')
    assert '-m torch.distributed.launch --nproc_per_node=2 --master_port=' in out and train_tool in out, out[-2000:]
    assert 'Distributed training: True' in out and "backend='gloo'" in out, out[-3000:]
    checkpoint = osp.join(work_dir, 'iter_1.pth')
    assert osp.isfile(checkpoint), out[-2000:]
    logs = [osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs if f.endswith('.log')]
    log = open(logs[0]).read()
    assert 'Iter(train) [1/1]' in log and 'assist1_loss_cls' in log and 'coco/bbox_mAP' in log
    assert 'Failed to search registry' not in log  # the cbnet:: base's nodes build in the cbnet scope

    # a config named as mim names it (found inside the installed package), the toy data given by the environment
    out = _mim(
        wheel_env,
        'test',
        'cbnet',
        'dual_r18_faster_rcnn_toy.py',
        '--checkpoint',
        checkpoint,
        '--work-dir',
        osp.join(wheel_env['cwd'], 'test'),
        '--cfg-options',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        env_extra=dict(CBNET_TOY_DATA_ROOT=data_root))
    assert osp.join(wheel_env['site'], 'cbnet', '.mim', 'configs', 'cbnet', 'dual_r18_faster_rcnn_toy.py') in out
    assert 'coco/bbox_mAP:' in out, out[-2000:]
