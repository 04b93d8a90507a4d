"""Does a Dual ``CBNet`` of one backbone config work, exactly? The check behind the architecture sweeps.

Why: an adapter claims to cut a family into stem and stages such that every stage output equals what the single
backbone returns. :func:`check_composite` checks that claim for one config, with random weights: every branch
loaded with the single backbone's weights returns exactly its features at zero init, and once the connections
move, every parameter the single backbone trains gets a gradient. The sweeps (timm: :mod:`.timm_models`,
mmpretrain: :mod:`.mmpretrain_models`) run it over every architecture and report with :func:`markdown_report`.
"""
import copy
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .backbones import perturb_connections
from .time_limit import time_limit

#: check outcomes, best first
STATUSES = ('ok', 'failed', 'refused', 'error', 'skipped')
STATUS_MEANING = {
    'ok': 'composite built; with the single model\'s weights and zero connections every branch returns exactly '
    'the single model\'s features; moved connections train every parameter the single model trains',
    'failed': 'built, but not exact or a parameter without gradient (a cbnet bug)',
    'refused': 'CBNet refuses the model with its reason (ValueError)',
    'error': 'another exception while building or running (the library, or a cbnet bug)',
    'skipped': 'not run (larger than the size limit, or not a backbone)',
}

#: the single backbone's features as the composite returns them (e.g. NHWC timm features made NCHW)
SingleFeatures = Callable[[nn.Module, torch.Tensor], List[torch.Tensor]]
#: extra result fields describing the built pair (composite, single)
Describe = Callable[[nn.Module, nn.Module], Dict[str, object]]


class _Timeout(Exception):
    pass


def _grad_names(model: nn.Module, outputs) -> set:
    sum(f.float().mean() for f in outputs).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None}


def check_composite(inner: dict,
                    num_backbones: int = 2,
                    timeout: int = 120,
                    single_features: Optional[SingleFeatures] = None,
                    describe: Optional[Describe] = None,
                    result: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """Build ``CBNet(backbone=inner)`` and check it against the single backbone (see the module docstring).

    Returns ``result`` updated with ``status`` (one of :data:`STATUSES`), ``stage`` (where it stopped),
    ``reason``, ``image_size``, ``num_stages``, ``out_indices``, ``params``, ``exact``, ``without_gradient``
    and ``seconds``.
    """
    result = dict(result or {})
    result.update(status='', stage='config', reason='')
    start = time.time()
    try:
        with time_limit(timeout, _Timeout):
            _check(inner, num_backbones, single_features or (lambda single, x: list(single(x))), describe, result)
    except _Timeout:
        result.update(status='error', reason=f'over {timeout} s')
    except Exception as e:  # noqa: B902 -- a sweep reports every failure with its type
        result.update(status='error', reason=f'{type(e).__name__}: {e}')
    result['seconds'] = round(time.time() - start, 2)
    return result


def _check(inner: dict, num_backbones: int, single_features: SingleFeatures, describe: Optional[Describe],
           result: Dict[str, object]) -> None:
    from mmdet.registry import MODELS
    result['stage'] = 'composite'
    try:
        model = MODELS.build(dict(type='CBNet', backbone=copy.deepcopy(inner), num_backbones=num_backbones))
    except ValueError as e:
        result.update(status='refused', reason=str(e))
        return
    single = MODELS.build(copy.deepcopy(inner))
    weights = single.state_dict()
    for branch in model.branches:  # only what the branch has: a family's load hooks read the modules of a key
        own = branch.state_dict()
        branch.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)
    size = model.adapter.probe_size(model.branches[0])
    x = torch.randn(2, 3, size, size)
    result.update(
        stage='eval',
        image_size=size,
        num_stages=model.num_stages,
        out_indices=list(model.out_indices),
        params=sum(p.numel() for p in single.parameters()))
    if describe is not None:
        result.update(describe(model, single))
    model.eval(), single.eval()
    with torch.no_grad():
        expected = single_features(single, x)
        got = model(x)
    exact = len(got) == len(expected) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(got, expected))
    result['stage'] = 'train'
    model.train(), single.train()
    perturb_connections(model)
    trained = _grad_names(model, [f for branch in model(x).branches for f in branch])
    single_trained = _grad_names(single, single_features(single, x))
    # a branch parameter counts where the single model trains it (some hold unused ones); the rest all
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in trained and (
        not n.startswith('branches.') or n.split('.', 2)[2] in single_trained))
    result.update(exact=exact, without_gradient=missing[:5], status='ok' if exact and not missing else 'failed')
    if not exact:
        result['reason'] = "the composite at zero init does not return the single model's features"
    elif missing:
        result['reason'] = f'{len(missing)} parameters without gradient'


def status_counts(results: Sequence[Dict[str, object]]) -> Dict[str, int]:
    return {s: sum(r['status'] == s for r in results) for s in STATUSES}


#: a report column: its title and the cell of one result
Column = Tuple[str, Callable[[Dict[str, object]], object]]


def note(result: Dict[str, object], ok_note: str = '') -> str:
    """The first sentence of the reason (table-safe) for a result that is not ok, else ``ok_note``."""
    if result['status'] == 'ok':
        return ok_note
    return str(result['reason']).split('. ')[0].replace('|', '/').replace('\n', ' ')[:160]


def markdown_report(results: Sequence[Dict[str, object]], header: Sequence[str], columns: Sequence[Column]) -> str:
    """Counts per status, then one row per result with ``columns``."""
    counts = status_counts(results)
    lines = list(header) + ['', '| status | architectures | meaning |', '|---|---|---|']
    lines += [f'| {s} | {counts[s]} | {STATUS_MEANING[s]} |' for s in STATUSES if counts[s]]
    lines += ['', '| ' + ' | '.join(title for title, _ in columns) + ' |', '|' + '---|' * len(columns)]
    for r in results:
        lines.append('| ' + ' | '.join(str(cell(r)) for _, cell in columns) + ' |')
    return '\n'.join(lines) + '\n'
