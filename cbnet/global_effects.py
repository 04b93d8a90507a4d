"""Everything ``import cbnet`` changes outside cbnet, in one place (``cbnet/__init__.py`` calls :func:`apply` once).

Each effect is as narrow as it can be and idempotent:

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
import os.path as osp
from typing import Dict, List

from mmengine.registry import Registry

SCOPE = 'cbnet'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))

_applied: List[str] = []
_scope_registries: Dict[str, Registry] = {}


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

    register_mmengine_safe_globals()
    install_clear_checkpoint_errors()
    register_backend('atomic_local', AtomicLocalBackend)
    register_config_package()
    register_scope()
    register_generated_modules()
    _applied.extend([
        'torch safe globals', 'clear checkpoint errors', 'atomic_local backend', 'MODULE2PACKAGE',
        'cbnet registry scope', 'generated registry entries'
    ])
    return list(_applied)
