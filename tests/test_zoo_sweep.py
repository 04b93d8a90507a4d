"""A small, representative part of the zoo sweep (``benchmarks/zoo_sweep.py``): one config per detector family
through cbnetify, the tiny plain detector and its CB variant; refusals, non-detector configs; the summary."""
import pytest

from cbnet.testing.zoo_sweep import (SweepResult, cause_of, few_detections, markdown_report, summarize, sweep_config,
                                     zoo_configs)

#: one config per kind of detector: two-stage (FPN, neck-less C4, cascade with masks, HTC with its semantic
#: branch, point-based masks, query-based), single-stage (anchor-based, anchor-free, single-level), DETR-style,
#: MaskFormer-style (panoptic), instance segmentors, panoptic FPN
CONVERTED = [
    'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py',
    'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    'htc/htc_r50_fpn_1x_coco.py',
    'point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py',
    'sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py',
    'retinanet/retinanet_r50_fpn_1x_coco.py',
    'yolox/yolox_s_8xb8-300e_coco.py',
    'rtmdet/rtmdet_x_p6_4xb8-300e_coco.py',  # four maps at strides 8-64: the stand-in backbone must match them
    'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'yolof/yolof_r50-c5_8xb8-1x_coco.py',
    'centernet/centernet_r18_8xb16-crop512-140e_coco.py',
    'detr/detr_r50_8xb2-150e_coco.py',
    'deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'dino/dino-4scale_r50_8xb2-12e_coco.py',
    'mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
    'maskformer/maskformer_r50_ms-16xb1-75e_coco.py',
    'solov2/solov2_r50_fpn_1x_coco.py',
    'condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py',
    'yolact/yolact_r50_1xb8-55e_coco.py',
    'panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
    'mm_grounding_dino/lvis/grounding_dino_swin-t_finetune_16xb4_1x_lvis.py',  # tiny BERT, chunked prompt
]
#: configs cbnetify refuses, and a word of the reason it must give
REFUSED = {
    'detectors/detectors_htc-r50_1x_coco.py': 'RFP',  # the neck runs the backbone again
    'soft_teacher/soft-teacher_faster-rcnn_r50-caffe_fpn_180k_semi-0.1-coco.py': 'semi-supervised',
}
#: configs that are no detector configs
SKIPPED = {
    'qdtrack/qdtrack_faster-rcnn_r50_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py': 'not a detector',
    'common/ms_3x_coco.py': 'no model',
}


@pytest.mark.parametrize('rel', CONVERTED)
def test_zoo_config_converts_trains_and_predicts(rel):
    result = sweep_config(rel, timeout=240)
    assert result.status == 'ok', f'{rel}: {result.status} at {result.stage}: {result.reason}'
    details = result.details
    assert details['type'].startswith('CB') and details['losses'] == 2 * details['lead_losses'] > 0


def test_triple_gets_losses_for_both_assisting_branches():
    result = sweep_config('dino/dino-4scale_r50_8xb2-12e_coco.py', num_backbones=3)
    assert result.status == 'ok', result.reason
    assert result.details['losses'] == 3 * result.details['lead_losses']


@pytest.mark.parametrize('rel, word', sorted(REFUSED.items()))
def test_refused_configs_say_why(rel, word):
    result = sweep_config(rel)
    assert result.status == 'refused' and result.stage == 'cbnetify' and word in result.reason, result


@pytest.mark.parametrize('rel, word', sorted(SKIPPED.items()))
def test_non_detector_configs_are_skipped(rel, word):
    result = sweep_config(rel)
    assert result.status == 'skipped' and word in result.reason, result


def test_identical_tiny_models_run_once():
    seen = {}
    first = sweep_config('retinanet/retinanet_r50_fpn_1x_coco.py', seen=seen)
    second = sweep_config('retinanet/retinanet_r50_fpn_2x_coco.py', seen=seen)  # same model, longer schedule
    assert first.status == second.status == 'ok' and len(seen) == 1
    assert second.same_as == first.config and not first.same_as


def test_the_sweep_covers_the_whole_zoo_but_base_files():
    configs = zoo_configs()
    assert len(configs) > 700 and not any('_base_' in c.split('/') for c in configs)
    assert set(CONVERTED) | set(REFUSED) | set(SKIPPED) <= set(configs)


def test_few_detections_caps_every_stage():
    model = dict(test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=1000), rcnn=[dict(max_per_img=100)] * 2))
    few_detections(model)
    assert model['test_cfg']['rpn'] == dict(nms_pre=100, max_per_img=20)
    assert all(stage['max_per_img'] == 20 for stage in model['test_cfg']['rcnn'])


def test_summary_groups_failures_by_cause():
    results = [
        SweepResult('a/x.py', 'a', status='ok'),
        SweepResult('a/y.py', 'a', status='failed', stage='loss', reason='KeyError: index 3 [m.py:10]'),
        SweepResult('b/z.py', 'b', status='failed', stage='loss', reason='KeyError: index 7 [m.py:10]'),
        SweepResult('b/w.py', 'b', status='refused', stage='cbnetify', reason='backbone X is not supported'),
    ]
    assert cause_of(results[1]) == cause_of(results[2]) == 'loss: KeyError: index N [m.py:N]'
    summary = summarize(results)
    assert summary['totals']['ok'] == 1 and summary['totals']['failed'] == 2 and summary['configs'] == 4
    assert summary['families'] == {'a': {'ok': 1, 'failed': 1}, 'b': {'failed': 1, 'refused': 1}}
    assert list(summary['causes']['failed'].values()) == [['a/y.py', 'b/z.py']]
    report = markdown_report(results, summary, {'command': 'x'})
    assert '**2** x loss: KeyError' in report and '| `b/w.py` |' in report
