"""cbnet: CBNetV2 composite backbones (Dual/Triple) for MMDetection 3.x.

``import cbnet`` (or ``custom_imports = dict(imports=['cbnet'])`` in a config) registers every module in
mmdet's registries. What it changes outside cbnet is listed, and done, in :mod:`cbnet.global_effects`.
"""
from . import global_effects  # noqa: E402

global_effects.disable_broken_mmpretrain_multimodal()  # before mmdet's models are imported (effect 0)

from . import engine, models, utils  # noqa: F401,E402
from .cbnetify import CBNetifyError, cbnetify, cbnetify_delta  # noqa: E402
from .version import __version__  # noqa: E402

global_effects.apply()

__all__ = ['__version__', 'cbnetify', 'cbnetify_delta', 'CBNetifyError']
