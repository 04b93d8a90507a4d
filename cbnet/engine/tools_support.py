"""What cbnet's ``tools/train.py`` and ``tools/test.py`` do on top of mmdet's to fail fast and recover safely.

Kept here (not in the tools) so that user scripts can call the same functions.
"""
import contextlib
import logging
import os.path as osp
from typing import Iterator, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..utils.checkpoint_files import find_resumable_checkpoint
from ..utils.compat_checks import CUSTOM_IMPORTS, config_imports_cbnet, registry_hint
from ..utils.configs import resolve_config_path
from .hooks import enable_reliability


def load_config(path: str,
                launcher: str = 'none',
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """The config as mmdet's tools load it: ``--cfg-options`` merged, ``work_dir`` from the command line, the
    config, or ``./work_dirs/<config name>`` (in that order). ``path`` is a file or a config an installed
    package ships: ``cbnet::cbnet/dual_swin_l_htc.py``, ``mmdet::faster_rcnn/...``."""
    cfg = Config.fromfile(resolve_config_path(path))
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def prepare_config(cfg, training: bool) -> None:
    """Enable the reliability hooks; warn when the config does not import cbnet itself."""
    enable_reliability(cfg, training=training)
    if not config_imports_cbnet(cfg):
        print_log(
            'This config has no custom_imports of cbnet. cbnet\'s tools import it anyway, but mmdet\'s own '
            'tools and other scripts will fail with "CB... is not in the mmdet::model registry". Add\n    '
            f'{CUSTOM_IMPORTS}',
            logger='current',
            level=logging.WARNING)


def resolve_auto_resume(cfg) -> None:
    """``--resume`` without a path: continue from the newest *readable* checkpoint in ``cfg.work_dir``.

    mmengine trusts ``work_dir/last_checkpoint``; a file truncated by a kill would make the resume fail, and an
    empty pointer would silently restart from scratch. With no readable checkpoint the run starts anew.
    """
    checkpoint = find_resumable_checkpoint(cfg.work_dir)
    if checkpoint is None:
        print_log(
            f'--resume: no readable checkpoint in {cfg.work_dir}; training starts from the beginning.',
            logger='current',
            level=logging.WARNING)
        cfg.resume = False
        cfg.load_from = None
    else:
        cfg.resume = True
        cfg.load_from = checkpoint


@contextlib.contextmanager
def explain_registry_errors() -> Iterator[None]:
    """Turn mmengine's ``X is not in the mmdet::model registry`` KeyError into an exit with the fix."""
    try:
        yield
    except KeyError as e:
        from mmdet.registry import MODELS
        hint = registry_hint(e, registry_names=MODELS.module_dict)
        if hint is None:
            raise
        raise SystemExit(f'error: {e.args[0] if e.args else e}\n{hint}') from e
