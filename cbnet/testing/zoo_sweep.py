"""Every config of mmdet's zoo through ``cbnetify``: refused (with its reason) or built tiny and run.

Why: cbnetify claims to convert any mmdet detector config. The sweep checks that claim config by config. For
each detection / instance / panoptic config of ``mmdet/.mim/configs`` (``_base_`` excluded):

1. ``cbnetify`` the full config (its refusal, if any, is the answer for that config);
2. shrink its model with :func:`cbnet.testing.zoo.tiny_zoo_detector` (same detector, neck and head types; a
   tiny ResNet-18 backbone, narrow widths, few layers, queries, proposals, RoIs; 64 px images) and run the
   PLAIN tiny detector: one loss + backward and one predict. If the plain model fails, the config is
   ``untestable`` (a limit of the shrinking, of mmdet or of a missing package, not of cbnet);
3. ``cbnetify`` the tiny config, build it and check: the lead's losses and the same losses for every
   assisting branch (``assist<k>_*``), a finite total, a gradient for every trainable parameter (except those
   the plain detector leaves unused too), and predict in eval mode.

Models that are identical once shrunk (schedule or data variants of one recipe) are run once; the others
point to it (``same_as``).
"""
import copy
import gc
import json
import logging
import os
import os.path as osp
import re
import time
import traceback
import warnings
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch

from ..utils.configs import package_config_dir
from .time_limit import time_limit

#: the checkout or install that holds cbnet (error locations are shown relative to it)
_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))) + os.sep

#: result statuses, best first
STATUSES = ('ok', 'failed', 'refused', 'untestable', 'unloadable', 'skipped')
#: what each status means (the results' legend)
STATUS_MEANING = {
    'ok': 'CB variant built; lead + assisting losses, all gradients, predict',
    'failed': 'the plain tiny detector runs but its CB variant does not (a cbnet bug)',
    'refused': 'cbnetify refuses the config (its reason is given)',
    'untestable': 'the plain tiny detector itself fails (shrinking, mmdet or a missing package)',
    'unloadable': 'the config does not load (Config.fromfile)',
    'skipped': 'not a detector config (tracking, ReID, video models)',
}

#: how a config is checked (the results file repeats it)
METHOD = (
    'Each config is loaded and cbnetified (a refusal is its result). Its model is then made tiny with '
    '`cbnet.testing.zoo.tiny_zoo_detector`: the detector, neck and head types stay; the backbone becomes a tiny '
    'ResNet-18 with the original\'s stage layout (strides, dilations, returned stages; backbone options such as DCN '
    'or plugins are not kept, so those families test their detector, not their backbone); widths, layers, queries, '
    'proposals and sampled RoIs shrink; at most 20 proposals / detections at test time; 2 random images of 64 px '
    '(128 or 384 px if 64 fails). Grounding detectors (GLIP, Grounding DINO) get the tiny local BERT of '
    '`cbnet.testing.language_models`, a few class names as their text prompt (one image where the config chunks '
    'its prompt), GLIP its 256-wide head and evaluation-only configs the training settings of their family\'s '
    'fine-tuning configs. The plain tiny detector runs one training step and one predict first: if it '
    'fails, the config is *untestable* (not a cbnet problem). Then its CB variant (`cbnetify` of the tiny config, '
    'K as given) must give the lead\'s losses and the same losses for every assisting branch, a finite total, a '
    'gradient for every trainable parameter (except those the plain detector leaves unused too) and predictions in '
    'eval mode. Configs whose tiny models are identical run once (`same as`).')


@dataclass
class SweepResult:
    """The outcome for one config (relative to mmdet's config folder)."""

    config: str
    family: str
    detector: str = ''
    backbone: str = ''
    status: str = ''
    stage: str = ''  # where it stopped (failed/untestable/unloadable)
    reason: str = ''  # cbnetify's refusal or the error
    same_as: str = ''  # the config whose identical tiny model was run instead
    seconds: float = 0.0
    details: Dict[str, object] = field(default_factory=dict)  # loss keys, image size, unused parameters


