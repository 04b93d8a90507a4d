"""A small, representative part of the deployment sweep (``benchmarks/deploy_sweep.py``): a detector that exports
and agrees with PyTorch, one refused with the reason, each in its own process; the report's rows."""
import pytest

from cbnet.testing.deploy_sweep import STATUSES, DeployRow, markdown_report, sweep_detector, sweep_detectors

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')


@pytest.fixture(scope='module')
def rows():
    return {name: sweep_detector(name, timeout=240) for name in ('RetinaNet', 'Mask2Former')}


@pytest.mark.slow
def test_a_dense_detector_exports_and_agrees(rows):
    row = rows['RetinaNet']
    assert row.status == 'agree', f'{row.status} at {row.stage}: {row.reason}'
    assert row.config == 'retinanet/retinanet_r50_fpn_1x_coco.py' and row.task == 'detection'
    assert len(row.detections) == len(row.agreements) == 3 and all(n > 0 for n in row.detections)
    assert all(line.endswith(': agree') for line in row.agreements)
    assert row.max_box_diff < 1e-3 and row.max_score_diff < 1e-4 and row.min_mask_iou is None
    assert not row.verdict and not row.diagnoses


@pytest.mark.slow
def test_what_mmdeploy_cannot_export_is_refused_before_building(rows):
    row = rows['Mask2Former']
    assert row.status == 'refused' and row.stage == 'build' and row.task == 'instance-seg'
    assert 'Deploy a Mask R-CNN' in row.reason and not row.agreements


@pytest.mark.slow
def test_the_report_has_totals_and_one_row_per_class(rows):
    report = markdown_report(list(rows.values()), {'command': 'test'})
    assert '| agree | ' in report and '| refused | ' in report and '| all | | 2 |' in report
    retinanet = next(line for line in report.splitlines() if line.startswith('| RetinaNet |'))
    detections = '/'.join(str(n) for n in rows['RetinaNet'].detections)
    assert f'| `retinanet/retinanet_r50_fpn_1x_coco.py` | detection | agree | {detections} |' in retinanet
    assert 'MMDeploy exports MaskFormer/Mask2Former' in report


def test_every_composed_class_is_swept_and_a_lost_process_is_a_timeout():
    names = sweep_detectors()
    assert {'RetinaNet', 'HybridTaskCascade', 'DINO', 'SOLOv2', 'RTMDet-Ins'} <= set(names)
    assert not any(name.startswith('CB') for name in names)
    row = sweep_detector('RetinaNet', timeout=1)  # the process cannot import and build in a second
    assert row.status == 'timeout' and 'took more than 1 s' in row.reason
    assert isinstance(row, DeployRow) and row.status in STATUSES
