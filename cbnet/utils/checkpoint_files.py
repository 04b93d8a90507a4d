"""Checkpoint files that survive crashes: atomic writes, readable-file checks, clear errors, safe auto-resume.

Why: mmengine writes a checkpoint by opening the destination and streaming into it, so a run killed while
saving (pre-emption, OOM killer, a full disk) leaves a truncated file under the final name. Reading such a
file fails deep inside ``torch.load`` with ``PytorchStreamReader failed finding central directory``, which
names neither the file nor the cause. Here:

* :class:`AtomicLocalBackend` (mmengine file backend ``'atomic_local'``) writes into a temporary file in the
  same directory, fsyncs it and renames it over the destination: a reader sees the old file or the complete
  new one, never a partial one.
* :func:`checkpoint_problem` tells, without unpickling, whether a file can be a complete checkpoint.
* :func:`install_clear_checkpoint_errors` makes mmengine's local checkpoint loader (``load_from``,
  ``--resume``, ``Pretrained`` init) raise :class:`CheckpointReadError` naming the file and the fix.
* :func:`find_resumable_checkpoint` is ``--resume auto`` that skips unreadable checkpoints.
"""
import logging
import os
import os.path as osp
import re
import tempfile
import zipfile
from typing import Callable, List, Optional, Union

from mmengine.fileio import LocalBackend
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

_CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')
# The first bytes of a zip archive (torch >= 1.6 format) and of a legacy pickled checkpoint.
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL = 0x80


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be loaded (truncated, corrupt, or not a checkpoint)."""


def _write_all(f, data: bytes) -> None:
    """Write ``data`` to the open file ``f`` (a separate function so tests can simulate a kill mid-write)."""
    f.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(data: bytes, filepath: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``filepath`` so that the file is either the old one or the complete new one."""
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; keep what open() would give
        with os.fdopen(fd, 'wb') as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    # make the rename itself durable (a power loss right after could otherwise lose it)
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text`` (registered as ``'atomic_local'`` by
    :mod:`cbnet.global_effects`).

    Use it for checkpoints with ``default_hooks.checkpoint.backend_args=dict(backend='atomic_local')`` (what
    ``cbnet.engine.AtomicCheckpointHook`` sets, and what cbnet's ``tools/train.py`` uses by default).
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


def checkpoint_problem(filename: str) -> Optional[str]:
    """Why ``filename`` cannot be a complete checkpoint, or None if it looks complete.

    Cheap (reads the zip directory, not the tensors). A file cut short by a kill lacks the zip's central
    directory, which is written last, so truncation anywhere is detected.
    """
    if not osp.isfile(filename):
        return 'the file does not exist'
    size = osp.getsize(filename)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(filename, 'rb') as f:
        head = f.read(4)
    if head[0] == _PICKLE_PROTOCOL:
        return None  # legacy (torch < 1.6) format: no cheap check; torch.load decides
    if head != _ZIP_MAGIC:
        return 'it is not a PyTorch checkpoint (neither a zip archive nor a pickle)'
    try:
        with zipfile.ZipFile(filename) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return (f'it is truncated or corrupt ({size} bytes, the zip directory at its end is missing or '
                'damaged): typically a run killed while saving it')
    if not any(name.endswith('/data.pkl') or name == 'data.pkl' for name in names):
        return 'it is a zip archive but not a PyTorch checkpoint (no data.pkl inside)'
    return None


_original_local_loader: Optional[Callable] = None


def load_from_local(filename: str, map_location=None):
    """mmengine's loader for local files, raising :class:`CheckpointReadError` for unreadable ones (same name
    as mmengine's, which its log shows as ``Loads checkpoint by local backend``)."""
    try:
        return _original_local_loader(filename, map_location)
    except FileNotFoundError:
        raise
    except Exception as e:
        problem = checkpoint_problem(osp.expanduser(filename))
        if problem is None and 'Weights only load failed' in str(e):
            raise  # torch's own message (an unexpected global) already says what to do
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointReadError(
            f'Cannot load the checkpoint {filename!r}: {problem or "torch.load failed"} '
            f'[{type(e).__name__}: {cause}]. Delete or replace this file; to resume, pass an earlier checkpoint '
            'with `--resume PATH` (or delete it and use `--resume` to pick the newest readable one).') from e


def install_clear_checkpoint_errors() -> None:
    """Wrap mmengine's loader for local paths so that unreadable files raise :class:`CheckpointReadError`."""
    global _original_local_loader
    if _original_local_loader is not None:
        return
    _original_local_loader = CheckpointLoader._get_checkpoint_loader('/local/path.pth')
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def _numbered_checkpoints(work_dir: str) -> List[str]:
    """``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir``, newest (largest N) first."""
    if not osp.isdir(work_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(work_dir) if (m := _CHECKPOINT_NAME.match(name))]
    return [osp.join(work_dir, name) for _, name in sorted(found, reverse=True)]


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (auto) should continue from: the one ``last_checkpoint`` names if it is
    readable, else the newest readable ``iter_N.pth``/``epoch_N.pth``; None if there is none.

    Unreadable candidates are skipped with a warning (mmengine would pick them and fail, or, with an empty
    ``last_checkpoint``, silently start from scratch).
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates.append(named)
    candidates += [c for c in _numbered_checkpoints(work_dir) if c not in candidates]
    for candidate in candidates:
        problem = checkpoint_problem(candidate)
        if problem is None:
            return candidate
        print_log(f'--resume: skipping the checkpoint {candidate}: {problem}.', logger='current', level=logging.WARNING)
    return None
