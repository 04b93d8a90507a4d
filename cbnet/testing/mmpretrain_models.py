"""mmpretrain's backbones through the composite: does a Dual ``CBNet`` of each one work, exactly?

Why: the mmpretrain adapters claim that every stage output equals what the single backbone returns. For every
backbone class in mmpretrain's registry, :func:`smallest_config` picks its smallest architecture (sized on the meta
device) in its detection form (every stage returned, spatial outputs), and :func:`check_mmpretrain_backbone`
checks it with :func:`~cbnet.testing.composite_check.check_composite` (``benchmarks/mmpretrain_sweep.py``).
"""
import copy
import inspect
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from .composite_check import STATUSES, check_composite
from .composite_check import markdown_report as _markdown_report
from .composite_check import note

__all__ = [
    'STATUSES', 'backbone_classes', 'smallest_config', 'check_mmpretrain_backbone', 'sweep_backbone', 'markdown_report'
]

#: registered classes that are not backbones of their own: run through their own sweep or not at all
NOT_BACKBONES = {
    'TIMMBackbone': 'a wrapper of timm models: see the timm sweep',
}


def backbone_classes() -> Dict[str, type]:
    """Every class of mmpretrain's MODELS registry defined in ``mmpretrain.models.backbones``, by name."""
    import mmpretrain.models  # noqa: F401 -- registers the backbones
    from mmpretrain.registry import MODELS
    return {
        name: cls
        for name, cls in sorted(MODELS.module_dict.items())
        if inspect.isclass(cls) and cls.__module__.startswith('mmpretrain.models.backbones')
    }


def _arch_candidates(cls: type) -> List[dict]:
    """The named architectures of ``cls`` (``arch_zoo``/``arch_settings`` keys: ``arch=`` names, or ResNet-style
    ``depth=`` numbers), or the defaults alone."""
    for table in ('arch_zoo', 'arch_settings'):
        names = getattr(cls, table, None)
        if isinstance(names, dict) and names:
            if all(isinstance(name, int) for name in names):
                return [dict(depth=name) for name in names]
            return [dict(arch=name) for name in names if isinstance(name, str)]
    return [{}]


@contextmanager
def meta_device() -> Iterator[None]:
    """Build modules on the meta device (no memory, no initialisation); ``torch.linspace`` stays on the CPU, since
    mmpretrain's backbones read their drop-path rates from it with ``.item()``."""
    linspace = torch.linspace

    def cpu_linspace(*args, **kwargs):
        kwargs.setdefault('device', 'cpu')
        return linspace(*args, **kwargs)

    torch.linspace = cpu_linspace
    try:
        with torch.device('meta'):
            yield
    finally:
        torch.linspace = linspace


def _count_on_meta(cfg: dict) -> Optional[int]:
    from mmdet.registry import MODELS
    try:
        with meta_device():
            return sum(p.numel() for p in MODELS.build(copy.deepcopy(cfg)).parameters())
    except Exception:  # noqa: B902 -- an architecture that does not build is not a candidate
        return None


def detection_options(cls: type, model: torch.nn.Module) -> dict:
    """Options that make ``cls`` a detection backbone: spatial outputs (no pooling before the norm, maps rather
    than tokens) of every unit the adapter composes (:meth:`LayerSequenceAdapter.every_unit_options`)."""
    from cbnet.models.backbones.adapters import adapter_for_class
    params = set()  # a subclass may pass its base's options on through **kwargs (ViTEVA02, DeiT)
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__).parameters
        params.update(name for name, p in signature.items() if p.kind is not p.VAR_KEYWORD)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.values()):
            break
    options = {}
    for flag, value in (('gap_before_final_norm', False), ('reshape_last_feat', True), ('out_type', 'featmap')):
        if flag in params:
            options[flag] = value
    adapter = adapter_for_class(cls)
    if adapter is not None and hasattr(adapter, 'every_unit_options'):
        options.update(adapter.every_unit_options(model))
    return options


def smallest_config(name: str, cls: type) -> Tuple[Optional[dict], Optional[int]]:
    """The config of ``cls``'s smallest architecture in its detection form and its parameter count (None, None
    when no architecture builds with the defaults)."""
    params = inspect.signature(cls.__init__).parameters.values()
    takes_init_cfg = any(p.name == 'init_cfg' or p.kind is p.VAR_KEYWORD for p in params)
    sizes = []
    for arch in _arch_candidates(cls):
        cfg = dict(type=f'mmpretrain.{name}', **arch, **(dict(init_cfg=None) if takes_init_cfg else {}))
        count = _count_on_meta(cfg)
        if count is not None:
            sizes.append((count, str(arch), cfg))
    if not sizes:
        return None, None
    count, _, cfg = min(sizes, key=lambda s: s[:2])
    from mmdet.registry import MODELS
    with meta_device():
        model = MODELS.build(copy.deepcopy(cfg))
    cfg.update(detection_options(cls, model))
    return cfg, count


def check_mmpretrain_backbone(cfg: dict, num_backbones: int = 2, timeout: int = 120) -> Dict[str, object]:
    """:func:`~cbnet.testing.composite_check.check_composite` of one mmpretrain backbone config."""
    from mmpretrain.registry import MODELS

    from cbnet.models.backbones.adapters import adapter_for_class, refusal_reason
    cls = MODELS.get(cfg['type'].split('.', 1)[1])
    result: Dict[str, object] = dict(config=cfg)
    reason = refusal_reason(cls)
    if reason is None and adapter_for_class(cls) is None:
        return dict(
            result,
            status='refused',
            stage='config',
            seconds=0.0,
            reason=f'no adapter: CBNet does not cut {cls.__name__} into stem and stages')
    return check_composite(cfg, num_backbones, timeout, result=result)


def sweep_backbone(name: str, cls: type, max_params: float = 60, timeout: int = 120) -> Dict[str, object]:
    """One row of the sweep: ``cls`` not a backbone, refused, larger than ``max_params`` millions (skipped), or
    its smallest architecture checked (:func:`check_mmpretrain_backbone`)."""
    from cbnet.models.backbones.adapters import refusal_reason
    if name in NOT_BACKBONES:
        return dict(backbone=name, status='skipped', reason=NOT_BACKBONES[name])
    reason = refusal_reason(cls)
    if reason is not None:  # refused whatever the architecture (some do not even build with their defaults)
        return dict(backbone=name, status='refused', reason=f'CBNet cannot compose mmpretrain.{name}: {reason}')
    cfg, size = smallest_config(name, cls)
    if cfg is None:
        return dict(backbone=name, status='skipped', reason='no architecture builds with the default arguments')
    arch = next((str(cfg[k]) for k in ('arch', 'depth') if k in cfg), 'default')
    base = dict(backbone=name, arch=arch, size=size)
    if size > max_params * 1e6:
        return dict(base, status='skipped', reason=f'over {max_params:g}M parameters')
    return dict(base, **check_mmpretrain_backbone(cfg, timeout=timeout))


def markdown_report(results: Sequence[Dict[str, object]], header: Sequence[str]) -> str:
    """Counts per status, every class's outcome, refusals with their reason."""
    columns = [
        ('backbone', lambda r: r['backbone']),
        ('architecture', lambda r: r.get('arch', '')),
        ('params (M)', lambda r: f"{r['size'] / 1e6:.1f}" if r.get('size') else ''),
        ('status', lambda r: r['status']),
        ('stages', lambda r: r.get('num_stages', '')),
        ('image', lambda r: r.get('image_size', '')),
        ('note', note),
    ]
    return _markdown_report(results, header, columns)
