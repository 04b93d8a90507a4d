"""Every module of this package registers the adapters of one backbone family (see ``base.py``).

They are discovered, not listed, so a new family is one new file. A module whose third-party package is not
installed (``mmpretrain`` for ConvNeXt) is skipped: that family is then not supported, everything else is.
"""
import importlib
import pkgutil

from .base import (BackboneAdapter, Pruned, adapted_class, adapter_for_class, get_adapter, prune, refusal_reason,
                   refuse_family, register_adapter, registered_backbone_classes, supported_backbones)


def _missing_optional_package(error: ModuleNotFoundError) -> bool:
    """True when ``error`` says a package outside cbnet is not installed (not a broken import of ours)."""
    return bool(error.name) and error.name.split('.')[0] != __name__.split('.')[0]


def _import_family_modules() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == 'base' or info.name.startswith('_'):
            continue
        try:
            importlib.import_module(f'{__name__}.{info.name}')
        except ModuleNotFoundError as e:
            if not _missing_optional_package(e):
                raise


_import_family_modules()

__all__ = [
    'BackboneAdapter', 'Pruned', 'adapted_class', 'adapter_for_class', 'get_adapter', 'prune', 'refusal_reason',
    'refuse_family', 'register_adapter', 'registered_backbone_classes', 'supported_backbones'
]