class StageError(Exception):
    """A step of the check failed: ``stage`` names it, the message says what happened."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class OutOfTime(StageError):
    """A phase of the check ran past its time limit (not retried at another image size)."""


# -- the zoo ------------------------------------------------------------------------------------------------
def zoo_configs(root: Optional[str] = None) -> List[str]:
    """Every config of mmdet's zoo outside ``_base_`` folders, relative to ``root``, sorted."""
    root = root or package_config_dir('mmdet')
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ('_base_', '__pycache__'))
        found += [osp.relpath(osp.join(folder, f), root) for f in files if f.endswith('.py')]
    return sorted(found)


def family_of(rel: str) -> str:
    """The zoo folder of a config: mmdet groups configs by method (``faster_rcnn``, ``dino``, ...)."""
    return rel.split('/', 1)[0] if '/' in rel else '.'


# -- one config -------------------------------------------------------------------------------------------------
def sweep_config(rel: str,
                 num_backbones: int = 2,
                 seen: Optional[Dict[str, SweepResult]] = None,
                 timeout: int = 300) -> SweepResult:
    """Check one zoo config (see the module doc). ``seen`` maps tiny-model keys to earlier results.

    ``timeout`` (seconds) holds for each of the three phases: loading + cbnetify, the plain tiny detector, its
    CB variant. A plain detector that runs out of time makes the config untestable, a CB variant a failure.
    """
    from mmengine.registry import DefaultScope
    result = SweepResult(config=rel, family=family_of(rel))
    start = time.time()
    try:
        with _quiet(), DefaultScope.overwrite_default_scope('mmdet'):
            with _time_limit(timeout, 'load'):
                cfg = _load_and_convert(result, num_backbones)
            if cfg is None:
                return _finish(result, start, result.status, result.stage, result.reason)
            return _check_tiny(result, cfg, num_backbones, seen, start, timeout)
    except StageError as e:  # out of time
        status = 'untestable' if e.stage.startswith('plain-') else 'failed' if result.detector else 'unloadable'
        return _finish(result, start, status, e.stage, str(e))
    finally:
        gc.collect()


def _load_and_convert(result: SweepResult, num_backbones: int):
    """The loaded config, or None with ``result``'s status set (unloadable, skipped, refused, failed)."""
    from mmengine.config import Config

    from ..cbnetify import CBNetifyError, cbnetify
    from ..utils.configs import resolve_config_path
    try:
        cfg = Config.fromfile(resolve_config_path('mmdet::' + result.config))
    except Exception as e:  # noqa: BLE001  (any error of the source config is its result)
        result.status, result.stage, result.reason = 'unloadable', 'load', _describe(e)
        return None
    model = cfg.get('model') or {}
    result.detector = str(model.get('type', ''))
    result.backbone = str((model.get('backbone') or {}).get('type', ''))
    not_detector = _not_a_detector(result.detector)
    if not_detector:
        result.status, result.reason = 'skipped', not_detector
        return None
    try:
        cbnetify(cfg, num_backbones=num_backbones)
    except CBNetifyError as e:
        result.status, result.stage, result.reason = 'refused', 'cbnetify', str(e)
        return None
    except Exception as e:  # noqa: BLE001
        result.status, result.stage, result.reason = 'failed', 'cbnetify', _describe(e)
        return None
    return cfg


