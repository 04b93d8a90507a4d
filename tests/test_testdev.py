"""COCO test-dev protocol: result-file checks, server packing, and tools/test.py in format_only mode.

The end-to-end test writes the toy test-dev split (images + categories, no annotations, like
image_info_test-dev2017.json), runs tools/test.py on an untrained toy Mask R-CNN with the documented
--cfg-options (and once with --tta), then checks the bbox/segm JSON files as the evaluation server would.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools import mask as mask_util

from cbnet.testing import load_tool, make_toy_coco

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

testdev = load_tool('tools/misc/coco_testdev.py')

IMAGE_INFO = dict(images={1: (4, 5), 7: (6, 6)}, categories={1, 3})


def _rle(height: int, width: int) -> dict:
    mask = np.zeros((height, width), dtype=np.uint8, order='F')
    mask[1:3, 1:3] = 1
    rle = mask_util.encode(mask)
    rle['counts'] = rle['counts'].decode()
    return rle


def _det(**changes) -> dict:
    det = dict(image_id=1, category_id=3, bbox=[1.0, 1.0, 2.0, 2.0], score=0.5, segmentation=_rle(4, 5))
    det.update(changes)
    return det


def test_valid_results_pass_for_both_tasks():
    results = [_det(), _det(image_id=7, category_id=1, segmentation=_rle(6, 6), score=1)]
    assert testdev.validate_results(results, IMAGE_INFO, 'bbox') == []
    assert testdev.validate_results(results, IMAGE_INFO, 'segm') == []


@pytest.mark.parametrize('task,changes,message', [
    ('bbox', dict(image_id=2), 'image_id 2 is not in the image-info file'),
    ('bbox', dict(image_id='1'), "image_id '1' is not an int"),
    ('bbox', dict(category_id=2), 'category_id 2 is not among the categories [1, 3]'),
    ('bbox', dict(category_id=True), 'category_id True is not an int'),
    ('bbox', dict(score=float('nan')), 'score nan is not a finite number'),
    ('bbox', dict(bbox=[1, 2, 3]), 'is not a list of 4 finite numbers'),
    ('bbox', dict(bbox=[5.0, 5.0, 1.0, 1.0 - 3]), 'negative width or height'),
    ('segm', dict(segmentation=[[1, 1, 2, 2, 3, 1]]), 'not an RLE dict'),
    ('segm', dict(segmentation=dict(size=[4, 5], counts=b'0d0')), 'not a str'),
    ('segm', dict(segmentation=_rle(6, 6)), 'is not the image size [4, 5]'),
    ('segm', dict(segmentation=dict(size=[4, 5], counts='zzzz')), 'do not decode'),
])
def test_invalid_entries_are_reported_with_the_reason(task, changes, message):
    errors = testdev.validate_results([_det(), _det(**changes)], IMAGE_INFO, task)
    assert len(errors) == 1 and errors[0].startswith('entry 1: ') and message in errors[0], errors


def test_rle_run_lengths_match_pycocotools_masks():
    rng = np.random.default_rng(0)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        mask = np.asfortranarray((rng.random((height, width)) < rng.random()).astype(np.uint8))
        if trial % 3 == 0:  # long runs: multi-char and negative-delta numbers
            mask[:] = 0
            mask[height // 3:, width // 4:] = 1
        runs = testdev.rle_run_lengths(mask_util.encode(mask)['counts'].decode())
        assert runs.sum() == height * width and (runs >= 0).all()
        decoded = np.repeat(np.arange(len(runs)) % 2, runs).reshape(width, height).T  # column-major
        assert np.array_equal(decoded, mask)
    for corrupt in ('', 'zz~', '0d'):
        with pytest.raises(ValueError):
            testdev.rle_run_lengths(corrupt)


def test_file_level_problems_are_reported():
    assert testdev.validate_results({'annotations': []}, IMAGE_INFO, 'bbox') == \
        ['the file holds a dict; a COCO result file is a JSON list']
    assert testdev.validate_results([], IMAGE_INFO, 'bbox') == ['the file holds no detections']
    errors = testdev.validate_results([_det(image_id=99)] * 50, IMAGE_INFO, 'bbox')
    assert len(errors) == testdev.MAX_REPORTED_ERRORS + 1 and 'stopped' in errors[-1]
    with pytest.raises(ValueError, match='task must be one of'):
        testdev.validate_results([], IMAGE_INFO, 'keypoints')


def _write_image_info(path) -> str:
    info = dict(
        images=[dict(id=1, height=4, width=5, file_name='a.jpg'),
                dict(id=7, height=6, width=6, file_name='b.jpg')],
        categories=[dict(id=1, name='a'), dict(id=3, name='b')])
    path.write_text(json.dumps(info))
    return str(path)


def test_pack_validates_and_zips_each_task_under_the_server_name(tmp_path):
    image_info = _write_image_info(tmp_path / 'image_info.json')
    prefix = str(tmp_path / 'results' / 'run')
    os.makedirs(osp.dirname(prefix))
    with open(f'{prefix}.bbox.json', 'w') as f:
        json.dump([_det()], f)
    with open(f'{prefix}.segm.json', 'w') as f:
        json.dump([_det()], f)
    zips = testdev.pack(prefix, image_info, 'cbnet-swinl', out_dir=str(tmp_path / 'upload'))
    expected_json = 'detections_test-dev2017_cbnet-swinl_results.json'
    assert [osp.basename(z) for z in zips] == [f'bbox_{expected_json[:-5]}.zip', f'segm_{expected_json[:-5]}.zip']
    for task, zip_path in zip(('bbox', 'segm'), zips):
        with zipfile.ZipFile(zip_path) as archive:
            assert archive.namelist() == [expected_json]
            assert json.loads(archive.read(expected_json)) == [_det()]
    with pytest.raises(ValueError, match='letters, digits'):
        testdev.pack(prefix, image_info, 'my_alg')
    with open(f'{prefix}.segm.json', 'w') as f:
        json.dump([_det(segmentation=None)], f)
    with pytest.raises(ValueError, match='segm result file'):
        testdev.pack(prefix, image_info, 'alg')
    with pytest.raises(FileNotFoundError, match='format_only=True'):
        testdev.pack(str(tmp_path / 'nothing'), image_info, 'alg')


def test_check_command_exit_status(tmp_path, capsys):
    image_info = _write_image_info(tmp_path / 'image_info.json')
    good, bad = tmp_path / 'good.segm.json', tmp_path / 'bad.bbox.json'
    good.write_text(json.dumps([_det()]))
    bad.write_text(json.dumps([_det(category_id=5)]))
    assert testdev.main(['check', str(good), '--image-info', image_info]) == 0
    assert 'OK' in capsys.readouterr().out
    assert testdev.main(['check', str(good), str(bad), '--image-info', image_info]) == 1
    assert 'INVALID' in capsys.readouterr().out


def test_cfg_options_turn_a_coco_config_into_a_format_only_test_dev_run():
    cfg = Config.fromfile(osp.join(REPO, 'configs/_toy_/mask_rcnn_r18_toy.py'))
    options = testdev.testdev_cfg_options('data/coco/', 'work_dirs/testdev/run')
    cfg.merge_from_dict(dict(option.split('=', 1) for option in options))
    assert cfg.test_dataloader.dataset.ann_file == 'annotations/image_info_test-dev2017.json'
    assert cfg.test_dataloader.dataset.data_prefix.img == 'test2017/'
    assert cfg.test_evaluator.ann_file == 'data/coco/annotations/image_info_test-dev2017.json'
    assert cfg.test_evaluator.format_only in (True, 'True')
    assert cfg.test_evaluator.outfile_prefix == 'work_dirs/testdev/run'


# ----------------------------------------------------------------------------- end to end on the toy split
@pytest.fixture(scope='module')
def toy_testdev(tmp_path_factory):
    """Toy dataset (tiny splits) and an untrained toy Mask R-CNN checkpoint."""
    root = tmp_path_factory.mktemp('toy_coco')
    make_toy_coco(str(root), num_train=2, num_val=2, num_test=3, size=(96, 128), seed=5)
    config = osp.join(REPO, 'configs/_toy_/mask_rcnn_r18_toy.py')
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    checkpoint = root / 'untrained.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    return root, config, str(checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize('tta', [False, True], ids=['plain', 'tta'])
def test_tools_test_writes_valid_test_dev_submission(toy_testdev, tmp_path, tta):
    root, config, checkpoint = toy_testdev
    prefix = str(tmp_path / 'toy_testdev')
    options = testdev.testdev_cfg_options(
        f'{root}/', prefix, ann_file='annotations/image_info_test-dev.json', img_prefix='test/')
    # the untrained head scores every class ~1/4: keep the files small and the run short
    options += [
        'model.test_cfg.rcnn.max_per_img=5', 'test_dataloader.batch_size=1', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'tta_model.tta_cfg.max_per_img=5'
    ]
    command = [
        sys.executable,
        osp.join(REPO, 'tools/test.py'), config, checkpoint, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *options
    ] + (['--tta'] if tta else [])
    env = dict(os.environ, CBNET_TOY_DATA_ROOT=f'{root}/', PYTHONPATH=REPO)
    run = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    image_info_path = osp.join(root, 'annotations', 'image_info_test-dev.json')
    image_info = testdev.load_image_info(image_info_path)
    with open(image_info_path) as f:
        assert 'annotations' not in json.load(f)  # really a test-dev style split
    for task in ('bbox', 'segm'):
        path = f'{prefix}.{task}.json'
        assert osp.isfile(path), f'tools/test.py did not write {path}'
        assert testdev.check_file(path, image_info) == []
        with open(path) as f:
            results = json.load(f)
        assert {det['image_id'] for det in results} == set(image_info['images'])  # every test image
        assert {det['category_id'] for det in results} <= image_info['categories']
        assert max(sum(det['image_id'] == i for det in results) for i in image_info['images']) <= 5
    zips = testdev.pack(prefix, image_info_path, 'toy')
    assert [osp.basename(z) for z in zips
            ] == ['bbox_detections_test-dev2017_toy_results.zip', 'segm_detections_test-dev2017_toy_results.zip']
