"""COCO metrics a training or test run left behind, for accuracy-vs-cost tables.

Where they are looked for: a log, a json file, or a work dir (``tools/train.py`` and ``tools/test.py`` write
``<work_dir>/<timestamp>/vis_data/scalars.json``, ``<timestamp>.json`` and ``<timestamp>.log``). In a work dir
every ``*.json`` and ``*.log`` is read and the most recent ``coco/bbox_mAP`` / ``coco/segm_mAP`` wins (newest
file, last entry).
"""
import glob
import json
import os.path as osp
import re
from typing import Any, Dict, Optional

METRIC_KEYS = ('bbox_mAP', 'segm_mAP')
_LOG_PATTERN = re.compile(r'coco/(bbox_mAP|segm_mAP): ([0-9.]+)')


def config_name(config: str) -> str:
    """``configs/cbnet/dual_r50_faster_rcnn.py`` -> ``dual_r50_faster_rcnn`` (the default work dir name)."""
    return osp.splitext(osp.basename(config.split('::')[-1]))[0]


def metrics_in_file(path: str) -> Dict[str, float]:
    """The last COCO mAPs in a json-lines file or a text log (empty if none)."""
    found: Dict[str, float] = {}
    with open(path, errors='replace') as f:
        for line in f:
            if 'coco/' not in line:
                continue
            if path.endswith('.json'):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                for key in METRIC_KEYS:
                    if isinstance(entry, dict) and f'coco/{key}' in entry:
                        found[key] = float(entry[f'coco/{key}'])
            else:
                for key, value in _LOG_PATTERN.findall(line):
                    found[key] = float(value)
    return found


def find_metrics(path: Optional[str]) -> Dict[str, Any]:
    """COCO mAPs (and their ``source`` file) from a log/json file or the newest file in a work dir that has them."""
    if not path or not osp.exists(path):
        return {}
    if osp.isfile(path):
        files = [path]
    else:
        files = [f for ext in ('json', 'log') for f in glob.glob(osp.join(path, '**', f'*.{ext}'), recursive=True)]
    for file in sorted(files, key=osp.getmtime, reverse=True):
        metrics = metrics_in_file(file)
        if metrics:
            return dict(metrics, source=file)
    return {}
