"""The registries of the ``cbnet`` scope (``MODELS``, ``DATASETS``, ``HOOKS``, ... as in ``mmdet.registry``).

mmengine imports ``<scope>.registry`` before it builds a config node whose ``_scope_`` is ``cbnet`` (what a
``cbnet::`` base config defines). Each registry here is an empty child of mmdet's (created by
:func:`cbnet.global_effects.register_scope`), so it finds every mmdet and cbnet name through its parent.
cbnet's own modules register in mmdet's registries, where mmdet's tools find them too.
"""
from .global_effects import register_scope

globals().update(register_scope())
__all__ = sorted(register_scope())
