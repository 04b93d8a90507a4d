"""Write the Dual/Triple-backbone (CBNetV2) variant of an mmdet detector config as a small config inheriting it.

    python tools/cbnetify.py mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py -o configs/cbnet/my_dual_r50.py
    python tools/cbnetify.py my_config.py -o my_triple.py --num-backbones 3 --composition SLC --assist-weight 0.3

The written config only holds what changes (``_base_`` is the source, the original backbone dict is copied into
the composite one); ``Config.fromfile`` loads it and ``tools/train.py`` trains it like any other config.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from mmengine.config import Config

from cbnet.cbnetify import CBNetifyError, cbnetify_delta, render_cb_config
from cbnet.utils.configs import PACKAGE_SEP, package_config_name, resolve_config_path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src',
        metavar='SRC_CONFIG',
        help='a config path, or a config of an installed package: mmdet::path/in/mmdet/configs.py')
    parser.add_argument('-o', '--out', metavar='DST_CONFIG', help='where to write the CB config (default: stdout)')
    parser.add_argument('--num-backbones', type=int, default=2, help='2 = Dual (default), 3 = Triple')
    parser.add_argument('--composition', default='DHLC', help='DHLC (CBNetV2, default), AHLC, SLC or ALLC')
    parser.add_argument(
        '--assist-weight',
        type=float,
        nargs='+',
        default=None,
        help='loss weight of the assisting branches: one value, or one per assisting branch '
        '(default 0.5)')
    parser.add_argument(
        '--del-stages',
        type=int,
        default=None,
        help='stages the lead takes from the first branch instead of computing them (default: '
        'the official CBNetV2 choice, 1 for CNNs, 0 for Swin)')
    return parser.parse_args(argv)


def resolve_source(src: str, out: str = None):
    """(path to load, the ``_base_`` string the written config uses)."""
    try:
        path = resolve_config_path(src)
    except FileNotFoundError as e:
        raise CBNetifyError(str(e)) from e
    if PACKAGE_SEP in src:
        return path, src
    path = osp.abspath(path)
    packaged = package_config_name(path, 'mmdet')
    if packaged:
        return path, packaged
    if out is None:
        return path, path
    rel = osp.relpath(path, osp.dirname(osp.abspath(out)))
    # next to each other (or in sibling folders) a relative _base_ travels with the repo; else absolute
    return path, (rel if rel.count('..') <= 2 else path)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        path, base = resolve_source(args.src, args.out)
        cfg = Config.fromfile(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            delta = cbnetify_delta(
                cfg,
                num_backbones=args.num_backbones,
                composition=args.composition,
                assist_weight=args.assist_weight,
                del_stages=args.del_stages)
        notes = [str(w.message) for w in caught if str(w.message).startswith('cbnetify')]
    except CBNetifyError as e:
        print(f'cbnetify: cannot convert {args.src}: {e}', file=sys.stderr)
        return 2
    text = render_cb_config(base, delta, source_note=args.src, notes=notes)
    for note in notes:
        print(f'NOTE: {note}', file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    written = Config.fromfile(args.out)  # the file must load, and mean what the delta says
    assert written.model.type == delta['model']['type'], 'the written config does not load as intended'
    inner = delta['model']['backbone']['backbone']['type']
    print(f'wrote {args.out}: {written.model.type}, {args.num_backbones} x {inner}, composition {args.composition} '
          f'(base: {base})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
