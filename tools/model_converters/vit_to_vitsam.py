"""Convert an mmpretrain ``VisionTransformer`` checkpoint (e.g. MAE ViT-B) into ``ViTSAM``'s layout.

    python tools/model_converters/vit_to_vitsam.py SRC DST [--prefix backbone.]

ViTSAM (ViTDet's plain ViT: windowed and global blocks, decomposed relative positions) keeps its position
embedding as a grid without a class token; a ViT file does not load into it as it is. DST is an mmpretrain-style
file (``state_dict`` + ``meta``) for ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.
"""
import argparse
import sys

import torch

import cbnet  # noqa: F401  (full mmengine checkpoints load with weights_only=True)
from cbnet.converters.files import load_state_dict_file
from cbnet.converters.vit_layouts import vit_to_vitsam_state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='mmpretrain VisionTransformer checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the ViTSAM-layout checkpoint')
    parser.add_argument('--prefix', default='backbone.', help="prefix of the backbone keys (default 'backbone.')")
    args = parser.parse_args(argv)
    try:
        state_dict, meta = load_state_dict_file(args.src)
        converted, dropped = vit_to_vitsam_state_dict(state_dict, prefix=args.prefix)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    torch.save(dict(state_dict=converted, meta=dict(converted_from=args.src, converter='vit_to_vitsam')), args.dst)
    print(f'{len(converted)} keys written to {args.dst}; dropped {len(dropped)} ViT-only keys '
          f'({", ".join(dropped[:6])}{", ..." if len(dropped) > 6 else ""})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
