"""Write the Dual/Triple-backbone (CBNetV2) variant of an mmdet detector config as a small config inheriting it.

    python tools/cbnetify.py mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py -o configs/cbnet/my_dual_r50.py
    python tools/cbnetify.py my_config.py -o my_triple.py --num-backbones 3 --composition SLC --assist-weight 0.3
    python tools/cbnetify.py mmdet::yolox/yolox_s_8xb8-300e_coco.py -o my_dual_yolox.py \
        --data-root data/my_coco --classes cat dog [--ann-file TRAIN VAL [TEST]] [--img-dir TRAIN VAL [TEST]]

The written config only holds what changes (``_base_`` is the source, the original backbone dict is copied into
the composite one); ``Config.fromfile`` loads it and ``tools/train.py`` trains it like any other config.
With ``--data-root`` it also trains and evaluates on your own COCO-format data (``cbnet.own_data``: every
dataset, also inside wrappers, the evaluators and every head's ``num_classes``).
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from cbnet.cbnetify import CBNetifyError, cbnetify_delta, render_cb_config
from cbnet.own_data import OwnDataError, merge_deltas, own_data_delta
from cbnet.utils.configs import PACKAGE_SEP, load_config_file, package_config_name, resolve_config_path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src',
        metavar='SRC_CONFIG',
        help='a config path, or a config of an installed package: mmdet::path/in/mmdet/configs.py')
    parser.add_argument('-o', '--out', metavar='DST_CONFIG', help='where to write the CB config (default: stdout)')
    parser.add_argument('--num-backbones', type=int, default=2, help='2 = Dual (default), 3 = Triple')
    parser.add_argument('--composition', default='DHLC', help='DHLC (CBNetV2, default), AHLC, SLC or ALLC (any case)')
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
    data = parser.add_argument_group('your own COCO-format data (optional)')
    data.add_argument('--data-root', help='dataset root; sets every dataset, evaluator and num_classes')
    data.add_argument('--classes', nargs='+', help='class names (default: the categories of the train file)')
    data.add_argument(
        '--ann-file',
        nargs='+',
        metavar='FILE',
        help='TRAIN [VAL [TEST]] annotation files under --data-root (default annotations/instances_train.json '
        'annotations/instances_val.json; test = val)')
    data.add_argument(
        '--img-dir',
        nargs='+',
        metavar='DIR',
        help='TRAIN [VAL [TEST]] image folders under --data-root '
        '(default train/ val/)')
    args = parser.parse_args(argv)
    if not args.data_root and (args.classes or args.ann_file or args.img_dir):
        parser.error('--classes, --ann-file and --img-dir need --data-root')
    return args


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
        cfg = load_config_file(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            delta = cbnetify_delta(
                cfg,
                num_backbones=args.num_backbones,
                composition=args.composition,
                assist_weight=args.assist_weight,
                del_stages=args.del_stages)
        notes = [str(w.message) for w in caught if str(w.message).startswith('cbnetify')]
        if args.data_root:
            data_delta, data_notes = own_data_delta(cfg, args.data_root, args.classes, args.ann_file, args.img_dir)
            delta = merge_deltas(delta, data_delta)
            notes += [f'own data ({args.data_root}): {note}' for note in data_notes]
    except (CBNetifyError, OwnDataError) as e:
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
    written = load_config_file(args.out)  # the file must load, and mean what the delta says
    assert written.model.type == delta['model']['type'], 'the written config does not load as intended'
    inner = delta['model']['backbone']['backbone']['type']
    composition = delta['model']['backbone']['composition']
    print(f'wrote {args.out}: {written.model.type}, {args.num_backbones} x {inner}, composition {composition} '
          f'(base: {base})' + (f', data: {args.data_root}' if args.data_root else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
