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
from cbnet.testing.mmpretrain_models import backbone_classes, markdown_report, sweep_backbone
from cbnet.testing.sweep_cli import progress, quiet_single_thread, sweep_parser, write_sweep


def main() -> None:
    parser = sweep_parser(__doc__)
    parser.add_argument('--backbones', nargs='+', default=None, help='mmpretrain backbone classes (default: all)')
    args = parser.parse_args()
    quiet_single_thread()
    classes = backbone_classes()
    results = []
    for name in args.backbones or list(classes):
        result = sweep_backbone(name, classes[name], args.max_params, args.timeout)
        results.append(result)
        progress(f"{name}: {result.get('arch', '')} {result['status']} {str(result['reason'])[:100]}")
    print(
        write_sweep(args.out_dir, 'benchmarks/mmpretrain_sweep.py', 'mmpretrain_sweep',
                    'mmpretrain backbones in a Dual CBNet', __doc__, results, markdown_report))


if __name__ == '__main__':
    main()
