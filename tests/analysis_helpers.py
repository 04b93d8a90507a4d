"""Helpers of the cost-analysis tests: tiny DINO / Mask2Former configs."""
from mmengine.config import Config

from cbnet import cbnetify
from cbnet.analysis import load_config
from cbnet.testing import TINY_WIDTHS, family

#: mmdet zoo configs of the transformer detector kinds, and the stage outputs their necks/heads read
TRANSFORMER_CONFIGS = {
    'dino': ('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', (1, 2, 3)),
    'mask2former': ('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', (0, 1, 2, 3)),
}
TINY_QUERIES = 10


def _shrink_transformer(node) -> None:
    """One layer everywhere, narrow FFNs, few queries (the 256-d embeddings stay: DINO hard-codes them)."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key == 'num_layers':
                node[key] = 1
            elif key == 'feedforward_channels':
                node[key] = 64
            elif key == 'num_queries':
                node[key] = TINY_QUERIES
            elif key == 'num_dn_queries':
                node[key] = 6
            else:
                _shrink_transformer(value)
    elif isinstance(node, list):
        for item in node:
            _shrink_transformer(item)


def tiny_transformer_config(kind: str, num_backbones: int = 1, **model_options) -> Config:
    """mmdet's DINO-4scale or Mask2Former (instance) recipe with a tiny ResNet, 1 encoder/decoder layer and
    10 queries; cbnetified when ``num_backbones`` > 1."""
    source, out_indices = TRANSFORMER_CONFIGS[kind]
    cfg = load_config(source)
    model = cfg.model
    model.backbone = family('ResNet', out_indices=out_indices)
    widths = [TINY_WIDTHS[i] for i in out_indices]
    if kind == 'dino':
        model.neck.in_channels = widths
    else:
        model.panoptic_head.in_channels = widths
        model.train_cfg.num_points = 256  # of 12544: point-sampled mask losses
        model.data_preprocessor.batch_augments = None  # LSJ pads every training batch to 1024x1024
    _shrink_transformer(model)
    if num_backbones > 1:
        cfg = cbnetify(cfg, num_backbones=num_backbones)
    cfg.model.update(model_options)
    return cfg
