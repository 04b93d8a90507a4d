"""cbnetify: the composite-backbone (Dual/Triple CBNetV2) variant of any mmdet detector config.

The result is a *delta* on top of the source config, not a copy of it: the detector type becomes ``CB<Type>``
(assistant supervision), the backbone is wrapped as ``dict(type='CBNet', backbone=<the original backbone>)``
and ``cbnet`` joins ``custom_imports``. Everything else (neck, heads, data, schedule, the backbone's own
``init_cfg``/``frozen_stages``/``norm_eval``/``with_cp``) is inherited unchanged: the neck (if any) and the heads
are shared by all branches, and a ``Pretrained`` checkpoint of the inner backbone is loaded into every branch.
Two-stage detectors get ``assist_proposals='lead'`` (the official CBNetV2 training: the RoI heads of all branches
train on the lead's proposals). Grounding detectors (GLIP, Grounding DINO, MM-Grounding-DINO) get a top-level
``lang_model_name`` that feeds their text encoder (and GLIP's fusion head), and a header that says how to point it
at a local copy of the language model. Single-/two-stage detectors, DETR-style detectors (DETR, Deformable DETR,
DINO, ...), grounding detectors, MaskFormer/Mask2Former, instance segmentors (SOLO, CondInst, YOLACT, ...) and
neck-less (C4/DC5) configs are converted.

``cbnetify_delta`` returns that delta (what ``tools/cbnetify.py`` writes under ``_base_ = SRC``);
``cbnetify`` applies it to a :class:`~mmengine.config.Config` in memory, for scripts and notebooks.
"""
import copy
import textwrap
import warnings
from typing import List, Optional, Sequence, Union

from mmengine.config import Config, ConfigDict

CBNET_IMPORT = 'cbnet'
LAYER_DECAY_CONSTRUCTOR = 'LearningRateDecayOptimizerConstructor'
CB_LAYER_DECAY_CONSTRUCTOR = 'CBLearningRateDecayOptimizerConstructor'

AssistWeight = Union[float, Sequence[float]]


class CBNetifyError(ValueError):
    """The config cannot be made composite; the message says why and what to do instead."""


# -- public API --------------------------------------------------------------------------------------------------
def cbnetify_delta(cfg: Config,
                   num_backbones: int = 2,
                   composition: str = 'DHLC',
                   assist_weight: Optional[AssistWeight] = None,
                   del_stages: Optional[int] = None) -> dict:
    """The config entries that turn ``cfg`` (a merged mmdet detector config) into its CB variant.

    Args:
        cfg: the source config, as loaded by ``Config.fromfile`` (its ``_base_`` already merged).
        num_backbones: K >= 2 (2 = Dual, 3 = Triple).
        composition: ``DHLC`` (CBNetV2), ``AHLC``, ``SLC`` or ``ALLC``.
        assist_weight: loss weight of the assisting branches (one float, or K-1 values); default 0.5 as in
            CBNetV2.
        del_stages: stages the lead (and any branch after the first) drops and takes from the first branch;
            default: the official CBNetV2 choice for the family (1 for CNNs, 0 for Swin, whose official
            ``cb_del_stages=1`` only removes the patch embedding, 0 for plain ViTs, as CB-EVA02).

    Returns:
        A plain dict to merge into ``cfg`` (it carries ``_delete_=True`` where the source must not leak in).

    Raises:
        CBNetifyError: for configs that have no CB variant (DetectoRS RFP necks, semi-supervised wrappers, an
            unsupported backbone, already composite, bad arguments); the message says what to do.
    """
    _import_custom_modules(cfg)
    model = cfg.get('model')
    if not isinstance(model, dict) or 'type' not in model:
        raise CBNetifyError('the config has no `model=dict(type=...)`: give a detector config (e.g. '
                            'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py).')
    composition = _check_arguments(num_backbones, composition, assist_weight, del_stages)
    cb_type = _cb_detector_type(model)
    inner = _inner_backbone(model)
    backbone_cls = _backbone_class(inner)
    if del_stages is None:
        del_stages = _default_del_stages(backbone_cls)

    cb_backbone = dict(
        _delete_=True, type='CBNet', backbone=inner, num_backbones=num_backbones, composition=composition)
    if del_stages is not None:
        cb_backbone['del_stages'] = del_stages
    delta_model = dict(
        type=cb_type,
        backbone=cb_backbone,
        assist_loss_weights=_weights_value(0.5 if assist_weight is None else assist_weight))
    delta_model.update(_kind_options(cb_type))
    delta_model.update(_language_model_delta(model))
    delta = dict(custom_imports=_merged_custom_imports(cfg.get('custom_imports')), model=delta_model)
    if 'language_model' in delta_model:
        delta = dict({LANGUAGE_MODEL_VARIABLE: str(delta_model['language_model']['name'])}, **delta)

    optim_wrapper = _optim_wrapper_delta(cfg)
    if optim_wrapper:
        delta['optim_wrapper'] = optim_wrapper
    if cfg.get('load_from'):
        warnings.warn(f'cbnetify: load_from={cfg.load_from!r} is a single-backbone checkpoint. cbnet\'s tools/train.py '
                      'and tools/test.py expand it in memory (its backbone into every branch, the connections at '
                      'zero); other launchers (mmdet\'s tools, a Runner of your own) would skip its backbone keys: '
                      'convert it once with tools/model_converters/single_to_cb.py and point load_from at the result '
                      '(an official CBNetV2 checkpoint: tools/model_converters/cbnetv2_to_cbnet.py).')
    return delta


