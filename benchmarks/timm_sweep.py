"""Which timm architectures does the composite backbone take? One per timm model module, checked exactly.

    python benchmarks/timm_sweep.py [--modules resnet swin_transformer ...] [--max-params 60] [--timeout 120]
        [--out-dir benchmarks/results]

For every timm model module (``resnet``, ``efficientnet``, ``swin_transformer``, ...) its smallest architecture
(parameters counted on the meta device), as ``mmpretrain.TIMMBackbone(features_only=True)`` returning its
features at stride >= 4, in a Dual ``CBNet``: refused (with the reason), or checked against the single
``TIMMBackbone`` (see :func:`cbnet.testing.timm_models.check_timm_model`: exact features at zero init, every
parameter trained). Random weights, one CPU thread, the adapter's probe size. Writes ``timm_sweep.json`` and
``timm_sweep.md`` to ``--out-dir``.
"""
import argparse
import datetime
import os.path as osp
import shlex
import sys

import torch

from cbnet.analysis import environment, versions_line, write_results
from cbnet.testing.timm_models import STATUSES, check_timm_model, markdown_report, smallest_per_module

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--modules', nargs='+', default=None, help='timm model modules (default: all)')
    parser.add_argument('--max-params', type=float, default=60, help='skip architectures larger than this (M)')
    parser.add_argument('--timeout', type=int, default=120, help='seconds per architecture')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    return parser.parse_args()


def main() -> None:
    import timm
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    args = parse_args()
    torch.set_num_threads(1)
    init_default_scope('mmdet')
    MMLogger.get_instance('mmengine', log_level='ERROR')  # TIMMBackbone logs every feature_info
    results = []
    for module, (name, size) in sorted(smallest_per_module(args.modules).items()):
        if size > args.max_params * 1e6:
            result = dict(model=name, status='skipped', reason=f'over {args.max_params:g}M parameters')
        else:
            result = check_timm_model(name, timeout=args.timeout)
        result.update(module=module, size=size)
        results.append(result)
        print(f"{module}: {name} {result['status']} {result['reason'][:100]}", file=sys.stderr, flush=True)
    env = dict(environment(), timm=timm.__version__)
    command = 'python benchmarks/timm_sweep.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    totals = {s: sum(r['status'] == s for r in results) for s in STATUSES}
    record = dict(date=date, command=command, environment=env, totals=totals, results=results)
    header = [
        '# timm architectures in a Dual CBNet', '', f'Generated {date} by `{command}`.', '',
        f"Versions: {versions_line(env)}, timm {env['timm']}.", '',
        __doc__.split('\n\n')[2].replace('\n', ' ')
    ]
    report = markdown_report(results, header)
    write_results(args.out_dir, 'timm_sweep', record, report, indent=1)
    print(report)


if __name__ == '__main__':
    main()