def _check_tiny(result: SweepResult, cfg, num_backbones: int, seen: Optional[dict], start: float,
                timeout: int) -> SweepResult:
    from .zoo import tiny_zoo_detector
    try:
        plain_cfg = tiny_zoo_detector(cfg.model)
        few_detections(plain_cfg)
    except Exception as e:  # noqa: BLE001
        return _finish(result, start, 'untestable', 'shrink', _describe(e))
    needs = batch_needs(plain_cfg)
    key = json.dumps([plain_cfg, needs, num_backbones], sort_keys=True, default=str)
    if seen is not None and key in seen:
        earlier = seen[key]
        result.same_as = earlier.same_as or earlier.config
        result.details = dict(earlier.details)
        return _finish(result, start, earlier.status, earlier.stage, earlier.reason)
    try:
        with _time_limit(timeout, 'plain-timeout'):
            unused = run_plain(plain_cfg, needs)
    except StageError as e:
        return _remember(seen, key, _finish(result, start, 'untestable', e.stage, str(e)))
    try:
        with _time_limit(timeout, 'timeout'):
            result.details = run_composite(plain_cfg, needs, num_backbones, unused)
        outcome = _finish(result, start, 'ok', '', '')
    except StageError as e:
        outcome = _finish(result, start, 'failed', e.stage, str(e))
    return _remember(seen, key, outcome)


def few_detections(model_cfg: dict, proposals: int = 20, detections: int = 20) -> None:
    """Few test-time proposals and detections (in place): with thousands of classes (V3Det: 13204) the
    R-CNN heads' test-time box decoding over 1000 proposals alone takes minutes on a CPU."""
    test_cfg = model_cfg.get('test_cfg') or {}
    for stage in ('rpn', 'rcnn', None):
        nodes = test_cfg.get(stage) if stage else test_cfg
        for node in (nodes if isinstance(nodes, list) else [nodes]):
            if not isinstance(node, dict):
                continue
            if isinstance(node.get('max_per_img'), int):
                node['max_per_img'] = min(node['max_per_img'], proposals if stage == 'rpn' else detections)
            if isinstance(node.get('nms_pre'), int):
                node['nms_pre'] = min(node['nms_pre'], 100)


def _remember(seen: Optional[dict], key: str, result: SweepResult) -> SweepResult:
    if seen is not None:
        seen[key] = result
    return result


def _finish(result: SweepResult, start: float, status: str, stage: str, reason: str) -> SweepResult:
    result.status, result.stage, result.reason = status, stage, reason
    result.seconds = round(time.time() - start, 2)
    return result


def _not_a_detector(type_name: str) -> str:
    """Why a config is no detector config ('' if it is one)."""
    from mmdet.models.detectors.base import BaseDetector
    from mmdet.registry import MODELS
    if not type_name:
        return 'no model in this config (shared settings: schedules, data, test-time augmentation)'
    try:
        cls = MODELS.get(type_name)
    except Exception:  # noqa: BLE001  (a scope whose package is not installed)
        cls = None
    if cls is None:
        return f'model.type {type_name!r} is not a registered model'
    if isinstance(cls, type) and not issubclass(cls, BaseDetector):
        bases = ', '.join(c.__name__ for c in cls.__mro__[1:3])
        return f'{cls.__name__} is not a detector ({bases})'
    return ''


# -- the plain and the composite tiny detectors ---------------------------------------------------------------
def batch_needs(model_cfg: dict) -> dict:
    """What the data samples of ``model_cfg`` must carry: masks, semantic maps, proposals, class count."""
    from .language_models import is_grounding
    text = str(model_cfg)
    panoptic = 'num_stuff_classes' in text and "'num_stuff_classes': 0" not in text
    grounding = is_grounding(model_cfg)  # classes are the words of the text prompt: a few (within the head's)
    num_classes = _num_classes(model_cfg)
    chunked = ((model_cfg.get('test_cfg') or {}).get('chunked_size') or -1) > 0
    return dict(
        with_mask=any(key in text for key in ("'mask_head'", "'panoptic_head'", "'loss_mask'")),
        with_semantic="'semantic_head'" in text or panoptic,
        num_classes=min(GROUNDING_PROMPT_CLASSES, num_classes) if grounding else max(2, num_classes),
        text_prompts=grounding,
        batch_size=1 if grounding and chunked else 2)  # chunked prompts (LVIS): mmdet predicts one image at a time


#: classes of the text prompt given to grounding detectors (GLIP, Grounding DINO)
GROUNDING_PROMPT_CLASSES = 3


