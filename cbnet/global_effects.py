"""Everything ``import cbnet`` changes outside cbnet, in one place (``cbnet/__init__.py`` calls :func:`apply` once).

Each effect is as narrow as it can be and idempotent:

0. **mmpretrain's multimodal models off where they cannot import** (:func:`disable_broken_mmpretrain_multimodal`,
   run before cbnet imports mmdet's models): mmpretrain 1.2.0's BLIP/BLIP-2/OFA/RAM modules import from
   ``transformers.modeling_utils`` names that newer transformers moved or dropped (``GenerationMixin`` by 4.53;
   ``apply_chunking_to_forward``, ``find_pruneable_heads_and_indices``, ... by 4.56/5.0: a bare ``except`` turns
   them into ``None`` and a class statement fails with ``TypeError: NoneType takes no arguments``), and mmdet
   imports ``mmpretrain.models`` whenever mmpretrain is installed, so ``import mmdet.models`` fails. Only when a
   ``from transformers... import`` of mmpretrain's multimodal folder names something the installed transformers
   lacks, and only while ``mmpretrain.models`` is not yet imported, mmpretrain's own switch ``WITH_MULTIMODAL``
   is turned off: its multimodal models become mmpretrain's placeholders (detection uses none of them); its
   backbones, mmdet's ``BertModel`` and the grounding detectors are untouched. A mmpretrain whose imports all
   resolve (a fixed release, or an older transformers) is left alone.
1. **torch safe globals** (:func:`cbnet.utils.checkpoint.register_mmengine_safe_globals`): the exact non-tensor
   globals a full mmengine checkpoint pickles (``HistoryBuffer``, numpy arrays/dtypes, a restricted
   ``getattr``) are allowlisted for ``torch.load(weights_only=True)``, so ``--resume``, ``load_from`` and
   ``tools/test.py CONFIG CKPT`` work on torch >= 2.6. ``weights_only`` stays on; every other global is refused.
2. **mmengine's checkpoint loader for local paths** (:func:`cbnet.utils.checkpoint_files.
   install_clear_checkpoint_errors`): the loader of the empty scheme (local files) is wrapped so that a
   truncated or corrupt file raises ``CheckpointReadError`` naming the file and the fix. Other schemes
   (``http://``, ``torchvision://``, ...) are untouched; readable files load exactly as before.
3. **the ``atomic_local`` file backend** (:class:`cbnet.utils.checkpoint_files.AtomicLocalBackend`): a new
   backend name in mmengine's file I/O (temporary file + fsync + rename); ``local`` is unchanged.
4. **``cbnet`` in mmengine's ``MODULE2PACKAGE``**: mmengine resolves ``_base_ = 'pkg::path.py'`` only for the
   packages in that table; the entry lets configs say ``_base_ = 'cbnet::cbnet/dual_swin_l_htc.py'``
   (``cbnet/.mim/configs/...``: the repository's ``configs/`` in a checkout, a copy inside the wheel). In an
   editable install mmengine 0.10's ``get_installed_path`` points at site-packages, where cbnet is not: only
   then, and only for the name ``cbnet``, mmengine's config module is given cbnet's real directory.
5. **a ``cbnet`` registry scope**: mmengine stamps ``_scope_='cbnet'`` on what a ``cbnet::`` base defines and
   then looks for registries of that scope. Each mmdet registry (and each mmengine root registry mmdet does not
   extend) gets an empty child with scope ``cbnet``, which finds every name through its parent, so such nodes
   build exactly as ``mmdet`` ones. ``cbnet.registry`` exposes them (mmengine imports ``<scope>.registry``).
6. **generated registry entries** in mmdet's ``MODELS``: a ``CB<Detector>`` class for every mmdet detector of
   a known kind (:func:`cbnet.models.detectors.register_all`), and the neck aliases of official CBNetV2 configs
   (``CBFPN`` = mmdet's ``FPN``, ``CBNeck`` = the wrapped neck), and ViTDet's names for the simple feature
   pyramid and its norm (``SimpleFPN`` = cbnet's ``SimpleFeaturePyramid``, ``LN2d``), which mmdet's package lacks
   (they live in its repository's ``projects/ViTDet``), registered only if absent.

Not listed above because they are ordinary OpenMMLab registration, not changes to other code: cbnet's own
classes register under their own names in mmdet's registries with ``@register_module`` when their modules are
imported (``CBNet``, ``CBResNet``, ... backbones and the compositions' own registry, the hooks
``NonFiniteLossHook``/``CheckpointCompatibilityHook``/``AtomicCheckpointHook``/``SWAHook``, ``DetTTAModelWithMasks``,
``CBLearningRateDecayOptimizerConstructor``). ``import cbnet`` works without mmpretrain (and timm): where
mmpretrain is installed, the ConvNeXt adapter imports it; timm is imported only when a ``TIMMBackbone`` is adapted.
"""
import ast
import importlib
import importlib.util
import os
import os.path as osp
import sys
from typing import Dict, List

from mmengine.registry import Registry

SCOPE = 'cbnet'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))

_applied: List[str] = []
_scope_registries: Dict[str, Registry] = {}

#: mmpretrain's folder of multimodal models (BLIP, BLIP-2, OFA, RAM, ...): what imports transformers at import time
MMPRETRAIN_MULTIMODAL_DIR = osp.join('models', 'multimodal')
MMPRETRAIN_MULTIMODAL_OFF = 'mmpretrain multimodal models off (they cannot import this transformers)'
_import_fixes: List[str] = []


