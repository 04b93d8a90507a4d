"""Write the toy COCO-format shapes dataset (see :mod:`cbnet.testing.toy_coco`).

    python tools/misc/make_toy_coco.py data/toy_coco [--num-train 240 --num-val 40 --num-test 16
                                                      --size 128 128 --seed 0]
"""
import argparse
from typing import Optional, Sequence

from cbnet.testing.toy_coco import make_toy_coco


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the toy COCO shapes dataset (boxes, polygon masks, a test-dev split).')
    parser.add_argument('out_dir', help='dataset root to write, e.g. data/toy_coco')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--num-test', type=int, default=16)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--max-objects', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    files = make_toy_coco(args.out_dir, args.num_train, args.num_val, args.num_test, tuple(args.size), args.seed,
                          args.max_objects)
    for split, ann_file in files.items():
        print(f'{split:5s}: {ann_file}')


if __name__ == '__main__':
    main()
