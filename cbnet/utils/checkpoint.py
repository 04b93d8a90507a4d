"""Make full mmengine checkpoints loadable on torch >= 2.6 without turning ``weights_only`` off.

Why: torch 2.6 made ``torch.load(..., weights_only=True)`` the default. mmengine 0.10.7 calls ``torch.load``
without that argument, and a full mmengine checkpoint (what ``--resume``, ``load_from`` and
``tools/test.py CONFIG CKPT`` read) pickles a few non-tensor objects: the ``MessageHub``'s
``HistoryBuffer`` objects and the numpy arrays/scalars inside them. The restricted unpickler refuses those, so
every entry point fails with ``Unsupported global: GLOBAL mmengine.logging.history_buffer.HistoryBuffer``.

Instead of ``weights_only=False`` (which would let any checkpoint run arbitrary code) we allowlist exactly
the globals such checkpoints contain, once, when ``cbnet`` is imported. Every other global is still refused.
The list was taken from real checkpoints written by mmengine 0.10.7 (``torch.serialization.
get_unsafe_globals_in_checkpoint``), plus the numpy 1.x spellings of the same functions so that
checkpoints written under numpy 1.x load under numpy 2.x.

One entry needs care: a pickled ``HistoryBuffer`` carries its statistics functions
(``HistoryBuffer.min`` ...), which pickle writes as ``getattr(HistoryBuffer, 'min')``. Allowlisting the real
``builtins.getattr`` would let a checkpoint reach any attribute of any allowlisted object, so we register a
stand-in under that name that only returns public methods of ``HistoryBuffer`` and refuses everything else.
"""
import importlib
import pickle
from typing import Any, Callable, List, Tuple, Union

import torch

SafeGlobal = Union[Callable, Tuple[Callable, str]]

#: numpy dtypes that can occur in a checkpoint's numpy arrays/scalars (loss histories, counters, metrics)
_NUMPY_DTYPE_CLASSES = ('BoolDType', 'Int8DType', 'UInt8DType', 'Int16DType', 'UInt16DType', 'Int32DType',
                        'UInt32DType', 'Int64DType', 'UInt64DType', 'Float16DType', 'Float32DType', 'Float64DType',
                        'LongDType', 'ULongDType', 'LongLongDType', 'ULongLongDType', 'ByteDType', 'UByteDType',
                        'ShortDType', 'UShortDType', 'IntDType', 'UIntDType', 'HalfDType', 'DoubleDType',
                        'LongDoubleDType')

_registered: List[str] = []


def _import_attr(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` as the unpickler may call it: only ``getattr(HistoryBuffer, '<public method>')``."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        attr = getattr(HistoryBuffer, name, None)
        if callable(attr):
            return attr
    raise pickle.UnpicklingError(
        f'cbnet refuses getattr({obj!r}, {name!r}) while loading a checkpoint with weights_only=True: only '
        'the statistics methods of mmengine HistoryBuffer are allowed. Load with weights_only=False only if '
        'you trust the file.')


def mmengine_checkpoint_safe_globals() -> List[SafeGlobal]:
    """The globals a full mmengine checkpoint pickles, as ``torch.serialization.add_safe_globals`` takes them.

    Entries are ``(object, 'module.qualname')`` pairs: the name is the one written into the pickle, which for
    numpy depends on the numpy version that wrote it (``numpy.core`` in 1.x, ``numpy._core`` in 2.x).
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    entries: List[SafeGlobal] = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (history_buffer_getattr, 'builtins.getattr'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
    ]
    # numpy array/scalar reconstructors under both spellings
    core = _import_attr('numpy', '_core') or _import_attr('numpy', 'core')
    for func_name in ('_reconstruct', 'scalar'):
        func = getattr(core.multiarray, func_name)
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            entries.append((func, f'{module}.{func_name}'))
    # numpy >= 1.25 pickles dtypes through their class in ``numpy.dtypes``
    for cls_name in _NUMPY_DTYPE_CLASSES:
        cls = _import_attr('numpy.dtypes', cls_name)
        if cls is not None:
            entries.append((cls, f'numpy.dtypes.{cls_name}'))
    return entries


def register_mmengine_safe_globals() -> List[str]:
    """Allowlist the globals of full mmengine checkpoints for ``torch.load(weights_only=True)``.

    Idempotent; a no-op on torch versions without ``add_safe_globals`` (< 2.4, where ``torch.load`` does not
    restrict globals by default anyway). Returns the registered names.
    """
    if _registered:
        return list(_registered)
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return []
    entries = mmengine_checkpoint_safe_globals()
    add_safe_globals(entries)
    _registered.extend(name for _, name in entries)
    return list(_registered)