def transformers_imports_of(folder: str) -> Dict[str, List[str]]:
    """``from transformers.X import a, b`` statements of the Python files under ``folder``: module -> names."""
    found: Dict[str, List[str]] = {}
    for root, _, files in os.walk(folder):
        for name in sorted(f for f in files if f.endswith('.py')):
            with open(osp.join(root, name), encoding='utf-8') as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'transformers':
                    found.setdefault(node.module, []).extend(a.name for a in node.names)
    return found


def missing_transformers_names(imports: Dict[str, List[str]]) -> List[str]:
    """Which of ``imports`` (module -> names) the installed transformers does not have."""
    missing = []
    for module_name, names in imports.items():
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - a module that no longer imports is missing as a whole
            missing.append(module_name)
            continue
        missing += [f'{module_name}.{n}' for n in names if not hasattr(module, n)]
    return missing


def _find_spec(name: str):
    """``importlib.util.find_spec``, None also where an import hook refuses the package outright."""
    try:
        return importlib.util.find_spec(name)
    except ImportError:
        return None


def mmpretrain_multimodal_is_broken() -> bool:
    """Whether the installed mmpretrain's multimodal models import from transformers what the installed
    transformers does not have (False without either package, or once ``mmpretrain.models`` is imported)."""
    spec, transformers = _find_spec('mmpretrain'), _find_spec('transformers')  # top-level packages: import nothing
    if spec is None or not spec.submodule_search_locations or 'mmpretrain.models' in sys.modules:
        return False
    if transformers is None:
        return False  # mmpretrain then turns its multimodal models off by itself
    folder = osp.join(list(spec.submodule_search_locations)[0], MMPRETRAIN_MULTIMODAL_DIR)
    try:
        return bool(missing_transformers_names(transformers_imports_of(folder)))
    except (OSError, SyntaxError):
        return False


def disable_broken_mmpretrain_multimodal() -> bool:
    """Effect 0 (before anything imports ``mmdet.models``); returns whether it was needed."""
    if _import_fixes:
        return True
    if not mmpretrain_multimodal_is_broken():
        return False
    import mmpretrain.utils.dependency as dependency
    dependency.WITH_MULTIMODAL = False
    _import_fixes.append(MMPRETRAIN_MULTIMODAL_OFF)
    return True


def register_config_package() -> bool:
    """Effect 4: ``cbnet::`` config names in mmengine; returns whether mmengine's path lookup needed help."""
    import mmengine.config.config as mmengine_config
    from mmengine.config.utils import MODULE2PACKAGE

    MODULE2PACKAGE.setdefault(SCOPE, SCOPE)
    lookup = mmengine_config.get_installed_path
    if getattr(lookup, 'cbnet_wrapped', False):
        return True
    from .utils.configs import quiet_pkg_resources
    try:
        with quiet_pkg_resources():  # mmengine's lookup imports setuptools' deprecated pkg_resources
            found = osp.realpath(lookup(SCOPE))
    except Exception:  # noqa: BLE001 - any failure of mmengine's lookup means it needs help
        found = None
    if found == osp.realpath(PACKAGE_DIR):
        return False

    def get_installed_path(package: str) -> str:
        return PACKAGE_DIR if package == SCOPE else lookup(package)

    get_installed_path.cbnet_wrapped = True
    get_installed_path.__doc__ = lookup.__doc__
    mmengine_config.get_installed_path = get_installed_path
    return True


def register_scope() -> Dict[str, Registry]:
    """Effect 5: a child registry with scope ``cbnet`` under every mmdet registry (and every mmengine root
    registry that mmdet does not extend); returns them by the mmdet constant name (``MODELS``, ...)."""
    import mmdet.registry as mmdet_registry
    import mmengine.registry as mmengine_registry

    if _scope_registries:
        return dict(_scope_registries)
    parents: Dict[str, Registry] = {}
    for name, root in vars(mmengine_registry).items():
        if isinstance(root, Registry) and root.parent is None:
            parents[name] = root
    for name, registry in vars(mmdet_registry).items():
        if isinstance(registry, Registry):
            parents[name] = registry
    for name, parent in parents.items():
        child = parent.children.get(SCOPE)
        if child is None:
            child = Registry(parent.name, parent=parent, scope=SCOPE, locations=[SCOPE])
        _scope_registries[name] = child
    return dict(_scope_registries)


def register_generated_modules() -> List[str]:
    """Effect 6: the ``CB<Detector>`` classes and the neck aliases; returns the names now registered."""
    from mmdet.models.necks import FPN
    from mmdet.registry import MODELS

    from .models.detectors import register_all
    from .models.necks import CBNeck, LN2d, SimpleFeaturePyramid

    names = list(register_all())
    for alias, module in (('CBFPN', FPN), ('CBNeck', CBNeck), ('SimpleFPN', SimpleFeaturePyramid), ('LN2d', LN2d)):
        if alias not in MODELS.module_dict:
            MODELS.register_module(name=alias, module=module)
        names.append(alias)
    return names


def apply() -> List[str]:
    """Apply every effect listed in the module docstring (idempotent); returns their names."""
    if _applied:
        return list(_applied)
    from mmengine.fileio import register_backend

    from .utils.checkpoint import register_mmengine_safe_globals
    from .utils.checkpoint_files import AtomicLocalBackend, install_clear_checkpoint_errors

    disable_broken_mmpretrain_multimodal()  # a no-op here when cbnet/__init__ already ran it
    register_mmengine_safe_globals()
    install_clear_checkpoint_errors()
    register_backend('atomic_local', AtomicLocalBackend)
    register_config_package()
    register_scope()
    register_generated_modules()
    _applied.extend(_import_fixes + [
        'torch safe globals', 'clear checkpoint errors', 'atomic_local backend', 'MODULE2PACKAGE',
        'cbnet registry scope', 'generated registry entries'
    ])
    return list(_applied)
