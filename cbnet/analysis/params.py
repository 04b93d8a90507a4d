"""Parameter counts, split like every other statistic (see :func:`~cbnet.analysis.breakdown.split_by_module`)."""
from typing import Any, Dict

import torch.nn as nn

from .breakdown import split_by_module


def count_params(model: nn.Module) -> Dict[str, Any]:
    """All parameters (shared ones once) split by module and branch, plus the ``trainable`` count."""
    from mmengine.analysis import parameter_count
    counts = parameter_count(model)
    stats = split_by_module(lambda name: int(counts.get(name, 0)), model)
    stats['trainable'] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return stats
