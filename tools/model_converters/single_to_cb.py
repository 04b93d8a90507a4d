"""Start a CB detector from a trained plain mmdet detector: expand its checkpoint for a CB config.

    python tools/model_converters/single_to_cb.py SRC DST --config configs/cbnet/<CB config>.py

SRC is a checkpoint of the plain detector (a full mmengine file or a bare state dict). DST holds the same
backbone in every branch (what pruning removes is dropped), composite connections at zero (their init), the
neck and heads unchanged: the CB detector's predictions equal the plain one's until it is fine-tuned. DST is
loaded strictly into CONFIG's model before it is written. Use it with ``load_from=DST`` (a plain checkpoint
given directly as ``load_from`` is expanded the same way in memory by cbnet's tools).
"""
import argparse
import sys

import cbnet  # noqa: F401  (registers the CB models; full mmengine checkpoints load with weights_only=True)
from cbnet.converters.single_to_cb import expand_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='checkpoint of the plain (single-backbone) mmdet detector (.pth)')
    parser.add_argument('dst', help='where to write the CB detector checkpoint')
    parser.add_argument(
        '--config',
        required=True,
        help='the CB config (a path or cbnet::/mmdet:: name) whose model the result must fit')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = expand_checkpoint(args.src, args.dst, config=args.config)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(report.summary())
    print(f'written: {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