def _num_classes(model_cfg: dict) -> int:
    """The detector's object classes (things for panoptic models): labels beyond them break the losses."""
    for key in ('panoptic_head', 'roi_head', 'bbox_head', 'mask_head', 'rpn_head'):
        node = model_cfg.get(key)
        found = _find_int(node, ('num_things_classes', 'num_classes'))
        if found is not None:
            return found
    return 80


def _find_int(node, names: Tuple[str, ...]) -> Optional[int]:
    if isinstance(node, dict):
        for name in names:
            if isinstance(node.get(name), int):
                return node[name]
        for value in node.values():
            found = _find_int(value, names)
            if found is not None:
                return found
    elif isinstance(node, (list, tuple)):
        for item in node:
            found = _find_int(item, names)
            if found is not None:
                return found
    return None


#: 64 px first; larger where the coarsest levels are too small for a head (mmcv's CPU deformable convolution needs
#: maps of >= 3x3: DDOD's stride-128 level at 384 px)
IMAGE_SIZES = (64, 128, 384)


def sweep_batch(model, needs: dict, size: int, training: bool, seed: int = 0) -> dict:
    """A preprocessed batch of 2 (``needs['batch_size']``) random images with 3 objects each, labels within the
    model's classes (and, for grounding detectors, the class names as text prompt)."""
    from mmdet.models.detectors import TwoStageDetector
    from mmdet.testing import demo_mm_inputs
    from mmengine.structures import InstanceData
    torch.manual_seed(seed)
    batch_size = needs.get('batch_size', 2)
    packed = demo_mm_inputs(
        batch_size,
        image_shapes=[(3, size, size)] * batch_size,
        num_items=[3] * batch_size,
        num_classes=max(2, needs['num_classes']),
        with_mask=needs['with_mask'],
        with_semantic=needs['with_semantic'])
    batch = model.data_preprocessor(packed, training)
    if needs.get('text_prompts'):  # grounding detectors: the class names as the text prompt
        from .language_models import add_text_prompts, prompt_words
        add_text_prompts(batch['data_samples'], prompt_words(needs['num_classes']))
        for sample in batch['data_samples']:  # mmdet's demo labels start at 1: one-class heads need 0
            sample.gt_instances.labels = sample.gt_instances.labels % needs['num_classes']
    if isinstance(model, TwoStageDetector) and not model.with_rpn:  # Fast R-CNN: precomputed proposals
        g = torch.Generator().manual_seed(seed)
        for sample in batch['data_samples']:
            gt = sample.gt_instances.bboxes
            boxes = torch.cat([gt + torch.randn(gt.shape, generator=g) * 2, gt])
            sample.proposals = InstanceData(bboxes=boxes, scores=torch.ones(len(boxes)))
    return batch


def _step(stage: str, fn: Callable):
    try:
        return fn()
    except StageError:
        raise
    except Exception as e:  # noqa: BLE001  (every error is a result)
        raise StageError(stage, _describe(e)) from e


def _build(model_cfg: dict, stage: str):
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict

    def build():
        torch.manual_seed(0)
        model = MODELS.build(ConfigDict(copy.deepcopy(model_cfg)))
        model.init_weights()
        return model

    return _step(stage, build)


def _train_step(model, needs: dict, size: int, prefix: str):
    model.train()
    batch = _step(f'{prefix}data', lambda: sweep_batch(model, needs, size, training=True))
    torch.manual_seed(0)
    losses = _step(f'{prefix}loss', lambda: model.loss(batch['inputs'], batch['data_samples']))
    total, _ = _step(f'{prefix}loss', lambda: model.parse_losses(losses))
    if not torch.isfinite(total):
        raise StageError(f'{prefix}loss', f'total loss {float(total)} is not finite')
    _step(f'{prefix}backward', total.backward)
    return losses


