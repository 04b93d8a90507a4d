"""timm architectures through the composite: does a Dual ``TIMMBackbone`` of a timm model work, exactly?

Why: the timm adapter claims to cut any timm model that runs its modules in sequence, or whose forward loops over
one list of blocks or stages (ViTs, Hiera, MViTv2, ...), from ``feature_info`` alone. :func:`check_timm_model`
checks that claim for one architecture, :func:`smallest_per_module` picks one architecture per timm model module
(the smallest, sized on the meta device), so that a sweep covers every family of timm
(``benchmarks/timm_sweep.py``).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .composite_check import STATUSES, check_composite
from .composite_check import markdown_report as _markdown_report
from .composite_check import note

__all__ = ['STATUSES', 'timm_backbone', 'check_timm_model', 'smallest_per_module', 'markdown_report']


def timm_backbone(model_name: str, **kwargs) -> dict:
    """A ``TIMMBackbone`` config returning every timm feature at stride >= 4 (finer ones are in the stem)."""
    import timm
    cfg = dict(type='mmpretrain.TIMMBackbone', model_name=model_name, features_only=True, pretrained=False, **kwargs)
    with torch.device('meta'):
        info = timm.create_model(model_name, features_only=True, pretrained=False, **kwargs).feature_info
    cfg['out_indices'] = tuple(i for i in info.out_indices if info.info[i]['reduction'] >= 4)
    return cfg


def check_timm_model(model_name: str, num_backbones: int = 2, timeout: int = 120, **kwargs) -> Dict[str, object]:
    """Build a composite of ``model_name`` (random weights) and check it against the single ``TIMMBackbone``
    (:func:`~cbnet.testing.composite_check.check_composite`); timm's NHWC features are compared as NCHW."""
    result: Dict[str, object] = dict(model=model_name)
    try:
        inner = timm_backbone(model_name, **kwargs)
    except Exception as e:  # noqa: B902 -- a sweep reports every failure with its type
        result.update(status='error', stage='config', reason=f'{type(e).__name__}: {e}', seconds=0.0)
        return result

    def single_features(single, x):
        channels_last = _format_is_nhwc(single)
        return [f.permute(0, 3, 1, 2) if channels_last else f for f in single(x)]

    def describe(model, single):
        return dict(features=type(single.timm_model).__name__, nhwc=_format_is_nhwc(single))

    return check_composite(inner, num_backbones, timeout, single_features, describe, result)


def _format_is_nhwc(single) -> bool:
    fmt = getattr(single.timm_model, 'output_fmt', 'NCHW')
    return getattr(fmt, 'value', fmt) == 'NHWC'


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
    """Counts per status, every architecture's outcome, refusals with their reason."""
    columns = [
        ('timm module', lambda r: r['module']),
        ('architecture', lambda r: r['model']),
        ('params (M)', lambda r: f"{r['size'] / 1e6:.1f}"),
        ('features-only net', lambda r: r.get('features', '')),
        ('status', lambda r: r['status']),
        ('stages', lambda r: r.get('num_stages', '')),
        ('image', lambda r: r.get('image_size', '')),
        ('note', lambda r: note(r, 'NHWC features' if r.get('nhwc') else '')),
    ]
    return _markdown_report(results, header, columns)
