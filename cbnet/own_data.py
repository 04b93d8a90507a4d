"""Point any mmdet detector config (plain or composite) at your own COCO-format dataset.

Why: a zoo config cannot simply inherit a dataset config (``_base_ = [model_config, data_config]`` fails with
"Duplicate key is not allowed among bases"), and retargeting by hand means rewriting every dataset (also inside
wrappers: YOLOX's ``MultiImageMixDataset``, ``RepeatDataset``, ``ConcatDataset``), its ``metainfo``, the
evaluators' ``ann_file`` and every head's ``num_classes`` (three box heads in a Cascade R-CNN, mask heads, DETR
heads). :func:`own_data_delta` returns exactly those changes as a config delta, which ``tools/cbnetify.py
--data-root DIR`` writes next to the composite-backbone delta.

What is changed: every leaf dataset of the train/val/test dataloaders gets ``type='CocoDataset'``,
``data_root``, ``ann_file``, ``data_prefix.img`` and ``metainfo=dict(classes=...)``; every ``CocoMetric``-like
evaluator the ``ann_file`` of its split; every ``num_classes`` under ``model`` the number of classes, except
the class-agnostic ``rpn_head`` (1) and HTC's ``semantic_head`` (stuff classes); MaskFormer-style
``num_things_classes``/``num_stuff_classes`` and their ``class_weight`` lists follow. Pipelines, schedule and
the rest are kept.
"""
import copy
import json
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

SPLITS = ('train', 'val', 'test')
DEFAULT_ANN_FILES = ('annotations/instances_train.json', 'annotations/instances_val.json')
DEFAULT_IMG_DIRS = ('train/', 'val/')
#: heads whose num_classes is not the dataset's classes
KEEP_NUM_CLASSES = ('rpn_head', 'semantic_head')
COCO_METRICS = ('CocoMetric', 'mmdet.CocoMetric')
BOX_MASK_METRICS = ('bbox', 'segm', 'proposal', 'proposal_fast')


class OwnDataError(ValueError):
    """The dataset arguments or the config cannot be combined; the message says what to change."""


def read_coco_classes(ann_file: str) -> Tuple[str, ...]:
    """The category names of a COCO annotation file, in the order of their ids."""
    with open(ann_file) as f:
        categories = json.load(f).get('categories') or []
    return tuple(c['name'] for c in sorted(categories, key=lambda c: c['id']))


def split_files(data_root: str,
                ann_files: Optional[Sequence[str]] = None,
                img_dirs: Optional[Sequence[str]] = None) -> Dict[str, Tuple[str, str]]:
    """``{split: (ann_file, img_dir)}`` relative to ``data_root``; val defaults to the second, test to val."""
    ann_files = list(ann_files or DEFAULT_ANN_FILES)
    img_dirs = list(img_dirs or DEFAULT_IMG_DIRS)
    if not 1 <= len(ann_files) <= 3 or not 1 <= len(img_dirs) <= 3:
        raise OwnDataError('--ann-file and --img-dir take 1 to 3 values: TRAIN [VAL [TEST]]')
    out = {}
    for i, split in enumerate(SPLITS):
        ann = ann_files[min(i, len(ann_files) - 1)]
        img = img_dirs[min(i, len(img_dirs) - 1)]
        out[split] = (ann, img if img.endswith('/') or not img else img + '/')
    return out


def check_classes(data_root: str, ann_file: str, classes: Sequence[str]) -> None:
    """Every class must be a category of the annotation file (mmdet would silently train on none of them)."""
    path = osp.join(data_root, ann_file)
    if not osp.isfile(path):
        return  # written for another machine: nothing to check here
    known = read_coco_classes(path)
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise OwnDataError(f'classes {unknown} are not categories of {path}; its categories are {list(known)}.')