def _predict(model, needs: dict, size: int, stage: str) -> None:
    model.eval()
    batch = _step(stage, lambda: sweep_batch(model, needs, size, training=False))
    with torch.no_grad():
        results = _step(stage, lambda: model.predict(batch['inputs'], batch['data_samples']))
    if len(results) != needs.get('batch_size', 2) or not any(f in results[0]
                                                             for f in ('pred_instances', 'pred_panoptic_seg')):
        raise StageError(stage, f'predict returned {len(results)} samples without predictions')


def run_plain(plain_cfg: dict, needs: dict) -> set:
    """Train step + predict of the plain tiny detector; returns the parameters it leaves without gradient.

    Raises:
        StageError: ``plain-<stage>`` where the plain detector fails at every image size tried.
    """
    error = None
    for size in IMAGE_SIZES:
        model = _build(plain_cfg, 'plain-build')
        try:
            _train_step(model, needs, size, 'plain-')
            unused = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
            _predict(model, needs, size, 'plain-predict')
            needs['size'] = size
            return unused
        except OutOfTime:
            raise
        except StageError as e:
            error = error or e
        finally:
            del model
    raise error


def run_composite(plain_cfg: dict, needs: dict, num_backbones: int, unused_in_plain: set) -> dict:
    """The CB variant of the tiny detector through the checks of the module doc; returns what it saw.

    Raises:
        StageError: the first check that fails.
    """
    from mmengine.config import Config

    from ..cbnetify import cbnetify
    from .zoo import plain_parameter_name
    source = Config(dict(model=copy.deepcopy(plain_cfg)))
    cb_cfg = _step('cbnetify-tiny', lambda: cbnetify(source, num_backbones=num_backbones).model.to_dict())
    model = _build(cb_cfg, 'build')
    size = needs['size']
    losses = _train_step(model, needs, size, '')
    lead = sorted(k for k in losses if not k.startswith('assist'))
    if not any('loss' in k for k in lead):
        raise StageError('loss', f'no lead losses among {sorted(losses)}')
    for k in range(1, num_backbones):
        missing = [key for key in lead if f'assist{k}_{key}' not in losses]
        if missing:
            raise StageError('assist-losses', f'assisting branch {k} lacks {", ".join(missing[:6])}')
    no_grad = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and (
        plain_parameter_name(n) not in unused_in_plain or '.composition.' in n))
    if no_grad:
        raise StageError(
            'gradients', f'{len(no_grad)} trainable parameters got no gradient: '
            f'{", ".join(no_grad[:5])}{" ..." if len(no_grad) > 5 else ""}')
    _predict(model, needs, size, 'predict')
    del model
    return dict(
        type=cb_cfg['type'], size=size, lead_losses=len(lead), losses=len(losses), unused_in_plain=len(unused_in_plain))


# -- helpers ------------------------------------------------------------------------------------------------
def _describe(error: BaseException) -> str:
    """``Type: first line`` of an error, with where in the source it was raised (last frame); file paths are
    shown relative to site-packages or the checkout, so that results do not depend on where they were run."""
    message = str(error).strip().splitlines()
    frames = traceback.extract_tb(error.__traceback__)
    where = f' [{_short_path(frames[-1].filename)}:{frames[-1].lineno}]' if frames else ''
    first = _ABSOLUTE_PATH.sub(lambda m: _short_path(m.group(0)), message[0][:300]) if message else ''
    return f'{type(error).__name__}: {first}{where}'


#: an absolute path inside an error message
_ABSOLUTE_PATH = re.compile(r'/[^\s\'"]+')


def _short_path(path: str) -> str:
    """``path`` after its ``site-packages/``, relative to the checkout, or unchanged."""
    if 'site-packages/' in path:
        return path.split('site-packages/')[-1]
    if path.startswith(_REPO_ROOT):
        return osp.relpath(path, _REPO_ROOT)
    return path


def _time_limit(seconds: int, stage: str):
    """Raise ``OutOfTime(stage)`` when the block runs longer than ``seconds``."""
    return time_limit(seconds, lambda: OutOfTime(stage, f'took more than {seconds} s'))


