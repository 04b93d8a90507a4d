"""What the sweep CLIs share: the architecture sweeps' (``benchmarks/timm_sweep.py``, ``mmpretrain_sweep.py``) common
options, quiet single-threaded run, and record and report; the long sweeps' (``zoo_sweep.py``, ``deploy_sweep.py``)
resumable partial results."""
import argparse
import datetime
import os
import os.path as osp
import shlex
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..analysis import environment, versions_line, write_results
from .composite_check import STATUSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def sweep_parser(doc: str) -> argparse.ArgumentParser:
    """The options every sweep takes (the first paragraph of ``doc`` describes it); add the selection option."""
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    parser.add_argument('--max-params', type=float, default=60, help='skip architectures larger than this (M)')
    parser.add_argument('--timeout', type=int, default=120, help='seconds per architecture')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    return parser


def quiet_single_thread() -> None:
    """One CPU thread (the checks time out per architecture), mmdet's scope, and mmengine's INFO logs (every
    feature_info of a timm model) silenced."""
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    torch.set_num_threads(1)
    init_default_scope('mmdet')
    MMLogger.get_instance('mmengine', log_level='ERROR')


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def write_sweep(out_dir: str,
                script: str,
                name: str,
                title: str,
                doc: str,
                results: List[Dict],
                markdown_report: Callable[[Sequence[Dict], Sequence[str]], str],
                extra_versions: Optional[Dict[str, str]] = None) -> str:
    """``NAME.json`` (date, command, environment, totals per status, results) and ``NAME.md`` (``title``, how it
    was generated, the versions, the third paragraph of ``doc`` and the report) in ``out_dir``; returns the
    report."""
    env = dict(environment(), **(extra_versions or {}))
    command = f'python {script} ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    totals = {s: sum(r['status'] == s for r in results) for s in STATUSES}
    record = dict(date=date, command=command, environment=env, totals=totals, results=results)
    extra = ''.join(f', {key} {value}' for key, value in (extra_versions or {}).items())
    header = [
        f'# {title}', '', f'Generated {date} by `{command}`.', '', f'Versions: {versions_line(env)}{extra}.', '',
        doc.split('\n\n')[2].replace('\n', ' ')
    ]
    report = markdown_report(results, header)
    write_results(out_dir, name, record, report, indent=1)
    return report


def load_partial(path: str, resume: bool, from_dict: Callable[[dict], Any], key: Callable[[Any],
                                                                                          str]) -> Dict[str, Any]:
    """The results an interrupted run appended to ``path`` (one JSON object a line), by ``key``, when resuming;
    otherwise the file is removed, so that the new run starts it afresh."""
    import json
    done: Dict[str, Any] = {}
    if resume and osp.isfile(path):
        with open(path) as f:
            for line in f:
                result = from_dict(json.loads(line))
                done[key(result)] = result
    elif osp.isfile(path):
        os.remove(path)
    return done