def resolve_classes(data_root: str, train_ann: str, classes: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """The given classes (checked against the annotations when they exist), else the train file's categories."""
    if classes:
        check_classes(data_root, train_ann, classes)
        return tuple(classes)
    path = osp.join(data_root, train_ann)
    if not osp.isfile(path):
        raise OwnDataError(f'--classes not given and {path} does not exist to read them from: give the class '
                           'names (--classes a b c) or the right --data-root/--ann-file.')
    found = read_coco_classes(path)
    if not found:
        raise OwnDataError(f'{path} lists no categories: give the class names with --classes.')
    return found


def leaf_datasets(dataset: Any) -> Iterator[dict]:
    """The datasets that read files, inside wrappers (``dataset=``: MultiImageMixDataset, RepeatDataset,
    ClassBalancedDataset; ``datasets=``: ConcatDataset)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for inner in dataset['datasets']:
            yield from leaf_datasets(inner)
    elif isinstance(dataset.get('dataset'), dict):
        yield from leaf_datasets(dataset['dataset'])
    else:
        yield dataset


def _retarget_dataset(leaf: dict, data_root: str, ann_file: str, img_dir: str, classes: Tuple[str, ...]) -> None:
    if 'Panoptic' in str(leaf.get('type', '')):
        raise OwnDataError(f'{leaf["type"]} reads panoptic annotations (PNG segments), not COCO instances: '
                           'retarget a detection or instance segmentation config instead.')
    leaf['type'] = 'CocoDataset'
    leaf['data_root'] = data_root
    leaf['ann_file'] = ann_file
    prefix = dict(leaf.get('data_prefix') or {})
    prefix['img'] = img_dir
    leaf['data_prefix'] = prefix
    leaf['metainfo'] = dict(classes=classes)


def _retarget_evaluator(evaluator: Any, ann_path: str, masks: bool) -> Any:
    if isinstance(evaluator, (list, tuple)):
        return [_retarget_evaluator(e, ann_path, masks) for e in evaluator]
    if not isinstance(evaluator, dict):
        return evaluator
    evaluator['ann_file'] = ann_path
    if evaluator.get('type') not in COCO_METRICS:  # VOC, LVIS, Cityscapes, ... metrics: COCO's for COCO files
        metrics = evaluator.get('metric', 'bbox')
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        kept = [m for m in metrics if m in BOX_MASK_METRICS] or (['bbox', 'segm'] if masks else ['bbox'])
        evaluator.clear()
        evaluator.update(type='CocoMetric', ann_file=ann_path, metric=kept if len(kept) > 1 else kept[0])
    return evaluator


def set_num_classes(node: Any, num_classes: int, path: str = 'model') -> List[str]:
    """Set every ``num_classes`` (and MaskFormer's things/stuff counts) under ``node``; returns what changed."""
    changed: List[str] = []
    if isinstance(node, dict):
        if 'num_classes' in node and isinstance(node['num_classes'], int):
            if node['num_classes'] != num_classes:
                node['num_classes'] = num_classes
                changed.append(path)
        if 'num_things_classes' in node:
            old_total = node['num_things_classes'] + node.get('num_stuff_classes', 0)
            node['num_things_classes'], node['num_stuff_classes'] = num_classes, 0
            changed.append(f'{path} (things/stuff)')
            weights = (node.get('loss_cls') or {}).get('class_weight')
            if isinstance(weights, (list, tuple)) and len(weights) == old_total + 1:
                node['loss_cls']['class_weight'] = [1.0] * num_classes + [weights[-1]]
        for key, value in node.items():
            if key not in KEEP_NUM_CLASSES:
                changed += set_num_classes(value, num_classes, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            changed += set_num_classes(value, num_classes, f'{path}[{i}]')
    return changed


def config_delta(old: Any, new: Any) -> Any:
    """What to merge into ``old`` to get ``new``: changed keys of dicts recursively; anything else whole (a list
    in a config delta replaces the list)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: (config_delta(old[k], v) if k in old else v) for k, v in new.items() if k not in old or old[k] != v}
    return new


def own_data_delta(cfg,
                   data_root: str,
                   classes: Optional[Sequence[str]] = None,
                   ann_files: Optional[Sequence[str]] = None,
                   img_dirs: Optional[Sequence[str]] = None) -> Tuple[dict, List[str]]:
    """The config delta that trains and evaluates ``cfg`` (a merged config) on a COCO-format dataset.

    Args:
        cfg: the merged source config (``Config.fromfile``; composite or not).
        data_root: dataset root; a trailing ``/`` is added.
        classes: class names (categories of the annotation files); default: those of the train file.
        ann_files: TRAIN [VAL [TEST]] annotation files relative to ``data_root`` (default
            ``annotations/instances_{train,val}.json``; test defaults to val).
        img_dirs: TRAIN [VAL [TEST]] image folders relative to ``data_root`` (default ``train/ val/``).

    Returns:
        (delta, notes): the delta to merge, and one line per kind of change for the written config's header.
    """
    data_root = data_root if data_root.endswith('/') else data_root + '/'
    files = split_files(data_root, ann_files, img_dirs)
    classes = resolve_classes(data_root, files['train'][0], classes)
    source = cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(dict(cfg))
    target = copy.deepcopy(source)
    if not isinstance(target.get('model'), dict):
        raise OwnDataError('the config has no model=dict(...) to retarget.')
    notes = []
    for split in SPLITS:
        loader = target.get(f'{split}_dataloader')
        if not isinstance(loader, dict) or 'dataset' not in loader:
            continue
        leaves = list(leaf_datasets(loader['dataset']))
        for leaf in leaves:
            _retarget_dataset(leaf, data_root, *files[split], classes)
        notes.append(f'{split}: {len(leaves)} dataset(s) read {files[split][0]} and {files[split][1]}')
    masks = _with_masks(target['model'])
    for split in ('val', 'test'):
        if target.get(f'{split}_evaluator') is not None:
            target[f'{split}_evaluator'] = _retarget_evaluator(target[f'{split}_evaluator'],
                                                               data_root + files[split][0], masks)
    changed = set_num_classes(target['model'], len(classes))
    notes.append(f'{len(classes)} classes {list(classes)}: num_classes set in ' + (', '.join(changed) or 'no head'))
    return config_delta(source, target), notes


def _with_masks(model: dict) -> bool:
    text = json.dumps(model, default=str)
    return 'mask_head' in text or 'Mask2Former' in text or 'SOLO' in text or 'mask_roi_extractor' in text


def merge_deltas(first: dict, second: dict) -> dict:
    """``second`` merged into ``first`` (dicts recursively), as one delta."""
    out = copy.deepcopy(first)
    for key, value in second.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge_deltas(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