def cbnetify(cfg: Config,
             num_backbones: int = 2,
             composition: str = 'DHLC',
             assist_weight: Optional[AssistWeight] = None,
             del_stages: Optional[int] = None) -> Config:
    """A copy of ``cfg`` turned into its CB variant (``cfg`` is left unchanged); see :func:`cbnetify_delta`.

    Example:
        >>> cfg = Config.fromfile('configs/my_faster_rcnn.py')
        >>> cb_cfg = cbnetify(cfg, num_backbones=3)  # Triple-backbone Faster R-CNN
        >>> cb_cfg.model.type
        'CBFasterRCNN'
    """
    delta = cbnetify_delta(
        cfg, num_backbones=num_backbones, composition=composition, assist_weight=assist_weight, del_stages=del_stages)
    out = copy.deepcopy(cfg)
    out.merge_from_dict(copy.deepcopy(delta))  # mmengine's merge honours `_delete_`
    _import_custom_modules(out)  # registers cbnet, so that the result builds right away
    return out


# -- checks ------------------------------------------------------------------------------------------------------
def _check_arguments(num_backbones, composition, assist_weight, del_stages) -> str:
    """Raise for bad arguments; returns the composition's registered name (given in any case)."""
    from cbnet.models.backbones import COMPOSITIONS
    from cbnet.models.backbones.compositions import composition_name
    if not isinstance(num_backbones, int) or isinstance(num_backbones, bool) or num_backbones < 2:
        raise CBNetifyError(f'num_backbones must be an int >= 2 (2 = Dual, 3 = Triple), got {num_backbones!r}.')
    try:
        registered = composition_name(composition) if isinstance(composition, str) else None
    except KeyError:
        registered = None
    if registered is None:
        raise CBNetifyError(f'unknown composition {composition!r}; choose one of '
                            f'{", ".join(sorted(COMPOSITIONS.module_dict))} (DHLC is the CBNetV2 default).')
    if assist_weight is not None:
        weights = [assist_weight] if isinstance(assist_weight, (int, float)) else list(assist_weight)
        valid = all(isinstance(w, (int, float)) and w >= 0 for w in weights)
        if len(weights) not in (1, num_backbones - 1) or not valid:
            raise CBNetifyError(f'assist_weight must be one non-negative number or {num_backbones - 1} of them '
                                f'(one per assisting branch), got {assist_weight!r}.')
    if del_stages is not None and (not isinstance(del_stages, int) or del_stages < 0):
        raise CBNetifyError(f'del_stages must be an int >= 0, got {del_stages!r}.')
    return registered


