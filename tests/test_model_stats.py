"""cbnet.analysis and its CLI tools/analysis_tools/model_stats.py: configs in, sane statistics out (tiny, CPU)."""
import json

import pytest
import torch

from cbnet.analysis import (collect_stats, load_config, markdown_header, measure_train_step, run_record, start_run,
                            write_results)
from cbnet.testing import load_tool

model_stats = load_tool('tools/analysis_tools/model_stats.py')

TINY_RESNET = ("dict(type='ResNet', depth=18, base_channels=8, stem_channels=8, out_indices=(0, 1, 2, 3), "
               "norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, "
               "init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18'))")
SINGLE = f"""
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)
inner = {TINY_RESNET}
model = dict(
    backbone=inner,
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=16),
                  bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=100, max_per_img=20), rcnn=dict(sampler=dict(num=16))),
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=20), rcnn=dict(max_per_img=10)))
"""
DUAL = """
_base_ = './single.py'
model = dict(type='CBFasterRCNN',
             backbone=dict(_delete_=True, type='CBNet', backbone={{_base_.inner}}, num_backbones=2))
"""
BACKBONE_ONLY = f"""
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)
model = dict(type='CBNet', backbone={TINY_RESNET}, num_backbones={{k}})
"""
SINGLE_BACKBONE = f"""
model = {TINY_RESNET}
"""


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    d = tmp_path_factory.mktemp('cfgs')
    files = {
        'single': SINGLE,
        'dual': DUAL,
        'bb1': SINGLE_BACKBONE,
        'bb2': BACKBONE_ONLY.replace('{k}', '2'),
        'bb3': BACKBONE_ONLY.replace('{k}', '3')
    }
    for name, text in files.items():
        (d / f'{name}.py').write_text(text)
    return {name: str(d / f'{name}.py') for name in files}


def test_pretrained_is_dropped_everywhere_in_the_config(configs):
    cfg = load_config(configs['dual'])
    text = json.dumps(cfg.model.to_dict())
    assert 'Pretrained' not in text and 'torchvision://' not in text
    assert cfg.model.backbone.backbone.init_cfg is None
    with pytest.raises(FileNotFoundError, match='installed mmdet'):
        load_config('mmdet::no_such/config.py')


def test_cli_writes_sane_json_for_single_and_dual_detectors(configs, tmp_path, capsys):
    out = tmp_path / 'stats.json'
    rows = model_stats.main([
        configs['single'], configs['dual'], '--shape', '64', '96', '--warmup', '0', '--repeat', '2', '--out',
        str(out)
    ])
    printed = capsys.readouterr().out
    assert 'single.py' in printed and 'dual.py' in printed and 'Not counted' in printed
    data = json.loads(out.read_text())
    assert data['environment']['torch'] and data['environment']['mmdet'] == '3.3.0'
    assert data['results'][0]['params'] == json.loads(json.dumps(rows[0]['params']))
    single, dual = data['results']
    assert [r['num_backbones'] for r in (single, dual)] == [1, 2]
    assert dual['model_type'] == 'CBFasterRCNN' and dual['backbone_type'] == 'CBNet'
    for r in (single, dual):
        assert r['params']['total'] > r['params']['backbone'] > 0
        assert r['flops']['total'] > r['flops']['backbone'] > 0
        assert r['input_shape'] == [64, 96]  # 64x96 is already a multiple of the pad divisor 32
        assert r['latency']['median_s'] > 0 and len(r['latency']['times_s']) == 2
        for stat in ('params', 'flops'):
            assert sum(r[stat]['modules'].values()) == r[stat]['total']
        # the RoI head's parts: box head and RoI extractor
        assert set(r['flops']['parts']['roi_head']) == {'bbox_head'}  # RoIAlign (extractor) is not counted
        assert r['params']['parts']['roi_head']['bbox_head'] == r['params']['modules']['roi_head']
    # The detectors differ only in the backbone: Dual adds a (pruned) branch and the connections.
    assert dual['params']['total'] - single['params']['total'] == \
        dual['params']['backbone'] - single['params']['backbone'] > 0
    assert len(dual['params']['branches']) == 2 and dual['params']['composition'] > 0
    assert single['params']['branches'] == [single['params']['backbone']]
    assert single['params']['composition'] == 0
    assert 1.3 < dual['flops']['backbone'] / single['flops']['backbone'] < 2.3
    # In eval only the lead's features reach the neck and heads: their FLOPs are the single detector's.
    for name in ('neck', 'rpn_head', 'roi_head'):
        assert dual['flops']['modules'][name] == single['flops']['modules'][name] > 0
    # The RoI head's custom RoIAlign is traced as a Python op that the counter cannot count.
    assert any('RoIAlign' in op or 'PythonOp' in op for op in dual['flops']['uncounted_ops'])
    assert dual['flops']['analytic'] == {}  # no deformable attention here


