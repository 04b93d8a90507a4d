"""Write a tiny BERT (one layer, small vocabulary) as a local language model for the grounding detectors.

    python tools/misc/make_tiny_bert.py data/tiny_bert

The directory holds what ``save_pretrained`` writes for a real BERT (config.json, model.safetensors, vocab.txt,
tokenizer files), so ``lang_model_name = 'data/tiny_bert'`` builds GLIP / Grounding DINO configs without a
download: for demos, tests and the toy Grounding DINO (configs/_toy_/grounding_dino_r18_toy.py), not for accuracy.
"""
import argparse
from typing import Optional, Sequence

from cbnet.testing.language_models import tiny_bert


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='directory to write, e.g. data/tiny_bert')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    print(f'wrote {tiny_bert(args.out_dir)}')


if __name__ == '__main__':
    main()
