"""``import cbnet`` changes outside cbnet exactly what :mod:`cbnet.global_effects` lists, nothing else, once.

A fresh interpreter records mmengine's, mmdet's and torch's global tables before and after ``import cbnet``;
the difference must be the documented effects. A source scan checks that no function imports cbnet (or a
part of it) only for its side effects.
"""
import ast
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from cbnet.testing import REPO

SNAPSHOT = r'''
import json, sys
import torch
import mmdet.registry as mmdet_registry
from mmdet.utils import register_all_modules
import mmengine.config.config as mmengine_config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.fileio.backends import registry_utils
from mmengine.registry import Registry
from mmengine.runner.checkpoint import CheckpointLoader


def snapshot():
    registries = {n: r for n, r in vars(mmdet_registry).items() if isinstance(r, Registry)}
    return dict(
        safe_globals=sorted(f'{getattr(g, "__module__", "")}.{getattr(g, "__qualname__", g)}'
                            if not isinstance(g, tuple) else g[1] for g in torch.serialization.get_safe_globals()),
        schemes={p: f'{f.__module__}.{f.__name__}' for p, f in CheckpointLoader._schemes.items()},
        backends=sorted(registry_utils.backends),
        module2package=dict(MODULE2PACKAGE),
        lookup=f'{mmengine_config.get_installed_path.__module__}',
        names={n: {k: getattr(v, '__module__', '') for k, v in r.module_dict.items()} for n, r in registries.items()},
        children={n: sorted(r.children) for n, r in registries.items()})


register_all_modules(init_default_scope=False)  # mmdet's own registrations are not cbnet's
before = snapshot()
import cbnet
after = snapshot()
again = (cbnet.global_effects.apply(), snapshot())
print(json.dumps(dict(before=before, after=after, again=again[1], applied=again[0],
                      detectors=cbnet.models.detectors.CB_DETECTORS,
                      lookup_cbnet=mmengine_config.get_installed_path('cbnet'),
                      lookup_mmdet=mmengine_config.get_installed_path('mmdet'),
                      package=cbnet.global_effects.PACKAGE_DIR)))
'''


@pytest.fixture(scope='module')
def effects():
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run([sys.executable, '-c', SNAPSHOT],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_torch_safe_globals_are_exactly_the_mmengine_checkpoint_ones(effects):
    from cbnet.utils.checkpoint import mmengine_checkpoint_safe_globals
    added = set(effects['after']['safe_globals']) - set(effects['before']['safe_globals'])
    assert added == {name for _, name in mmengine_checkpoint_safe_globals()}
    assert set(effects['before']['safe_globals']) <= set(effects['after']['safe_globals'])


def test_only_the_local_checkpoint_loader_and_one_file_backend_change(effects):
    before, after = effects['before'], effects['after']
    assert {p: f for p, f in after['schemes'].items() if p} == {p: f for p, f in before['schemes'].items() if p}
    assert after['schemes'][''] == 'cbnet.utils.checkpoint_files.load_from_local'
    assert set(after['backends']) - set(before['backends']) == {'atomic_local'}


def test_module2package_gains_cbnet_and_config_lookup_finds_the_package(effects):
    before, after = effects['before']['module2package'], effects['after']['module2package']
    assert {k: v for k, v in after.items() if k != 'cbnet'} == before and after['cbnet'] == 'cbnet'
    assert effects['lookup_cbnet'] == effects['package']
    assert effects['lookup_mmdet'].endswith(osp.join('site-packages', 'mmdet'))


def test_registries_gain_cbnet_entries_and_a_cbnet_scope_only(effects):
    before, after = effects['before'], effects['after']
    for name, children in after['children'].items():
        assert set(children) - set(before['children'][name]) == {'cbnet'}, name
    for name, entries in after['names'].items():
        old = before['names'][name]
        assert {k: entries[k] for k in old} == old, name  # nothing of mmdet's is replaced or removed
        added = {k: m for k, m in entries.items() if k not in old}
        foreign = {k: m for k, m in added.items() if not m.startswith('cbnet.')}
        assert foreign == ({'CBFPN': 'mmdet.models.necks.fpn'} if name == 'MODELS' else {}), name  # the alias
    models_added = set(after['names']['MODELS']) - set(before['names']['MODELS'])
    assert set(effects['detectors']) | {'CBFPN', 'CBNeck', 'CBNet'} <= models_added
    assert 'CBLearningRateDecayOptimizerConstructor' in after['names']['OPTIM_WRAPPER_CONSTRUCTORS']
    assert {'NonFiniteLossHook', 'CheckpointCompatibilityHook', 'AtomicCheckpointHook'} <= set(after['names']['HOOKS'])


def test_apply_is_idempotent(effects):
    assert effects['again'] == effects['after']
    assert effects['applied'] == [
        'torch safe globals', 'clear checkpoint errors', 'atomic_local backend', 'MODULE2PACKAGE',
        'cbnet registry scope', 'generated registry entries'
    ]


def _side_effect_imports(path: str):
    """Imports of cbnet (or a part of it) inside a function body whose names are never used."""
    tree = ast.parse(open(path).read(), path)
    found = []
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        used = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                names = [(a.asname or a.name.split('.')[0], a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ''
                in_cbnet = module.split('.')[0] == 'cbnet' or (node.level > 0
                                                               and path.startswith(osp.join(REPO, 'cbnet') + os.sep))
                names = [(a.asname or a.name, f'{module}.{a.name}') for a in node.names] if in_cbnet else []
            else:
                continue
            for bound, full in names:
                if (full.split('.')[0] == 'cbnet' or isinstance(node, ast.ImportFrom)) and bound not in used:
                    found.append(f'{osp.relpath(path, REPO)}:{node.lineno} {full}')
    return found


def test_no_function_imports_cbnet_for_its_side_effects():
    offenders = []
    for top in ('cbnet', 'tools', 'benchmarks'):
        for root, dirs, files in os.walk(osp.join(REPO, top)):
            dirs[:] = [d for d in dirs if d not in ('__pycache__', '.mim')]
            offenders += [o for f in files if f.endswith('.py') for o in _side_effect_imports(osp.join(root, f))]
    assert not offenders, ('import cbnet applies every global effect (cbnet.global_effects); these imports only '
                           f'repeat it: {offenders}')