def _registered(type_name: str):
    from mmdet.registry import MODELS
    try:
        return MODELS.get(type_name)
    except Exception:  # a scope whose package is not installed
        return None


def _cb_detector_type(model: dict) -> str:
    """``CB<Type>``, or a refusal that says why this detector has no composite variant."""
    from mmdet.models.detectors import SemiBaseDetector

    from cbnet.models.detectors import CB_DETECTORS, NOT_COMPOSABLE, AssistedDetectorMixin
    det_type = model['type']
    if not isinstance(det_type, str):
        raise CBNetifyError(f'model.type must be a registered name (a string), got {det_type!r}.')
    scope, _, name = det_type.rpartition('.')
    cls = _registered(det_type)
    if cls is None:
        raise CBNetifyError(f'model.type {det_type!r} is not a registered detector: import its package through '
                            "the config's custom_imports first.")
    if isinstance(cls, type) and issubclass(cls, AssistedDetectorMixin):
        raise CBNetifyError(f'the config is already composite (model.type={det_type!r}): cbnetify its '
                            'single-backbone source instead, or change num_backbones in this config.')
    if isinstance(cls, type) and issubclass(cls, SemiBaseDetector):
        raise CBNetifyError(f'{name} is a semi-supervised wrapper (teacher and student share model.detector): '
                            'cbnetify the detector config it wraps, then wrap the result (model.detector = the CB '
                            'config\'s model).')
    if cls.__name__ in NOT_COMPOSABLE:
        raise CBNetifyError(f'{name} has no CB variant: {NOT_COMPOSABLE[cls.__name__]}')
    _check_neck(model)
    cb_name = f'CB{cls.__name__}'
    if cb_name not in CB_DETECTORS:
        bases = ', '.join(c.__name__ for c in cls.__mro__[1:4])
        raise CBNetifyError(
            f'{name} (a {bases}) has no CB variant: cbnet supports subclasses of mmdet\'s SingleStageDetector, '
            'TwoStageDetector, DetectionTransformer and SingleStageInstanceSegmentor (see '
            'cbnet.models.detectors.CB_DETECTORS).')
    return f'{scope}.{cb_name}' if scope else cb_name


class ConfigVariable(str):
    """A string value that the written config names by a top-level variable (``lang_model_name``) instead of
    repeating it: in memory it is the value itself."""

    def __new__(cls, value: str, variable: str) -> 'ConfigVariable':
        obj = super().__new__(cls, value)
        obj.variable = variable
        return obj

    def __getnewargs__(self):  # copies and pickles keep the variable
        return str(self), self.variable


LANGUAGE_MODEL_VARIABLE = 'lang_model_name'


def _language_model_delta(model: dict) -> dict:
    """For GLIP / Grounding DINO: the language model's name, as the variable ``lang_model_name`` of the written
    config that feeds the text encoder (and GLIP's fusion head), so that one line points both at a local copy."""
    language_model = model.get('language_model')
    if not isinstance(language_model, dict):
        return {}
    name = language_model.get('name', 'bert-base-uncased')
    if not isinstance(name, str):
        return {}
    value = ConfigVariable(name, LANGUAGE_MODEL_VARIABLE)
    delta = dict(language_model=dict(name=value))
    head = model.get('bbox_head')
    if isinstance(head, dict) and isinstance(head.get('lang_model_name'), str):
        delta['bbox_head'] = dict(lang_model_name=value)
    return delta


