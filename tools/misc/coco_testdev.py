"""Check COCO result files and pack them for the COCO test-dev evaluation server.

Why: test-dev has no public annotations, so a malformed result file is only discovered after an upload
(and the server limits uploads). This tool checks the files that ``tools/test.py`` writes in
``format_only`` mode against the COCO result format and the test-dev image list, then zips them under the
names the server expects.

1. Print the ``--cfg-options`` that turn any cbnet/mmdet COCO config into a test-dev run::

       python tools/misc/coco_testdev.py options --data-root data/coco --prefix work_dirs/testdev/NAME

2. Run ``tools/test.py CONFIG CKPT --cfg-options <those options>`` (add ``--tta`` for test-time
   augmentation). It writes ``NAME.bbox.json`` (and ``NAME.segm.json`` for mask models).

3. Check and pack::

       python tools/misc/coco_testdev.py pack work_dirs/testdev/NAME \\
           --image-info data/coco/annotations/image_info_test-dev2017.json --alg cbnetv2

   writes ``bbox_detections_test-dev2017_cbnetv2_results.zip`` (and ``segm_...``), each holding
   ``detections_test-dev2017_cbnetv2_results.json``: the server's naming ``[type]_[testset]_[alg]_results``
   uses the type ``detections`` for boxes and masks alike; the task is chosen when uploading.

   ``python tools/misc/coco_testdev.py check FILE.json --image-info ... [--task bbox|segm]`` only checks.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import sys
import zipfile
from numbers import Real
from typing import Dict, List, Optional, Sequence

import numpy as np

TASKS = ('bbox', 'segm')
TESTSETS = ('test-dev2017', 'test-challenge2017', 'val2017')
MAX_REPORTED_ERRORS = 20


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def load_image_info(path: str) -> dict:
    """Read a COCO image-info (or instances) file: ``{'images': {id: (h, w)}, 'categories': {id, ...}}``."""
    with open(path) as f:
        info = json.load(f)
    if not isinstance(info, dict) or 'images' not in info or 'categories' not in info:
        raise ValueError(f'{path} is not a COCO image-info file: it needs "images" and "categories".')
    return dict(
        images={image['id']: (image['height'], image['width'])
                for image in info['images']},
        categories={category['id']
                    for category in info['categories']})


def _check_detection(det, task: str, images: Dict[int, tuple], categories: set) -> List[str]:
    """Problems of one result entry (empty when it is valid)."""
    if not isinstance(det, dict):
        return [f'is a {type(det).__name__}, not a dict']
    problems = []
    image_id, category_id = det.get('image_id'), det.get('category_id')
    if not _is_int(image_id):
        problems.append(f'image_id {image_id!r} is not an int')
    elif image_id not in images:
        problems.append(f'image_id {image_id} is not in the image-info file')
    if not _is_int(category_id):
        problems.append(f'category_id {category_id!r} is not an int')
    elif category_id not in categories:
        problems.append(f'category_id {category_id} is not among the categories {sorted(categories)}')
    if not _is_number(det.get('score')):
        problems.append(f'score {det.get("score")!r} is not a finite number')
    bbox = det.get('bbox')
    if task == 'bbox' or bbox is not None:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            problems.append(f'bbox {bbox!r} is not a list of 4 finite numbers [x, y, w, h]')
        elif bbox[2] < 0 or bbox[3] < 0:
            problems.append(f'bbox {bbox} has a negative width or height (want [x, y, w, h], not corners)')
    if task == 'segm':
        problems += _check_rle(det.get('segmentation'), images.get(image_id))
    return problems


def _check_rle(segmentation, image_size: Optional[tuple]) -> List[str]:
    """A segm result must be a compressed RLE whose size is the image's (h, w) and whose runs fill it."""
    if not isinstance(segmentation, dict):
        return [f'segmentation is a {type(segmentation).__name__}, not an RLE dict with "size" and "counts"']
    size, counts = segmentation.get('size'), segmentation.get('counts')
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        return [f'segmentation size {size!r} is not [height, width]']
    if not isinstance(counts, str):
        return [f'segmentation counts is a {type(counts).__name__}, not a str (decode the RLE bytes)']
    if image_size is not None and tuple(size) != tuple(image_size):
        return [f'segmentation size {size} is not the image size {list(image_size)}']
    try:
        runs = rle_run_lengths(counts)
    except ValueError as error:
        return [f'segmentation counts do not decode: {error}']
    if (runs < 0).any() or runs.sum() != size[0] * size[1]:
        return [
            f'segmentation counts do not decode: the runs cover {int(runs.sum())} pixels, '
            f'not {size[0]} x {size[1]}'
        ]
    return []


