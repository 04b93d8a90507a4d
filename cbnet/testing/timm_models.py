"""timm architectures through the composite: does a Dual ``TIMMBackbone`` of a timm model work, exactly?

Why: the timm adapter claims to cut any timm model that runs its modules in sequence, or whose forward loops over
one list of blocks or stages (ViTs, Hiera, MViTv2, ...), from ``feature_info`` alone. :func:`check_timm_model`
checks that claim for one architecture, :func:`smallest_per_module` picks one architecture per timm model module
(the smallest, sized on the meta device), so that a sweep covers every family of timm
(``benchmarks/timm_sweep.py``).
"""
import copy
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .backbones import perturb_connections
from .time_limit import time_limit

#: check outcomes, best first
STATUSES = ('ok', 'failed', 'refused', 'error', 'skipped')
STATUS_MEANING = {
    'ok': 'composite built; with the single model\'s weights and zero connections every branch returns exactly '
    'the single model\'s features; moved connections train every parameter the single model trains',
    'failed': 'built, but not exact or a parameter without gradient (a cbnet bug)',
    'refused': 'CBNet refuses the model with its reason (ValueError)',
    'error': 'another exception while building or running (timm, or a cbnet bug)',
    'skipped': 'not run (larger than the size limit)',
}


class _Timeout(Exception):
    pass


def timm_backbone(model_name: str, **kwargs) -> dict:
    """A ``TIMMBackbone`` config returning every timm feature at stride >= 4 (finer ones are in the stem)."""
    import timm
    cfg = dict(type='mmpretrain.TIMMBackbone', model_name=model_name, features_only=True, pretrained=False, **kwargs)
    with torch.device('meta'):
        info = timm.create_model(model_name, features_only=True, pretrained=False, **kwargs).feature_info
    cfg['out_indices'] = tuple(i for i in info.out_indices if info.info[i]['reduction'] >= 4)
    return cfg


def _grad_names(model: torch.nn.Module, outputs) -> set:
    sum(f.float().mean() for f in outputs).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None}


def check_timm_model(model_name: str, num_backbones: int = 2, timeout: int = 120, **kwargs) -> Dict[str, object]:
    """Build a composite of ``model_name`` (random weights) and check it against the single ``TIMMBackbone``:
    every branch loaded with the single model's weights returns exactly its features (NCHW) in eval mode, and in
    train mode, with the connections moved off zero, every parameter the single model trains gets a gradient.
    """
    result: Dict[str, object] = dict(model=model_name, status='', stage='config', reason='')
    start = time.time()
    try:
        with time_limit(timeout, _Timeout):
            _check(model_name, num_backbones, kwargs, result)
    except _Timeout:
        result.update(status='error', reason=f'over {timeout} s')
    except Exception as e:  # noqa: B902 -- a sweep reports every failure with its type
        result.update(status='error', reason=f'{type(e).__name__}: {e}')
    result['seconds'] = round(time.time() - start, 2)
    return result


def _check(model_name: str, num_backbones: int, kwargs: dict, result: Dict[str, object]) -> None:
    from mmdet.registry import MODELS
    inner = timm_backbone(model_name, **kwargs)
    result['stage'] = 'composite'
    try:
        model = MODELS.build(dict(type='CBNet', backbone=copy.deepcopy(inner), num_backbones=num_backbones))
    except ValueError as e:
        result.update(status='refused', reason=str(e))
        return
    single = MODELS.build(inner)
    for branch in model.branches:  # the branches after the first have no stem: not strict
        branch.load_state_dict(single.state_dict(), strict=False)
    size = model.adapter.probe_size(model.branches[0])
    x = torch.randn(2, 3, size, size)
    nhwc = model.adapter._channels_last(single)
    result.update(
        stage='eval',
        features=type(single.timm_model).__name__,
        image_size=size,
        num_stages=model.num_stages,
        out_indices=list(model.out_indices),
        nhwc=nhwc,
        params=sum(p.numel() for p in single.parameters()))
    model.eval(), single.eval()
    with torch.no_grad():
        expected = [f.permute(0, 3, 1, 2) if nhwc else f for f in single(x)]
        got = model(x)
    exact = len(got) == len(expected) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(got, expected))
    result['stage'] = 'train'
    model.train(), single.train()
    perturb_connections(model)
    trained = _grad_names(model, [f for branch in model(x).branches for f in branch])
    single_trained = _grad_names(single, single(x))
    # a branch parameter counts where the single model trains it (timm nets may hold unused ones); the rest all
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in trained and (
        not n.startswith('branches.') or n.split('.', 2)[2] in single_trained))
    result.update(exact=exact, without_gradient=missing[:5], status='ok' if exact and not missing else 'failed')
    if not exact:
        result['reason'] = "the composite at zero init does not return the single model's features"
    elif missing:
        result['reason'] = f'{len(missing)} parameters without gradient'


def smallest_per_module(modules: Optional[Sequence[str]] = None) -> Dict[str, Tuple[str, int]]:
    """Per timm model module (``resnet``, ``swin_transformer``, ...; all by default), its architecture with the
    fewest parameters among timm's own (not those registered from outside timm) and that count (models built on
    the meta device: no memory, no initialisation)."""
    import timm
    found = {}
    for module in modules or timm.list_modules():
        sizes = {}
        for name in timm.list_models(module=module):
            if not timm.models.model_entrypoint(name).__module__.startswith('timm.'):
                continue  # registered by someone else (cbnet.testing's tiny MViTv2): not one of timm's models
            with torch.device('meta'):
                sizes[name] = sum(p.numel() for p in timm.create_model(name, pretrained=False).parameters())
        if sizes:
            name = min(sizes, key=lambda n: (sizes[n], n))
            found[module] = (name, sizes[name])
    return found


def markdown_report(results: List[Dict[str, object]], header: Sequence[str]) -> str:
    """Counts per status, every architecture's outcome, refusals grouped by reason."""
    counts = {s: sum(r['status'] == s for r in results) for s in STATUSES}
    lines = list(header) + ['', '| status | architectures | meaning |', '|---|---|---|']
    lines += [f'| {s} | {counts[s]} | {STATUS_MEANING[s]} |' for s in STATUSES if counts[s]]
    lines += [
        '', '| timm module | architecture | params (M) | features-only net | status | stages | image | note |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for r in results:
        note = r['reason'].split('. ')[0].replace(
            '|', '/') if r['status'] != 'ok' else ('NHWC features' if r.get('nhwc') else '')
        lines.append(f"| {r['module']} | {r['model']} | {r['size'] / 1e6:.1f} | {r.get('features', '')} | "
                     f"{r['status']} | {r.get('num_stages', '')} | {r.get('image_size', '')} | {note[:160]} |")
    return '\n'.join(lines) + '\n'
