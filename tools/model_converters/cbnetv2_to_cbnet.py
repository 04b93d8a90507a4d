"""Convert an official CBNetV2 checkpoint (VDIGPKU/CBNetV2, mmdet 2.14) into a cbnet (mmdet 3.x) checkpoint.

    python tools/model_converters/cbnetv2_to_cbnet.py SRC DST [--config configs/cbnet/<matching config>.py]

With --config the converted weights are loaded into that config's model (built without pretrained weights)
and any missing or unexpected key is an error. Use the result with ``load_from`` or ``tools/test.py CONFIG DST``.
"""
import argparse
import sys

from cbnet.converters.cbnetv2 import convert_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official CBNetV2 checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--config', help='matching cbnet config: verify that the result loads strictly')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = convert_checkpoint(args.src, args.dst, config=args.config)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(report.summary())
    print(f'written: {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