def test_backbone_only_configs_single_dual_triple(configs):
    rows = [collect_stats(configs[k], (64, 64), latency=False) for k in ('bb1', 'bb2', 'bb3')]
    params = [r['params']['total'] for r in rows]
    flops = [r['flops']['total'] for r in rows]
    assert params[0] < params[1] < params[2] and flops[0] < flops[1] < flops[2]
    assert [len(r['params']['branches']) for r in rows] == [1, 2, 3]
    # Branch FLOPs + composition FLOPs add up to the backbone's.
    tri = rows[2]['flops']
    assert sum(tri['branches']) + tri['composition'] == tri['backbone'] == tri['total']
    assert tri['composition'] > 0  # the 1x1 convs and resizes of the connections are counted


@pytest.mark.slow
def test_train_step_time_and_peak_memory_in_a_subprocess(configs):
    runs = {
        b: measure_train_step(
            configs['dual'], (128, 128), 'cpu', batch_size=b, warmup=1, repeat=1, timer='cpu', threads=1)
        for b in (1, 4)
    }
    for b, result in runs.items():
        assert result['median_s'] > 0 and result['batch_size'] == b and result['timer'] == 'cpu'
        assert result['input_shape'] == [128, 128]
        assert result['loss'] == result['loss'] and result['loss'] > 0  # finite, positive loss
        assert result['peak_rss_bytes'] > result['peak_mem_increase_bytes'] > 0  # weights not counted
        assert 'VmHWM' in result['mem_method']
    # Activations scale with the batch: 4 images need clearly more step memory than 1. (If the peak
    # were masked by earlier work or freed memory stayed resident, both would read about the same.)
    assert runs[4]['peak_mem_increase_bytes'] > 1.5 * runs[1]['peak_mem_increase_bytes']


def test_cuda_without_cuda_is_a_clear_error(configs, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit):
        model_stats.parse_args([configs['single'], '--device', 'cuda'])
    assert 'CUDA is not available' in capsys.readouterr().err


def test_result_files_and_run_record(tmp_path):
    """Every benchmark writes its JSON and markdown through write_results, which makes checkout paths relative
    (committed results must not name the machine), and starts its markdown with the run record."""
    start = start_run()
    record = run_record(start, 'benchmarks/example.py', ['--rounds', '3'])
    assert record['command'] == 'python benchmarks/example.py --rounds 3'
    assert record['minutes'] >= 0 and len(record['loadavg_after']) == 3
    header = markdown_header('Example', record)
    assert header[0] == '# Example' and 'python benchmarks/example.py --rounds 3' in header[2]
    assert f"before/after {record['loadavg_before']}" in header[4]

    result = dict(record, config='/some/checkout/configs/x.py', value=1.5)
    json_path, md_path = write_results(
        str(tmp_path / 'out'), 'example', result, '\n'.join(header), relative_to='/some/checkout')
    with open(json_path) as f:
        written = json.load(f)
    assert written['config'] == 'configs/x.py' and written['value'] == 1.5
    with open(md_path) as f:
        assert f.read().startswith('# Example\n')


def test_train_worker_progress_names_the_config_and_the_table_names_its_memory(configs, monkeypatch, capsys):
    """An in-memory config is dumped to 'config.py' for the worker: its progress lines still name the config;
    the table says which memory it shows (whole peak vs what the step added)."""
    import subprocess
    from types import SimpleNamespace

    from cbnet.analysis import format_table
    from cbnet.analysis.train_step import run_worker

    specs = []
    monkeypatch.setattr(
        subprocess, 'run',
        lambda cmd, **kw: specs.append(json.loads(cmd[-1])) or SimpleNamespace(stdout='', stderr='', returncode=1))
    cfg = load_config(configs['dual'])
    with pytest.raises(RuntimeError):
        measure_train_step(cfg, (64, 64), 'cpu', batch_size=1, warmup=0, repeat=1, verbose=False)
    assert specs[0]['config'].endswith('config.py') and specs[0]['name'] == 'dual.py'
    monkeypatch.undo()
    result = run_worker(dict(specs[0], config=configs['dual'], threads=1))
    assert capsys.readouterr().err.splitlines()[0].startswith('dual.py: train warm-up')
    table = format_table([dict(config='dual.py', params=dict(total=1), train=result)]).splitlines()
    assert table[0].endswith('| train peak mem (MiB) | train step +mem (MiB) |')
    peak, added = (float(c) for c in table[2].strip(' |').split(' | ')[-2:])
    assert peak == round(result['peak_rss_bytes'] / 2**20) and peak > added  # the peak holds the runtime too