@contextmanager
def _quiet():
    """mmengine logs every initialiser of every module, mmdet warns about deprecated arguments."""
    from mmengine.logging import MessageHub, MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    hub = MessageHub.get_current_instance()  # a Runner sets these; TOOD reads the epoch, BoxInst the iteration
    hub.update_info('epoch', 0)
    hub.update_info('iter', 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


# -- summaries ------------------------------------------------------------------------------------------------
def cause_of(result: SweepResult) -> str:
    """The reason without the numbers and names that differ between configs: groups failures by cause."""
    reason = re.sub(r'\b\d+(\.\d+)?\b', 'N', result.reason)
    reason = re.sub(r"'[^']*'", "'...'", reason) if result.status == 'skipped' else reason
    return f'{result.stage}: {reason}' if result.stage else reason


def summarize(results: Iterable[SweepResult]) -> dict:
    """Totals per status and per family, and the non-ok results grouped by cause."""
    results = list(results)
    families: Dict[str, Counter] = defaultdict(Counter)
    for r in results:
        families[r.family][r.status] += 1
    causes: Dict[str, Dict[str, List[str]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.status != 'ok':
            causes[r.status][cause_of(r)].append(r.config)
    return dict(
        configs=len(results),
        totals={s: sum(r.status == s for r in results)
                for s in STATUSES},
        families={
            name: dict(counts)
            for name, counts in sorted(families.items())
        },
        causes={
            status: dict(sorted(by.items(), key=lambda kv: -len(kv[1])))
            for status, by in causes.items()
        },
    )


def markdown_report(results: List[SweepResult], summary: dict, header: Dict[str, str]) -> str:
    """The results file: how it was run, totals, families, causes, and one row per config."""
    lines = ['# cbnetify over the mmdet zoo', '']
    lines += [f'- {key}: {value}' for key, value in header.items()]
    lines += ['', METHOD]
    lines += ['', '| status | meaning | configs |', '|---|---|---|']
    lines += [f'| {s} | {STATUS_MEANING[s]} | {summary["totals"][s]} |' for s in STATUSES]
    lines += [
        f'| all | | {summary["configs"]} |', '', '## Per family', '', '| family | ' + ' | '.join(STATUSES) + ' |',
        '|---|' + '---|' * len(STATUSES)
    ]
    for name, counts in summary['families'].items():
        lines.append(f'| {name} | ' + ' | '.join(str(counts.get(s, 0) or '') for s in STATUSES) + ' |')
    for status in ('failed', 'untestable', 'refused', 'unloadable', 'skipped'):
        by_cause = summary['causes'].get(status)
        if not by_cause:
            continue
        lines += ['', f'## {status} ({summary["totals"][status]}), by cause', '']
        for cause, configs in by_cause.items():
            more = f' and {len(configs) - 8} more' if len(configs) > 8 else ''
            shown = ', '.join(f'`{c}`' for c in configs[:8]) + more
            lines.append(f'- **{len(configs)}** x {_md(_first_sentence(cause))}: {shown}')
    lines += [
        '', '## Every config', '', '| config | detector | backbone | status | stage | reason / same model as |',
        '|---|---|---|---|---|---|'
    ]
    for r in results:
        note = f'same as `{r.same_as}`' if r.same_as and r.status == 'ok' else _md(r.reason[:160])
        if r.same_as and r.status != 'ok':
            note += f' (same as `{r.same_as}`)'
        lines.append(f'| `{r.config}` | {r.detector} | {r.backbone} | {r.status} | {r.stage} | {note} |')
    return '\n'.join(lines) + '\n'


def _first_sentence(text: str, limit: int = 240) -> str:
    """Refusals explain at length; the summary shows their first sentence (the json has every word)."""
    end = text.find('. ', 40)
    text = text if end < 0 else text[:end + 1]
    return text if len(text) <= limit else text[:limit] + ' ...'


def _md(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def result_from_dict(data: dict) -> SweepResult:
    return SweepResult(**data)


def result_to_dict(result: SweepResult) -> dict:
    return asdict(result)
