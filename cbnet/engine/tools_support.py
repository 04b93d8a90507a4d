"""What cbnet's ``tools/train.py`` and ``tools/test.py`` do on top of mmdet's to fail fast and recover safely.

Kept here (not in the tools) so that user scripts can call the same functions.

* :func:`add_tool_arguments` / :func:`configure_cpu_threads`: ``--threads`` (CPU runs) and ``--debug``.
* :func:`tool_errors`: cbnet's own errors (bad composition, unsupported backbone, neck or stride mismatch,
  refused checkpoint, unreachable pretrained weights, unknown type) end the tool with one message instead of a
  traceback; ``--debug`` keeps the traceback. The Python API raises as usual.
* :func:`preflight_build`: builds the model once before mmengine's Runner, so that such an error comes before
  the Runner's config dump instead of after it.
"""
import argparse
import contextlib
import logging
import os.path as osp
import sys
from typing import Iterator, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..utils.checkpoint_files import find_resumable_checkpoint
from ..utils.compat_checks import CUSTOM_IMPORTS, config_imports_cbnet, registry_hint
from ..utils.configs import load_config_file
from ..utils.remote_weights import PretrainedUnavailableError, explain_unavailable_pretrained
from ..utils.threads import add_threads_argument, configure_cpu_threads
from .hooks import enable_reliability

__all__ = [
    'add_tool_arguments', 'configure_cpu_threads', 'load_config', 'prepare_config', 'preflight_build',
    'resolve_auto_resume', 'explain_registry_errors', 'tool_errors', 'raised_by_cbnet'
]

#: errors cbnet raises with a message that already says what to change
CBNET_ERRORS = (ValueError, KeyError, TypeError, FloatingPointError, PretrainedUnavailableError)
CBNET_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def add_tool_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (torch CPU threads, see :mod:`cbnet.utils.threads`) and ``--debug`` (full tracebacks)."""
    add_threads_argument(parser)
    parser.add_argument(
        '--debug',
        action='store_true',
        help="show the full traceback of cbnet's own errors (bad config, refused "
        'checkpoint, unreachable pretrained weights) instead of one message')


def load_config(path: str,
                launcher: str = 'none',
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """The config as mmdet's tools load it: ``--cfg-options`` merged, ``work_dir`` from the command line, the
    config, or ``./work_dirs/<config name>`` (in that order). ``path`` is a file or a config an installed
    package ships: ``cbnet::cbnet/dual_swin_l_htc.py``, ``mmdet::faster_rcnn/...``."""
    cfg = load_config_file(path)
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
    """Turn mmengine's ``X is not in the mmdet::model registry`` KeyError into an exit with the fix: the close
    matches right after the first sentence, the custom_imports advice only if cbnet's types are missing."""
    try:
        yield
    except KeyError as e:
        from mmdet.registry import MODELS
        hint = registry_hint(e, registry_names=MODELS.module_dict)
        if hint is None:
            raise
        text = str(e.args[0] if e.args else e)
        first = text.split('. ', 1)[0].rstrip('.') + '.'  # mmengine's generic advice follows: replaced by ours
        print(f'error: {first} {hint}', file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def raised_by_cbnet(error: BaseException) -> Optional[BaseException]:
    """The exception of cbnet's code behind ``error`` (itself or one it was raised from), or None.

    mmengine's registry re-raises a build error as ``type(e)('class `X` in ...: ' + message)``; the original,
    raised in a cbnet module, carries the message without that prefix.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if (tb is not None and isinstance(error, CBNET_ERRORS)
                and osp.abspath(tb.tb_frame.f_code.co_filename).startswith(CBNET_DIR + osp.sep)):
            return error
        error = error.__cause__ or error.__context__
    return None


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)


@contextlib.contextmanager
def tool_errors(cfg: Optional[Config] = None, debug: bool = False) -> Iterator[None]:
    """End the tool with ``error: <message>`` (exit status 1) for errors whose message is the fix: unknown
    registry types (with close matches), cbnet's own errors, unreachable ``Pretrained`` weights of ``cfg``'s
    model. Other errors, and every error with ``debug``, propagate with their traceback."""
    try:
        with explain_registry_errors():
            yield
    except CBNET_ERRORS + (OSError, ) as e:
        if debug:
            raise
        message = None
        if cfg is not None:
            message = explain_unavailable_pretrained(cfg.get('model'), e)
        if message is None:
            origin = raised_by_cbnet(e)
            message = _message(origin) if origin is not None else None
        if message is None:
            raise
        print(f'error: {message}\n(--debug shows the traceback)', file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def preflight_build(cfg: Config) -> None:
    """Build ``cfg.model`` once, without initialising weights, and drop it: configuration errors (unknown
    types, unsupported backbones, neck and stride mismatches) then stop the tool before mmengine's Runner has
    logged the whole config."""
    import gc

    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    del model
    gc.collect()


@contextlib.contextmanager
def tool_runner(cfg: Config, debug: bool, training: bool) -> Iterator:
    """The Runner of cbnet's ``tools/train.py`` and ``tools/test.py``, used inside the block: a launcher without
    GPUs on gloo, cbnet's reliability hooks, configuration errors before the Runner logs the config, and cbnet's
    own errors as one message (``debug``: the traceback) while the block runs."""
    from mmdet.registry import RUNNERS
    from mmengine.runner import Runner

    from ..utils import setup_cpu_distributed
    setup_cpu_distributed(cfg)
    prepare_config(cfg, training=training)
    with tool_errors(cfg, debug):
        preflight_build(cfg)
        yield Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
