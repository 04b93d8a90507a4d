"""What an exported graph holds: its parameters, against the parameters the eval-mode model actually uses.

A CB detector in eval mode runs the lead path only (the assisting stages the lead reads, the composition, the
lead, the neck and heads once); its graph must hold exactly those parameters, no assisting neck or head and
no stage nobody reads.
"""
from typing import Dict, Set

import torch
from torch import nn

#: ``torch.onnx.export`` arguments that keep parameters as named initializers (no constant folding, no
#: conv/BN fusion), so that the graph can be compared with the model's parameter names
NAMED_PARAMETERS_EXPORT = dict(do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)


def graph_parameters(onnx_path: str, model: nn.Module) -> Dict[str, int]:
    """The initializers of the ONNX file that are parameters of ``model``: name -> number of elements."""
    import onnx
    params = dict(model.named_parameters())
    graph = onnx.load(onnx_path, load_external_data=False).graph
    found = {}
    for init in graph.initializer:
        if init.name in params:
            found[init.name] = params[init.name].numel()
    return found


def used_parameters(model: nn.Module, inputs: torch.Tensor, data_samples=None) -> Dict[str, int]:
    """The parameters the eval-mode model's tensor forward uses: name -> number of elements. A parameter is used
    when the output depends on it (it receives a gradient; frozen ones are probed too) or when its module runs
    (the RPN's parameters only choose the proposals, which are not differentiated)."""
    model.eval()
    params = dict(model.named_parameters())
    before = {name: p.requires_grad for name, p in params.items()}
    ran = set()
    hooks = [m.register_forward_pre_hook(lambda module, args: ran.add(module)) for m in model.modules()]
    try:
        for p in params.values():
            p.requires_grad_(True)
            p.grad = None
        outputs = model(inputs, data_samples, mode='tensor')
        total = sum(t.float().sum() for t in _tensors(outputs) if t.requires_grad)
        total.backward()
        used = {name for name, p in params.items() if p.grad is not None}
        for prefix, module in model.named_modules():
            if module in ran:
                used.update(f'{prefix}.{name}' if prefix else name
                            for name, _ in module.named_parameters(recurse=False))
        return {name: params[name].numel() for name in sorted(used)}
    finally:
        for hook in hooks:
            hook.remove()
        for name, p in params.items():
            p.grad = None
            p.requires_grad_(before[name])


def _tensors(node):
    if isinstance(node, torch.Tensor):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _tensors(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _tensors(value)


def parameter_count(names: Dict[str, int]) -> int:
    return sum(names.values())


def unexpected(graph: Dict[str, int], used: Dict[str, int]) -> Set[str]:
    """Parameters in the graph that the eval-mode model does not use (should be empty)."""
    return set(graph) - set(used)