def _check_neck(model: dict) -> None:
    """Every branch's features go through the same neck (none is fine: the heads then read the backbone)."""
    neck = model.get('neck')
    for stage in (neck if isinstance(neck, (list, tuple)) else [neck]):
        if isinstance(stage, dict) and stage.get('type') == 'RFP':
            raise CBNetifyError(
                'the neck is DetectoRS\'s RFP (recursive feature pyramid): it feeds the pyramid back into the '
                'backbone (rfp_forward of DetectoRS_ResNet) and runs the backbone again, which a composite '
                'backbone does not support. Use the SAC-only DetectoRS config instead, e.g. '
                'mmdet::detectors/cascade-rcnn_r50-sac_1x_coco.py (switchable atrous convolution in a plain '
                'ResNet, FPN neck).')


def _kind_options(cb_type: str) -> dict:
    """What the written config states explicitly for the detector's kind (the official CBNetV2 choices)."""
    from mmdet.models.detectors import TwoStageDetector
    if issubclass(_registered(cb_type), TwoStageDetector):
        return dict(assist_proposals='lead')
    return {}


def _inner_backbone(model: dict) -> dict:
    backbone = model.get('backbone')
    if not isinstance(backbone, dict) or not isinstance(backbone.get('type'), str):
        raise CBNetifyError('model.backbone must be a dict with a registered type name, got '
                            f'{backbone!r}.')
    backbone = backbone.to_dict() if isinstance(backbone, ConfigDict) else copy.deepcopy(dict(backbone))
    backbone.pop('_delete_', None)
    return backbone


def _backbone_class(backbone: dict) -> type:
    """The backbone's class, if cbnet has an adapter for it (or for one of its base classes)."""
    from cbnet.models.backbones import CBNet, supported_backbones
    supported = supported_backbones()
    cls = _registered(backbone['type'])
    if cls is None:
        raise CBNetifyError(f'backbone type {backbone["type"]!r} is not registered: import its package through '
                            "the config's custom_imports (e.g. 'mmpretrain.models' for 'mmpretrain.*' types).")
    if isinstance(cls, type) and issubclass(cls, CBNet):
        raise CBNetifyError(f'the backbone is already composite ({backbone["type"]}): cbnetify its '
                            'single-backbone source instead, or change num_backbones in this config.')
    family = next((c for c in getattr(cls, '__mro__', ()) if f'{c.__module__.split(".")[0]}.{c.__name__}' in supported),
                  None)
    if family is None:
        raise CBNetifyError(
            f'backbone {backbone["type"]!r} is not supported by CBNet. Supported families (and their '
            f'subclasses): {", ".join(supported)} (mmdet ResNet covers ResNetV1d, ResNeXt, Res2Net). Another '
            'family needs a stage adapter: see cbnet/models/backbones/adapters/base.py.')
    return cls


def _default_del_stages(backbone_cls: type) -> Optional[int]:
    """The official Swin models share only the patch embedding (0); other families: their adapter's default,
    or None where the adapter decides per built model (timm: 0 for plain ViTs, 1 for CNNs), which CBNet then
    does when the config leaves ``del_stages`` out."""
    from mmdet.models.backbones import SwinTransformer

    from .models.backbones.adapters import BackboneAdapter, adapter_for_class
    if issubclass(backbone_cls, SwinTransformer):
        return 0
    adapter = adapter_for_class(backbone_cls)
    if adapter is None:
        return 1
    if type(adapter).del_stages_default is not BackboneAdapter.del_stages_default:
        return None
    return adapter.default_del_stages


def _weights_value(assist_weight: AssistWeight):
    if isinstance(assist_weight, (int, float)):
        return float(assist_weight)
    weights = [float(w) for w in assist_weight]
    return weights[0] if len(weights) == 1 else weights