def rle_run_lengths(counts: str) -> np.ndarray:
    """Run lengths of a COCO compressed RLE string (pycocotools' ``rleFrString``, vectorised).

    Each run is a little-endian base-32 number written as chars 48 + 6 bits (bit 5: more chars follow,
    bit 4 of the last char: negative); runs after the second are stored as the difference to the run two
    places before. About 10x faster than decoding the mask, so a full test-dev file checks in minutes.
    """
    chars = np.frombuffer(counts.encode(), dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0 or chars.min() < 0 or chars.max() > 63:
        raise ValueError('empty, or characters outside the RLE alphabet (ASCII 48..111)')
    last = np.flatnonzero((chars & 0x20) == 0)  # the last char of each number
    if last.size == 0 or last[-1] != chars.size - 1:
        raise ValueError('the string ends inside a number')
    first = np.concatenate([[0], last[:-1] + 1])
    number = np.repeat(np.arange(last.size), last - first + 1)
    digit = np.arange(chars.size) - first[number]
    values = np.bincount(number, weights=(chars & 0x1f) << (5 * digit), minlength=last.size).astype(np.int64)
    negative = (chars[last] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (digit[last][negative] + 1))
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def validate_results(results, image_info: dict, task: str) -> List[str]:
    """Return the problems found in a COCO result list for ``task`` ('bbox' or 'segm'); empty = valid."""
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    if not isinstance(results, list):
        return [f'the file holds a {type(results).__name__}; a COCO result file is a JSON list']
    if not results:
        return ['the file holds no detections']
    errors = []
    for index, det in enumerate(results):
        errors += [
            f'entry {index}: {problem}'
            for problem in _check_detection(det, task, image_info['images'], image_info['categories'])
        ]
        if len(errors) >= MAX_REPORTED_ERRORS:
            errors.append('... (stopped after the first errors)')
            break
    return errors


def summarize(results: list, image_info: dict) -> str:
    images = {det['image_id'] for det in results}
    per_image: Dict[int, int] = {}
    for det in results:
        per_image[det['image_id']] = per_image.get(det['image_id'], 0) + 1
    return (f'{len(results)} detections on {len(images)}/{len(image_info["images"])} images, '
            f'{len({det["category_id"] for det in results})} categories, '
            f'at most {max(per_image.values())} per image')


def check_file(path: str, image_info: dict, task: Optional[str] = None) -> List[str]:
    """Validate one result file; the task defaults to what mmdet's file name says (``*.segm.json``)."""
    task = task or ('segm' if path.endswith('.segm.json') else 'bbox')
    with open(path) as f:
        results = json.load(f)
    return validate_results(results, image_info, task)


def submission_name(alg: str, testset: str = 'test-dev2017') -> str:
    """The JSON name the COCO server expects: ``detections_[testset]_[alg]_results.json``."""
    if not re.fullmatch(r'[A-Za-z0-9\-]+', alg):
        raise ValueError(f'alg {alg!r}: use letters, digits and "-" only (the server splits names on "_").')
    if testset not in TESTSETS:
        raise ValueError(f'testset must be one of {TESTSETS}, got {testset!r}')
    return f'detections_{testset}_{alg}_results.json'


def pack(prefix: str,
         image_info_path: str,
         alg: str,
         out_dir: Optional[str] = None,
         testset: str = 'test-dev2017') -> List[str]:
    """Validate ``<prefix>.bbox.json`` / ``<prefix>.segm.json`` and zip each for upload; return the zips."""
    image_info = load_image_info(image_info_path)
    json_name = submission_name(alg, testset)
    out_dir = out_dir or osp.dirname(osp.abspath(prefix))
    os.makedirs(out_dir, exist_ok=True)
    found = [(task, f'{prefix}.{task}.json') for task in TASKS if osp.isfile(f'{prefix}.{task}.json')]
    if not found:
        raise FileNotFoundError(f'No {prefix}.bbox.json or {prefix}.segm.json: run tools/test.py with '
                                f'test_evaluator.format_only=True test_evaluator.outfile_prefix={prefix}')
    zips = []
    for task, path in found:
        errors = check_file(path, image_info, task)
        if errors:
            raise ValueError(f'{path} is not a valid COCO {task} result file:\n  ' + '\n  '.join(errors))
        zip_path = osp.join(out_dir, f'{task}_{osp.splitext(json_name)[0]}.zip')
        with zipfile.ZipFile(zip_path, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, arcname=json_name)
        zips.append(zip_path)
    return zips


def testdev_cfg_options(data_root: str,
                        prefix: str,
                        ann_file: str = 'annotations/image_info_test-dev2017.json',
                        img_prefix: str = 'test2017/') -> List[str]:
    """``--cfg-options`` that make a COCO config's test split COCO test-dev, written in format_only mode."""
    return [
        f'test_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.ann_file={ann_file}',
        f'test_dataloader.dataset.data_prefix.img={img_prefix}',
        f'test_evaluator.ann_file={osp.join(data_root, ann_file)}',
        'test_evaluator.format_only=True',
        f'test_evaluator.outfile_prefix={prefix}',
    ]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    check = commands.add_parser('check', help='validate COCO result files')
    check.add_argument('files', nargs='+', help='result JSON files (*.bbox.json / *.segm.json)')
    check.add_argument('--image-info', required=True, help='image_info_test-dev2017.json (or an instances file)')
    check.add_argument('--task', choices=TASKS, help='default: segm for *.segm.json, otherwise bbox')
    packer = commands.add_parser('pack', help='validate <prefix>.{bbox,segm}.json and zip them for upload')
    packer.add_argument('prefix', help='the outfile_prefix given to CocoMetric')
    packer.add_argument('--image-info', required=True)
    packer.add_argument('--alg', required=True, help='algorithm name in the file name (letters, digits, -)')
    packer.add_argument('--testset', default='test-dev2017', choices=TESTSETS)
    packer.add_argument('--out-dir', help='where to write the zips (default: next to the prefix)')
    options = commands.add_parser('options', help='print the --cfg-options for a test-dev run')
    options.add_argument('--data-root', default='data/coco/')
    options.add_argument('--prefix', required=True, help='outfile_prefix, e.g. work_dirs/testdev/dual_swin_l_htc')
    options.add_argument('--ann-file', default='annotations/image_info_test-dev2017.json')
    options.add_argument('--img-prefix', default='test2017/')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.command == 'options':
        print('--cfg-options ' +
              ' '.join(testdev_cfg_options(args.data_root, args.prefix, args.ann_file, args.img_prefix)))
        return 0
    if args.command == 'pack':
        for zip_path in pack(args.prefix, args.image_info, args.alg, args.out_dir, args.testset):
            print(f'wrote {zip_path}')
        return 0
    image_info = load_image_info(args.image_info)
    status = 0
    for path in args.files:
        errors = check_file(path, image_info, args.task)
        if errors:
            status = 1
            print(f'INVALID {path}:\n  ' + '\n  '.join(errors))
        else:
            with open(path) as f:
                print(f'OK {path}: {summarize(json.load(f), image_info)}')
    return status


if __name__ == '__main__':
    sys.exit(main())
