"""The toy COCO dataset generator: deterministic, loadable by pycocotools, masks agree with boxes."""
import filecmp
import json
import os.path as osp

import numpy as np
import pytest
from pycocotools.coco import COCO

from cbnet.testing import toy_coco as toy

SMALL = dict(num_train=6, num_val=3, num_test=2, size=(96, 128))


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy'))
    toy.make_toy_coco(root, seed=3, **SMALL)
    return root


def test_same_seed_gives_identical_files(toy_root, tmp_path):
    toy.make_toy_coco(str(tmp_path), seed=3, **SMALL)
    cmp = filecmp.dircmp(toy_root, str(tmp_path))
    for sub in ('annotations', 'train', 'val', 'test'):
        left = sorted(cmp.subdirs[sub].left_list)
        assert left and left == sorted(cmp.subdirs[sub].right_list)
        match, mismatch, errors = filecmp.cmpfiles(osp.join(toy_root, sub), str(tmp_path / sub), left, shallow=False)
        assert not mismatch and not errors, (sub, mismatch, errors)


def test_other_seed_gives_other_data(toy_root, tmp_path):
    toy.make_toy_coco(str(tmp_path), seed=4, **SMALL)
    assert not filecmp.cmp(
        osp.join(toy_root, 'annotations', 'instances_train.json'),
        str(tmp_path / 'annotations' / 'instances_train.json'),
        shallow=False)


@pytest.mark.parametrize('split,num', [('train', 6), ('val', 3)])
def test_annotated_splits_load_and_masks_lie_in_boxes(toy_root, split, num):
    coco = COCO(osp.join(toy_root, 'annotations', f'instances_{split}.json'))
    assert len(coco.getImgIds()) == num
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(toy.CLASS_NAMES)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= num  # at least one object per image
    for ann in anns:
        img = coco.loadImgs(ann['image_id'])[0]
        assert osp.isfile(osp.join(toy_root, split, img['file_name']))
        assert ann['iscrowd'] == 0 and len(ann['segmentation'][0]) >= 6
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= img['width'] and y + h <= img['height']
        mask = coco.annToMask(ann)
        assert mask.shape == (img['height'], img['width'])
        ys, xs = np.nonzero(mask)
        # the rasterised polygon stays inside its box (1 px rasterisation slack) and nearly fills its area
        assert xs.min() >= np.floor(x) - 1 and xs.max() <= np.ceil(x + w) + 1
        assert ys.min() >= np.floor(y) - 1 and ys.max() <= np.ceil(y + h) + 1
        assert abs(mask.sum() - ann['area']) <= 0.15 * ann['area'] + 2 * (w + h)


def test_test_dev_split_has_images_but_no_annotations(toy_root):
    with open(osp.join(toy_root, 'annotations', 'image_info_test-dev.json')) as f:
        info = json.load(f)
    assert 'annotations' not in info
    assert len(info['images']) == 2 and len(info['categories']) == len(toy.CLASS_NAMES)
    for img in info['images']:
        assert osp.isfile(osp.join(toy_root, 'test', img['file_name']))
        assert (img['height'], img['width']) == (96, 128)


def test_objects_do_not_overlap(toy_root):
    # non-overlap is what makes each polygon the exact visible mask of its object
    with open(osp.join(toy_root, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    by_image = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann['bbox'])
    for boxes in by_image.values():
        for i, (x1, y1, w1, h1) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1:]:
                assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_bad_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match='too small'):
        toy.make_toy_coco(str(tmp_path), size=(20, 20))
