"""What every converter needs: read a checkpoint file safely, build the target model of a config."""
from typing import Dict, Tuple

import torch
from torch import Tensor


def load_state_dict_file(path: str) -> Tuple[Dict[str, Tensor], dict]:
    """``(state_dict, meta)`` of a checkpoint file: a full mmengine file (``state_dict`` + ``meta``) or a bare
    state dict. Read with ``weights_only=True``: ``import cbnet`` allowlists what mmengine checkpoints pickle."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - the message says what to do
        raise ValueError(f'Cannot read {path} as a PyTorch checkpoint without running code from it: {e}') from e
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} holds a {type(ckpt).__name__}, not a checkpoint dict.')
    if isinstance(ckpt.get('state_dict'), dict):
        return ckpt['state_dict'], dict(ckpt.get('meta') or {})
    return ckpt, {}


def build_target_model(config):
    """The detector of ``config`` (a path, a ``package::path`` name or a Config), built without loading any
    pretrained weights (every ``Pretrained`` init_cfg is dropped: the converted weights replace them)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from ..utils.configs import load_config_file, strip_pretrained

    register_all_modules(init_default_scope=True)
    cfg = config if isinstance(config, Config) else load_config_file(config)
    model_cfg = cfg.model.copy()
    strip_pretrained(model_cfg)
    return MODELS.build(model_cfg)
