"""The torch-compatibility fixes MMDeploy 1.3.1 (its last release) needs on torch >= 2.9, applied only while
deploying (:func:`deploy_patches`), never at ``import cbnet``.

Each fix knows whether it is still needed (:attr:`Fix.needed`): a torch or mmdeploy release that no longer needs
it is detected and the fix is skipped (``tests/test_deploy_compat.py`` asserts the original failure where it
is needed).
"""
import contextlib
import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import torch
import torch.onnx


@dataclass(frozen=True)
class Fix:
    """A narrow compatibility fix: ``why`` in one line, ``needed()`` and ``apply()`` (returns an undo)."""

    name: str
    why: str
    needed: Callable[[], bool]
    apply: Callable[..., Callable[[], None]]


# -- 1. torch.onnx.export defaults to the dynamo exporter ---------------------------------------------------
def _export_needs_legacy() -> bool:
    parameter = inspect.signature(torch.onnx.export).parameters.get('dynamo')
    return parameter is not None and parameter.default is True


def _force_legacy_export(**overrides) -> Callable[[], None]:
    original = torch.onnx.export

    has_dynamo = 'dynamo' in inspect.signature(original).parameters

    @functools.wraps(original)
    def export(*args, **kwargs):
        if has_dynamo:
            kwargs.setdefault('dynamo', False)
        kwargs.update(overrides)
        return original(*args, **kwargs)

    torch.onnx.export = export

    def undo() -> None:
        torch.onnx.export = original

    return undo


# -- 2. torch.onnx.symbolic_opset9._cast_Long was removed ---------------------------------------------------
def _cast_long_missing() -> bool:
    import torch.onnx.symbolic_opset9 as opset9
    return not hasattr(opset9, '_cast_Long')


def _restore_cast_long(**_) -> Callable[[], None]:
    import torch.onnx.symbolic_opset9 as opset9

    def _cast_Long(g, input, non_blocking):  # noqa: N802 - the removed torch name mmdeploy imports
        return g.op('Cast', input, to_i=torch.onnx.TensorProtoDataType.INT64)

    opset9._cast_Long = _cast_Long

    def undo() -> None:
        del opset9._cast_Long

    return undo


LEGACY_EXPORTER = Fix(
    'legacy ONNX exporter', 'torch >= 2.9 exports with dynamo=True (needs onnxscript, ignores symbolic rewriters); '
    'mmdeploy passes no dynamo argument, so dynamo=False is set for it', _export_needs_legacy, _force_legacy_export)
CAST_LONG = Fix(
    '_cast_Long', 'mmdeploy\'s RoIAlign symbolic imports torch.onnx.symbolic_opset9._cast_Long, removed from '
    'torch; restored as a Cast to int64', _cast_long_missing, _restore_cast_long)
FIXES: List[Fix] = [LEGACY_EXPORTER, CAST_LONG]


def needed_fixes() -> List[Fix]:
    """The fixes this torch still needs."""
    return [fix for fix in FIXES if fix.needed()]


@contextlib.contextmanager
def deploy_patches(export_overrides: Optional[Dict] = None, fixes: Optional[List[Fix]] = None) -> Iterator[List[str]]:
    """While active, the fixes of ``fixes`` (default: all) that this torch still needs are applied (yields their
    names); all undone on exit.

    ``export_overrides``: extra ``torch.onnx.export`` arguments (``do_constant_folding=False`` and
    ``training=TrainingMode.PRESERVE`` keep parameter names in the graph), passed on with the exporter fix.
    """
    undo: List[Callable[[], None]] = []
    applied: List[str] = []
    try:
        for fix in (FIXES if fixes is None else fixes):
            if fix.needed():
                undo.append(fix.apply(**(export_overrides or {})) if fix is LEGACY_EXPORTER else fix.apply())
                applied.append(fix.name)
        if export_overrides and LEGACY_EXPORTER.name not in applied:
            undo.append(_force_legacy_export(**export_overrides))
        yield applied
    finally:
        for step in reversed(undo):
            step()
