"""The machine, library versions and code revision recorded beside every measurement, and the result files."""
import datetime
import json
import os
import os.path as osp
import platform
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_revision() -> Optional[str]:
    """``git describe --always --dirty`` of the cbnet checkout (a dirty tree: uncommitted code was measured)."""
    try:
        out = subprocess.run(['git', 'describe', '--always', '--dirty'],
                             capture_output=True,
                             text=True,
                             timeout=10,
                             cwd=osp.dirname(osp.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> Dict[str, Any]:
    import mmcv
    import mmdet
    import mmengine
    env: Dict[str, Any] = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        mmcv=mmcv.__version__,
        mmengine=mmengine.__version__,
        mmdet=mmdet.__version__,
        machine=platform.machine(),
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads())
    try:
        import mmpretrain
        env['mmpretrain'] = mmpretrain.__version__
    except ImportError:
        pass
    env['git'] = git_revision()
    if torch.cuda.is_available():
        env['cuda'] = torch.version.cuda
        env['gpu'] = torch.cuda.get_device_name()
    return env


def versions_line(env: Dict[str, Any]) -> str:
    """``python 3.11.9, torch 2.14.1, ...`` for result headers."""
    keys = ('python', 'torch', 'cuda', 'mmcv', 'mmengine', 'mmdet', 'mmpretrain', 'git')
    return ', '.join(f'{k} {env[k]}' for k in keys if env.get(k))


def write_results(out_dir: str,
                  name: str,
                  result: Any,
                  markdown: str,
                  indent: int = 2,
                  relative_to: Optional[str] = None) -> Tuple[str, str]:
    """Write a benchmark's ``<name>.json`` (every number, ``default=str`` for the rest) and ``<name>.md`` to
    ``out_dir``; with ``relative_to`` (the checkout), absolute paths under it are written relative to it, so that
    committed results do not name the machine that made them. Returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    text = json.dumps(result, indent=indent, default=str)
    if relative_to:
        text = text.replace(relative_to.rstrip('/') + '/', '')
    paths = osp.join(out_dir, f'{name}.json'), osp.join(out_dir, f'{name}.md')
    for path, content in zip(paths, (text, markdown)):
        with open(path, 'w') as f:
            f.write(content)
    return paths


def _loadavg() -> List[float]:
    return [round(v, 2) for v in os.getloadavg()]


def start_run() -> Dict[str, Any]:
    """Taken before a benchmark's work: when it started and the machine's load then (see :func:`run_record`)."""
    return dict(started=datetime.datetime.now(datetime.timezone.utc), loadavg_before=_loadavg())


def run_record(start: Dict[str, Any], script: str, argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Taken after the work: the date, the command (``python <script> <argv or sys.argv>``), the environment, the
    load before and after and the minutes it took: the fields a result file starts with (printed by
    :func:`markdown_header`). The machines are shared, so the load says how far to trust the timings."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return dict(
        date=start['started'].strftime('%Y-%m-%d %H:%M UTC'),
        command=' '.join([f'python {script}'] + list(sys.argv[1:] if argv is None else argv)),
        environment=environment(),
        loadavg_before=start['loadavg_before'],
        loadavg_after=_loadavg(),
        minutes=(now - start['started']).total_seconds() / 60)


def markdown_header(title: str, record: Dict[str, Any]) -> List[str]:
    """The first lines of a result's markdown: title, command, machine and load, versions (a :func:`run_record`)."""
    env = record['environment']
    return [
        f'# {title}', '', f"Generated {record['date']} by `{record['command']}`.", '',
        f"Machine: {env['cpu']} ({env['cpu_count']} cores, {env['torch_threads']} torch thread(s)); load average "
        f"before/after {record['loadavg_before']} / {record['loadavg_after']} (shared with other jobs).", '',
        'Versions: ' + versions_line(env), ''
    ]
