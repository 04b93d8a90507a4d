"""Average checkpoints of one run into one (stochastic weight averaging of an SWA stage's epoch checkpoints).

    python tools/model_converters/average_checkpoints.py work_dirs/X/epoch_{1..12}.pth -o work_dirs/X/swa.pth \
        [--config CONFIG]

Floating-point tensors (weights, BN running statistics) become their mean, integer tensors (BN
``num_batches_tracked``) are the last checkpoint's, the meta is the last one's with the averaged files listed;
optimizer and scheduler states are dropped. With ``--config`` the result is first loaded strictly into that
config's model (nothing is written if it does not fit). ``SWAHook`` (configs/_base_/swa_12e.py) writes the same
mean during training.
"""
import argparse
import sys

import cbnet  # noqa: F401  (registers the CB models; full mmengine checkpoints load with weights_only=True)
from cbnet.converters.averaging import write_average


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoints', nargs='+', help='checkpoints of one model (.pth), e.g. the SWA epochs')
    parser.add_argument('-o', '--out', required=True, help='where to write the averaged checkpoint')
    parser.add_argument('--config', help='a config (path or cbnet::/mmdet:: name) whose model the result must fit')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        lines = write_average(args.checkpoints, args.out, config=args.config)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