def _merged_custom_imports(existing) -> dict:
    """The source's custom_imports plus ``cbnet`` (a list replaces a list when configs merge, so keep both)."""
    out = dict(imports=[], allow_failed_imports=False)
    if existing:
        existing = existing.to_dict() if isinstance(existing, ConfigDict) else dict(existing)
        imports = existing.get('imports', [])
        out.update(existing)
        out['imports'] = [imports] if isinstance(imports, str) else list(imports)
    if CBNET_IMPORT not in out['imports']:
        out['imports'].append(CBNET_IMPORT)
    return out


def _optim_wrapper_delta(cfg: Config) -> dict:
    """mmdet's layer-wise lr decay (the ConvNeXt recipes) reads the plain backbone's class and parameter names
    and raises for a CBNet; cbnet's CB-aware subclass takes the same ``paramwise_cfg``."""
    optim_wrapper = cfg.get('optim_wrapper') or {}
    if optim_wrapper.get('constructor') != LAYER_DECAY_CONSTRUCTOR:
        return {}
    return dict(constructor=CB_LAYER_DECAY_CONSTRUCTOR)


def _import_custom_modules(cfg: Config) -> None:
    custom = cfg.get('custom_imports')
    if custom:
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**custom)


# -- the file the CLI writes -------------------------------------------------------------------------------------
LINE_WIDTH = 110


def render_cb_config(base: str, delta: dict, source_note: Optional[str] = None, notes: Sequence[str] = ()) -> str:
    """Python text of a config that inherits ``base`` and applies ``delta`` (short and readable)."""
    model = delta['model']
    k = model['backbone']['num_backbones']
    kind = {2: 'Dual', 3: 'Triple'}.get(k, f'{k}-backbone')
    lines: List[str] = [
        f'# {kind} (CBNetV2) variant of {source_note or base}, written by tools/cbnetify.py.',
        f'# {model["type"]}: the assisting branches\' losses (x {model["assist_loss_weights"]}) are logged as '
        'assist<k>_*. The original backbone',
        '# runs in every branch and its init_cfg checkpoint is loaded into each; the neck (if any) and heads are '
        'shared.',
    ]
    if LANGUAGE_MODEL_VARIABLE in delta:
        from .models.detectors.grounding import language_model_help
        lines += textwrap.wrap(
            f'Language model: {language_model_help(delta[LANGUAGE_MODEL_VARIABLE])}',
            LINE_WIDTH,
            initial_indent='# ',
            subsequent_indent='#   ')
    for note in notes:
        lines += textwrap.wrap(note, LINE_WIDTH, initial_indent='# NOTE: ', subsequent_indent='#   ')
    lines += [f'_base_ = {base!r}', '']
    lines += [f'{key} = {format_value(value, 0)}' for key, value in delta.items()]
    return '\n'.join(lines) + '\n'


def format_value(value, indent: int) -> str:
    """``dict(a=1, b=[...])`` in config style: one line when it fits, else one item per line (keys keep their
    order, unlike yapf-formatted ``Config.pretty_text``)."""
    if isinstance(value, dict) and all(isinstance(k, str) and k.isidentifier() for k in value):
        items, opening, closing = [f'{k}={format_value(v, indent + 4)}' for k, v in value.items()], 'dict(', ')'
    elif isinstance(value, dict):
        items, opening, closing = [f'{k!r}: {format_value(v, indent + 4)}' for k, v in value.items()], '{', '}'
    elif isinstance(value, (list, tuple)):
        items = [format_value(v, indent + 4) for v in value]
        opening, closing = ('[', ']') if isinstance(value, list) else ('(', ')')
        if isinstance(value, tuple) and len(value) == 1:
            items[0] += ','
    elif isinstance(value, ConfigVariable):
        return value.variable
    else:
        return repr(value)
    one_line = opening + ', '.join(items) + closing
    if indent + len(one_line) <= LINE_WIDTH and '\n' not in one_line:
        return one_line
    pad = ' ' * (indent + 4)
    return opening + '\n' + ''.join(f'{pad}{item},\n' for item in items) + ' ' * indent + closing
