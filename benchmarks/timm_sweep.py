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
from cbnet.testing.sweep_cli import progress, quiet_single_thread, sweep_parser, write_sweep
from cbnet.testing.timm_models import check_timm_model, markdown_report, smallest_per_module


def main() -> None:
    import timm
    parser = sweep_parser(__doc__)
    parser.add_argument('--modules', nargs='+', default=None, help='timm model modules (default: all)')
    args = parser.parse_args()
    quiet_single_thread()
    results = []
    for module, (name, size) in sorted(smallest_per_module(args.modules).items()):
        if size > args.max_params * 1e6:
            result = dict(model=name, status='skipped', reason=f'over {args.max_params:g}M parameters')
        else:
            result = check_timm_model(name, timeout=args.timeout)
        result.update(module=module, size=size)
        results.append(result)
        progress(f"{module}: {name} {result['status']} {result['reason'][:100]}")
    print(
        write_sweep(args.out_dir, 'benchmarks/timm_sweep.py', 'timm_sweep', 'timm architectures in a Dual CBNet',
                    __doc__, results, markdown_report, dict(timm=timm.__version__)))


if __name__ == '__main__':
    main()
