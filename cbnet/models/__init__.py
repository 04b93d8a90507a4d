"""Importing this registers every cbnet model in mmdet's registries."""
from . import backbones, detectors, necks, tta  # noqa: F401
from .structures import MultiBranchFeatures

__all__ = ['MultiBranchFeatures']
