"""One statistic (parameters or FLOPs) split the same way for every model: per top-level module, per part
of each head, and for a composite backbone per branch and for the composition.

Works from a ``value(module_name)`` lookup so that parameter counts and FLOP counts share the split.
"""
from typing import Any, Callable, Dict, Optional

import torch.nn as nn

from .models import is_detector

#: the entry that keeps a split summing to its total: FLOPs that the tracer attributes to no child module, i.e.
#: operators run directly in code that mmdet calls as ``.forward(...)`` or as a method rather than through
#: ``module(...)`` (the detector's own ``_forward``, e.g. Mask2Former's mask-prediction einsum in its head)
OTHER = 'other'
#: top-level modules whose children are not split further (the backbone has its own split)
_NOT_SPLIT = ('backbone', 'data_preprocessor')


def branch_containers(backbone: nn.Module) -> Dict[str, nn.ModuleList]:
    """Children of a composite backbone that hold one module per branch.

    cbnet's ``CBNet`` keeps its branches in ``branches`` (a ModuleList of K); anything else in the backbone
    (the composite connections) is the composition.
    """
    num = getattr(backbone, 'num_backbones', None)
    if not isinstance(num, int):
        return {}
    return {
        name: child
        for name, child in backbone.named_children()
        if 'branch' in name and isinstance(child, nn.ModuleList) and len(child) == num
    }


def _children(module: nn.Module, value: Callable[[str], int], prefix: str, nonzero: bool = False) -> Dict[str, int]:
    """``value`` of every child module and every parameter held directly (e.g. DETR's ``level_embed``)."""
    pre = prefix + '.' if prefix else ''
    out = {name: value(pre + name) for name, _ in module.named_children()}
    out.update({name: value(pre + name) for name, _ in module.named_parameters(recurse=False)})
    return {k: v for k, v in out.items() if v} if nonzero else out


def split_by_module(value: Callable[[str], int],
                    model: nn.Module,
                    prefix: str = '',
                    total: Optional[int] = None) -> Dict[str, Any]:
    """``total``, ``modules`` (top level, summing to the total), ``parts`` (the children of each head-like
    top-level module: an R-CNN's box/mask heads, Mask2Former's pixel decoder and transformer decoder),
    ``backbone``, ``branches`` (one value per branch; one branch for a plain backbone) and ``composition``.

    Args:
        value: statistic of the module (or parameter) of that dotted name.
        prefix: the model's own name in ``value``'s namespace.
        total: the whole model's value if it is not ``value(prefix)`` (a tracer may attribute some operators
            to no module); the difference goes to ``modules['other']``.
    """
    pre = prefix + '.' if prefix else ''
    out: Dict[str, Any] = {'total': value(prefix) if total is None else total}
    modules = _children(model, value, prefix)
    rest = out['total'] - sum(modules.values())
    if rest:
        modules[OTHER] = rest
    out['modules'] = modules
    out['parts'] = {
        name: _children(child, value, pre + name, nonzero=True)
        for name, child in model.named_children() if name not in _NOT_SPLIT and len(list(child.children())) > 1
    }
    backbone = getattr(model, 'backbone', None) if is_detector(model) else model
    if backbone is None:
        return out
    bb_name = pre + 'backbone' if is_detector(model) else prefix
    bb_pre = bb_name + '.' if bb_name else ''
    bb_total = value(bb_name) if is_detector(model) else out['total']
    containers = branch_containers(backbone)
    if containers:
        branches = [0] * int(backbone.num_backbones)
        for cname, container in containers.items():
            for k in range(len(container)):
                branches[k] += value(f'{bb_pre}{cname}.{k}')
    else:
        branches = [bb_total]
    out['backbone'] = bb_total
    out['branches'] = branches
    out['composition'] = bb_total - sum(branches)
    return out
