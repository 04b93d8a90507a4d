"""Configs and models for cost measurements: built offline, with random weights, in the config's scope.

Costs do not depend on the weights, so every ``Pretrained`` init_cfg is dropped (no download, no checkpoint)
and ``init_weights()`` is never called.
"""
import copy
from typing import Optional, Union

import torch.nn as nn
from mmengine.config import Config

from ..utils.configs import load_config_file, strip_pretrained

ConfigLike = Union[str, Config]


def load_config(config: ConfigLike, cfg_options: Optional[dict] = None) -> Config:
    """A config (path, ``scope::path`` or an in-memory :class:`Config`, copied) without pretrained weights.

    Raises:
        FileNotFoundError: for a path that does not exist.
        KeyError: for a config without a ``model``.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        cfg = load_config_file(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'{config_label(config)!r} has no `model` field: cost tools need a model config')
    strip_pretrained(cfg.model)
    return cfg


def config_label(config: ConfigLike) -> str:
    """How a config is named in tables: its path, or the file an in-memory config came from."""
    if isinstance(config, Config):
        return config.filename or '<in-memory config>'
    return config


def build_model(cfg: Config, device: str = 'cpu') -> nn.Module:
    """``cfg.model`` built in the config's default scope, SyncBN turned into BN, on ``device``."""
    from mmdet.registry import MODELS
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(copy.deepcopy(cfg.model))
    return revert_sync_batchnorm(model).to(device)


def is_detector(model: nn.Module) -> bool:
    from mmdet.models.detectors import BaseDetector
    return isinstance(model, BaseDetector)


def backbone_of(model: nn.Module) -> nn.Module:
    """The backbone of a detector, or the model itself for backbone-only configs."""
    return model.backbone if is_detector(model) else model


def num_backbones(model: nn.Module) -> int:
    return int(getattr(backbone_of(model), 'num_backbones', 1))
