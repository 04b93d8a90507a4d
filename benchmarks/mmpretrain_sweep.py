"""Which mmpretrain backbones does the composite backbone take? Every backbone class, checked exactly.

    python benchmarks/mmpretrain_sweep.py [--backbones ConvNeXt SwinTransformerV2 ...] [--max-params 60]
        [--timeout 120] [--out-dir benchmarks/results]

For every backbone class of mmpretrain's registry (``mmpretrain.models.backbones``) its smallest architecture
(parameters counted on the meta device) in its detection form (every stage returned as a map), in a Dual
``CBNet``: refused (with the reason), or checked against the single backbone (see
:func:`cbnet.testing.composite_check.check_composite`: exact features at zero init, every parameter trained).
Random weights, one CPU thread, the adapter's probe size. Writes ``mmpretrain_sweep.json`` and
``mmpretrain_sweep.md`` to ``--out-dir``.
"""
import argparse
import datetime
import os.path as osp
import shlex
import sys

import torch

from cbnet.analysis import environment, versions_line, write_results
from cbnet.testing.mmpretrain_models import STATUSES, backbone_classes, markdown_report, sweep_backbone

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backbones', nargs='+', default=None, help='mmpretrain backbone classes (default: all)')
    parser.add_argument('--max-params', type=float, default=60, help='skip architectures larger than this (M)')
    parser.add_argument('--timeout', type=int, default=120, help='seconds per architecture')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    return parser.parse_args()


def main() -> None:
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    args = parse_args()
    torch.set_num_threads(1)
    init_default_scope('mmdet')
    MMLogger.get_instance('mmengine', log_level='ERROR')
    classes = backbone_classes()
    results = []
    for name in args.backbones or list(classes):
        result = sweep_backbone(name, classes[name], args.max_params, args.timeout)
        results.append(result)
        print(
            f"{name}: {result.get('arch', '')} {result['status']} {str(result['reason'])[:100]}",
            file=sys.stderr,
            flush=True)
    env = environment()
    command = 'python benchmarks/mmpretrain_sweep.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    totals = {s: sum(r['status'] == s for r in results) for s in STATUSES}
    record = dict(date=date, command=command, environment=env, totals=totals, results=results)
    header = [
        '# mmpretrain backbones in a Dual CBNet', '', f'Generated {date} by `{command}`.', '',
        f'Versions: {versions_line(env)}.', '',
        __doc__.split('\n\n')[2].replace('\n', ' ')
    ]
    report = markdown_report(results, header)
    write_results(args.out_dir, 'mmpretrain_sweep', record, report, indent=1)
    print(report)


if __name__ == '__main__':
    main()
