"""tools/analysis_tools/battle.py and cbnet.analysis.metrics: metrics lookup, table and plot (tiny configs, CPU)."""
import json
import os
import time

import pytest
import torch

from cbnet.analysis.metrics import find_metrics
from cbnet.testing import load_tool

battle = load_tool('tools/analysis_tools/battle.py')

TINY_RESNET = ("dict(type='ResNet', depth=18, base_channels=8, stem_channels=8, out_indices=(0, 1, 2, 3), "
               'init_cfg=None)')


def _write_work_dir(root, name, bbox, segm=None, older=None):
    """A work dir as mmengine leaves it: <ts>/vis_data/scalars.json (json lines) and <ts>/<ts>.log."""
    run = root / name / '20260101_000000'
    (run / 'vis_data').mkdir(parents=True)
    entries = [{'loss': 1.0, 'step': 1}, {'coco/bbox_mAP': bbox - 0.1, 'step': 1}]
    last = {'coco/bbox_mAP': bbox, 'step': 2}
    if segm is not None:
        last['coco/segm_mAP'] = segm
    entries.append(last)
    (run / 'vis_data' / 'scalars.json').write_text('\n'.join(json.dumps(e) for e in entries) + '\n')
    if older is not None:  # an older text log with other numbers must lose to the newer json
        log = run / '20260101_000000.log'
        log.write_text(f'... Epoch(val) [12][5000/5000]  coco/bbox_mAP: {older}  coco/bbox_mAP_50: 0.6\n')
        past = time.time() - 3600
        os.utime(log, (past, past))


def test_find_metrics_takes_the_newest_last_entry(tmp_path):
    _write_work_dir(tmp_path, 'a', bbox=0.412, segm=0.371, older=0.111)
    found = find_metrics(str(tmp_path / 'a'))
    assert found['bbox_mAP'] == pytest.approx(0.412) and found['segm_mAP'] == pytest.approx(0.371)
    assert found['source'].endswith('scalars.json')
    assert find_metrics(str(tmp_path / 'missing')) == {}


def test_find_metrics_reads_text_logs(tmp_path):
    log = tmp_path / 'x.log'
    log.write_text('coco/bbox_mAP: 0.408  coco/bbox_mAP_50: 0.61  coco/segm_mAP: 0.366\n')
    assert find_metrics(str(log)) == dict(bbox_mAP=0.408, segm_mAP=0.366, source=str(log))


def test_battle_with_and_without_metrics(tmp_path):
    cfgs = []
    for k in (1, 2):
        body = TINY_RESNET if k == 1 else f"dict(type='CBNet', backbone={TINY_RESNET}, num_backbones=2)"
        path = tmp_path / f'r18_k{k}.py'
        path.write_text(f"custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)\nmodel = {body}\n")
        cfgs.append(str(path))
    work_dirs = tmp_path / 'work_dirs'
    _write_work_dir(work_dirs, 'r18_k2', bbox=0.5)
    out = tmp_path / 'out'
    common = ['--shape', '64', '64', '--warmup', '0', '--repeat', '1', '--work-dirs', str(work_dirs)]
    rows = battle.main(cfgs + ['--out', str(out)] + common)
    md = (out / 'battle.md').read_text()
    assert '| r18_k2 | 2 |' in md and '50.0' in md and 'cost only' not in md
    assert rows[0]['metrics'] == {} and rows[1]['metrics']['bbox_mAP'] == 0.5
    assert (out / 'battle.png').stat().st_size > 5000
    assert json.loads((out / 'battle.json').read_text())['results'][1]['num_backbones'] == 2
    # the latencies: one thread, CPU time, 3 alternating rounds of --repeat runs each, the minimum reported
    latency = rows[1]['latency']
    assert (latency['timer'], latency['threads'], latency['rounds'], len(latency['times_s'])) == ('cpu', 1, 3, 3)
    assert latency['min_s'] == min(latency['times_s']) and 'Latency ratios to r18_k1: r18_k2' in md
    # No metrics anywhere: a cost-only table and plot, and it says so.
    out2 = tmp_path / 'out2'
    battle.main(cfgs[:1] + [
        '--out',
        str(out2), '--shape', '64', '64', '--warmup', '0', '--repeat', '1', '--work-dirs',
        str(tmp_path / 'none')
    ])
    md2 = (out2 / 'battle.md').read_text()
    assert 'cost only' in md2
    assert f"looked in {tmp_path / 'none' / 'r18_k1'}/" in md2  # where, and how to point it elsewhere
    assert '--metrics CONFIG=PATH' in md2 and '`--metrics r18_k1=work_dirs/demo`' in md2
    assert (out2 / 'battle.png').exists()


def test_battle_latency_takes_threads_and_timer(tmp_path):
    path = tmp_path / 'r18.py'
    path.write_text(f"model = {TINY_RESNET}\n")
    args = ['--out', str(tmp_path / 'out'), '--shape', '64', '64', '--warmup', '0', '--repeat', '2', '--rounds', '1']
    before = torch.get_num_threads()
    try:
        latency = battle.main([str(path)] + args + ['--timer', 'wall', '--threads', '1'])[0]['latency']
        assert (latency['timer'], latency['threads'], len(latency['times_s'])) == ('wall', 1, 2)
    finally:
        torch.set_num_threads(before)
