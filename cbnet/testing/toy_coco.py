"""Write a small, deterministic COCO-format instance dataset of coloured shapes.

Why: the project has no COCO and no pretrained weights, yet the demo, the tool tests and the detector tests
need real COCO files (boxes, polygon masks, a test-dev split without annotations) that a detector trained
from scratch on a CPU can learn in minutes. Every object is one of a few shapes drawn in its class colour on
a noisy background; objects never overlap, so each polygon is exactly the object's visible mask.

    python tools/misc/make_toy_coco.py data/toy_coco [--num-train 240 --num-val 40 --num-test 16
                                                      --size 128 128 --seed 0]
    from cbnet.testing import make_toy_coco; make_toy_coco('data/toy_coco')

Layout written (the one mmdet's CocoDataset configs expect)::

    OUT_DIR/annotations/instances_train.json   images + annotations + categories
    OUT_DIR/annotations/instances_val.json
    OUT_DIR/annotations/image_info_test-dev.json   images + categories only, like COCO test-dev
    OUT_DIR/train/*.jpg  OUT_DIR/val/*.jpg  OUT_DIR/test/*.jpg

The same arguments always give byte-identical files.
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: (name, RGB colour). Colours are far apart so that classes are learnable from scratch in minutes.
CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ('rectangle', (220, 40, 40)),
    ('ellipse', (40, 200, 60)),
    ('triangle', (50, 80, 230)),
)
CLASS_NAMES: Tuple[str, ...] = tuple(name for name, _ in CLASSES)

#: split name -> (annotation file name, image folder, whether annotations are written)
SPLITS: Dict[str, Tuple[str, str, bool]] = {
    'train': ('instances_train.json', 'train', True),
    'val': ('instances_val.json', 'val', True),
    'test': ('image_info_test-dev.json', 'test', False),
}

Polygon = List[Tuple[float, float]]


def _shape_polygon(class_name: str, box: Tuple[float, float, float, float], rng: np.random.Generator) -> Polygon:
    """Vertices of a shape whose tight bounding box is ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    if class_name == 'rectangle':
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    if class_name == 'ellipse':
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        n = 24
        return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]
    if class_name == 'triangle':
        # apex somewhere on the top edge, base on the bottom edge spanning the full width: tight box == box
        apex_x = x1 + float(rng.uniform(0.2, 0.8)) * (x2 - x1)
        return [(apex_x, y1), (x2, y2), (x1, y2)]
    raise ValueError(f'unknown toy class {class_name!r}; expected one of {CLASS_NAMES}')


def _polygon_area(polygon: Polygon) -> float:
    """Shoelace formula: COCO's ``area`` of an object given by one polygon."""
    xs = np.array([p[0] for p in polygon])
    ys = np.array([p[1] for p in polygon])
    return float(0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))


def _sample_boxes(rng: np.random.Generator,
                  height: int,
                  width: int,
                  max_objects: int,
                  gap: float = 4.0) -> List[Tuple[float, float, float, float]]:
    """Non-overlapping boxes (rejection sampling), 18%..50% of the shorter image side each."""
    short = min(height, width)
    boxes: List[Tuple[float, float, float, float]] = []
    wanted = int(rng.integers(1, max_objects + 1))
    for _ in range(50 * wanted):
        if len(boxes) == wanted:
            break
        w = float(rng.uniform(0.18, 0.5)) * short
        h = float(np.clip(w * rng.uniform(0.6, 1.6), 0.18 * short, 0.6 * short))
        x1 = float(rng.uniform(2, width - w - 2))
        y1 = float(rng.uniform(2, height - h - 2))
        x1, y1 = round(x1, 1), round(y1, 1)
        cand = (x1, y1, round(x1 + w, 1), round(y1 + h, 1))
        if all(cand[0] > b[2] + gap or cand[2] < b[0] - gap or cand[1] > b[3] + gap or cand[3] < b[1] - gap
               for b in boxes):
            boxes.append(cand)
    return boxes


def _draw_image(rng: np.random.Generator, height: int, width: int, objects: Sequence[Tuple[int,
                                                                                           Polygon]]) -> Image.Image:
    """Noisy grey background with a random tint, shapes filled in their (slightly jittered) class colour."""
    tint = rng.uniform(90, 170, size=3)
    background = tint + rng.normal(0, 18, size=(height, width, 3))
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(img)
    for label, polygon in objects:
        colour = np.array(CLASSES[label][1]) + rng.integers(-25, 26, size=3)
        draw.polygon(polygon, fill=tuple(int(c) for c in np.clip(colour, 0, 255)))
    # mild noise on top so that shapes are not perfectly flat
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 6, size=(height, width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), 'RGB')


def _make_split(out_dir: str, split: str, num_images: int, size: Tuple[int, int], seed: int, max_objects: int) -> str:
    ann_name, img_folder, with_annotations = SPLITS[split]
    height, width = size
    # one independent stream per split: changing --num-val does not change the training images
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    os.makedirs(osp.join(out_dir, img_folder), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image_id = index + 1
        file_name = f'{split}_{image_id:05d}.jpg'
        objects = []
        for box in _sample_boxes(rng, height, width, max_objects):
            label = int(rng.integers(0, len(CLASSES)))
            objects.append((label, _shape_polygon(CLASS_NAMES[label], box, rng)))
        _draw_image(rng, height, width, objects).save(osp.join(out_dir, img_folder, file_name), quality=92)
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for label, polygon in objects:
            xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
            x1, y1 = min(xs), min(ys)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label + 1,
                    bbox=[round(x1, 2), round(y1, 2),
                          round(max(xs) - x1, 2),
                          round(max(ys) - y1, 2)],
                    segmentation=[[round(v, 2) for p in polygon for v in p]],
                    area=round(_polygon_area(polygon), 2),
                    iscrowd=0))
    coco = dict(
        info=dict(description=f'cbnet toy COCO ({split})', version='1.0', year=2026),
        licenses=[],
        images=images,
        categories=[dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASS_NAMES)],
    )
    if with_annotations:
        coco['annotations'] = annotations
    ann_file = osp.join(out_dir, 'annotations', ann_name)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    return ann_file


def make_toy_coco(out_dir: str,
                  num_train: int = 240,
                  num_val: int = 40,
                  num_test: int = 16,
                  size: Tuple[int, int] = (128, 128),
                  seed: int = 0,
                  max_objects: int = 4) -> Dict[str, str]:
    """Write the toy dataset to ``out_dir``; returns ``{split: annotation file}``.

    Args:
        out_dir: dataset root (e.g. ``data/toy_coco``).
        num_train / num_val / num_test: number of images per split.
        size: (height, width) of every image.
        seed: same seed, same files.
        max_objects: at most this many objects per image (at least one).
    """
    height, width = size
    if min(height, width) < 48:
        raise ValueError(f'size {size} is too small for the shapes; use at least 48x48')
    if min(num_train, num_val, num_test) < 0 or max_objects < 1:
        raise ValueError('image counts must be >= 0 and max_objects >= 1')
    counts = dict(train=num_train, val=num_val, test=num_test)
    return {split: _make_split(out_dir, split, counts[split], (height, width), seed, max_objects) for split in SPLITS}
