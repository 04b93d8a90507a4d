"""Config names as users write them, and configs made safe to build offline.

``Config.fromfile`` only accepts file paths, while configs and users say ``mmdet::faster_rcnn/x.py`` (the
configs an OpenMMLab package ships under ``<package>/.mim/configs``). Every cbnet tool accepts both.
"""
import contextlib
import importlib.util
import os.path as osp
import warnings
from typing import Any, Iterator, Optional

PACKAGE_SEP = '::'
#: setuptools' warning when mmengine's package lookup imports (and reloads) pkg_resources
PKG_RESOURCES_DEPRECATION = r'pkg_resources is deprecated as an API'


@contextlib.contextmanager
def quiet_pkg_resources() -> Iterator[None]:
    """Silence setuptools' ``pkg_resources is deprecated`` UserWarning inside the block, nothing else.

    mmengine 0.10's lookup of ``mmdet::``/``cbnet::`` configs imports and reloads ``pkg_resources``, which
    warned five times per tool run; the stack pins setuptools < 81, so there is nothing for a user to do.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=PKG_RESOURCES_DEPRECATION, category=UserWarning)
        yield


def load_config_file(name: str):
    """``Config.fromfile`` of a path or ``package::path`` name (see :func:`resolve_config_path`), without
    pkg_resources' deprecation warnings."""
    from mmengine.config import Config
    path = resolve_config_path(name)
    with quiet_pkg_resources():
        return Config.fromfile(path)


def package_config_dir(package: str) -> Optional[str]:
    """``<package>/.mim/configs`` of an installed package, or None if it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return osp.join(osp.dirname(spec.origin), '.mim', 'configs')


def resolve_config_path(name: str) -> str:
    """The file behind ``name``: a path, or ``package::relative/path.py`` inside an installed package.

    Raises:
        FileNotFoundError: with the path that was looked for.
    """
    if PACKAGE_SEP not in name:
        if not osp.isfile(name):
            raise FileNotFoundError(f'config file not found: {name!r}')
        return name
    package, rel = name.split(PACKAGE_SEP, 1)
    root = package_config_dir(package)
    if root is None:
        raise FileNotFoundError(f'{name!r}: package {package!r} is not installed')
    path = osp.join(root, rel)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{name!r}: no such config in the installed {package} (looked for {path})')
    return path


def package_config_name(path: str, package: str = 'mmdet') -> Optional[str]:
    """``package::rel`` when ``path`` lies inside ``package``'s shipped configs, else None."""
    root = package_config_dir(package)
    path = osp.abspath(path)
    if root is None or not path.startswith(osp.abspath(root) + osp.sep):
        return None
    return package + PACKAGE_SEP + osp.relpath(path, root)


def _loads_weights(init_cfg: Any) -> bool:
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)


def strip_pretrained(node: Any) -> int:
    """Drop every checkpoint a config tree would load at build time (in place); returns how many.

    ``pretrained=...`` keys and ``init_cfg`` entries of type ``Pretrained`` become None; other initialisers
    (``Normal``, ``Kaiming``, ...) stay, so the model is built as it would be, with random weights and no
    download.
    """
    changed = 0
    if isinstance(node, dict):
        for key in list(node.keys()):
            value = node[key]
            if key == 'pretrained' and isinstance(value, str):
                node[key] = None
                changed += 1
            elif key == 'init_cfg' and _loads_weights(value):
                node[key] = None
                changed += 1
            else:
                changed += strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            changed += strip_pretrained(item)
    return changed
