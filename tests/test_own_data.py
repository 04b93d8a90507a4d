"""``tools/cbnetify.py --data-root DIR [--classes ...]``: a zoo config, made composite and pointed at your own
COCO-format data (cbnet.own_data), builds and trains on it: every dataset (also inside YOLOX's
MultiImageMixDataset), the evaluators and every head's num_classes (Cascade's three box heads) follow."""
import copy

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from cbnet.own_data import config_delta, leaf_datasets, set_num_classes
from cbnet.testing import load_tool, make_tiny_toy
from cbnet.testing.zoo import tiny_zoo_detector

CLASSES = ('rectangle', 'ellipse', 'triangle')  # the toy dataset's categories
cbnetify_tool = load_tool('tools/cbnetify.py')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_tiny_toy(str(tmp_path_factory.mktemp('own_data') / 'toy'))


def _walk(node, fn):
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


def _small_run(cfg: Config, work_dir: str) -> Config:
    """The same detector kind and data, tiny: a narrow backbone inside the same CBNet, 64 px images, 1 epoch."""
    model = cfg.model.to_dict()
    composite = model['backbone']
    model['backbone'] = composite['backbone']
    tiny = tiny_zoo_detector(model)
    composite['backbone'] = tiny['backbone']
    tiny['backbone'] = composite
    cfg.model = tiny

    def shrink(node):
        for key in ('scale', 'img_scale'):
            if isinstance(node.get(key), (list, tuple)) and len(node[key]) == 2:
                node[key] = (64, 64)
        if 'border' in node:
            node['border'] = (-32, -32)

    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        _walk(loader, shrink)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = work_dir
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize(
    'source, boxes_heads, classes',
    [
        ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 1, CLASSES),
        ('mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 3, None),  # classes read from the train file
        ('mmdet::yolox/yolox_s_8xb8-300e_coco.py', 1, CLASSES),
    ])
def test_cbnetified_zoo_config_trains_on_own_coco_data(data_root, tmp_path, source, boxes_heads, classes):
    out = str(tmp_path / 'dual_own.py')
    args = [source, '-o', out, '--data-root', data_root] + (['--classes', *classes] if classes else [])
    assert cbnetify_tool.main(args) == 0
    cfg = Config.fromfile(out)
    assert cfg.model.type.startswith('CB') and cfg.model.backbone.type == 'CBNet'
    for split in ('train', 'val', 'test'):
        leaves = list(leaf_datasets(cfg[f'{split}_dataloader'].dataset))
        assert leaves and all(leaf.data_root == data_root and tuple(leaf.metainfo.classes) == CLASSES
                              for leaf in leaves)
        assert leaves[0].ann_file == f'annotations/instances_{"train" if split == "train" else "val"}.json'
    assert cfg.val_evaluator.ann_file == data_root + 'annotations/instances_val.json'
    counts = []
    _walk(cfg.model.to_dict(), lambda node: counts.append(node['num_classes']) if 'num_classes' in node else None)
    assert counts.count(len(CLASSES)) == boxes_heads and set(counts) <= {1, len(CLASSES)}  # 1: the RPN
    runner = Runner.from_cfg(_small_run(cfg, str(tmp_path / 'run')))
    runner.train()  # one epoch of the 4 toy images, then validation against the toy val annotations
    scalars = runner.message_hub.log_scalars
    lead = [k for k in scalars if k.startswith('train/') and 'loss_' in k and 'assist' not in k]
    assert lead and all(k.replace('train/', 'train/assist1_') in scalars for k in lead)  # and the assisting branch
    assert 'val/coco/bbox_mAP' in scalars


def test_bad_class_name_lists_the_categories(data_root, tmp_path, capsys):
    code = cbnetify_tool.main([
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '-o',
        str(tmp_path / 'x.py'), '--data-root', data_root, '--classes', 'dog'
    ])
    assert code == 2
    assert "classes ['dog'] are not categories of" in capsys.readouterr().err


def test_num_classes_everywhere_but_the_rpn_and_wrappers_reach_every_dataset():
    model = dict(
        rpn_head=dict(num_classes=1),
        roi_head=dict(bbox_head=[dict(num_classes=80) for _ in range(3)], mask_head=dict(num_classes=80)),
        panoptic_head=dict(num_things_classes=80, num_stuff_classes=53, loss_cls=dict(class_weight=[1.0] * 133 + [.1])))
    changed = set_num_classes(model, 3)
    assert model['rpn_head']['num_classes'] == 1 and [h['num_classes']
                                                      for h in model['roi_head']['bbox_head']] == [3] * 3
    assert model['panoptic_head']['loss_cls']['class_weight'] == [1.0, 1.0, 1.0, 0.1] and len(changed) == 5
    concat = dict(
        type='ConcatDataset', datasets=[dict(type='RepeatDataset', dataset=dict(ann_file='a')),
                                        dict(ann_file='b')])
    assert [d['ann_file'] for d in leaf_datasets(concat)] == ['a', 'b']
    old = dict(a=dict(b=1, c=[1, 2]), d=2)
    new = copy.deepcopy(old)
    new['a']['c'] = [1, 3]
    assert config_delta(old, new) == dict(a=dict(c=[1, 3]))
