"""mmdet's own log analysis (``tools/analysis_tools/analyze_logs.py``, shipped in mmdet's wheel under
``mmdet/.mim/tools``) plots a CB detector's training log: the assisting branches' losses (``assist1_*``) are
plain keys of mmengine's json log. It needs seaborn (``requirements/optional.txt``)."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from cbnet.testing import DUAL_TOY, make_tiny_toy, write_tiny_config
from cbnet.utils.configs import package_config_dir

pytest.importorskip('seaborn', reason='seaborn (requirements/optional.txt) is not installed')
ANALYZE_LOGS = osp.join(osp.dirname(package_config_dir('mmdet')), 'tools', 'analysis_tools', 'analyze_logs.py')


@pytest.mark.slow
def test_mmdet_analyze_logs_plots_assisting_losses(tmp_path):
    data_root = make_tiny_toy(str(tmp_path / 'toy'))
    cfg = Config.fromfile(write_tiny_config(str(tmp_path / 'dual.py'), data_root, base=DUAL_TOY, max_iters=2))
    cfg.work_dir = str(tmp_path / 'run')
    cfg.visualizer.name = f'analyze_logs_{tmp_path.name}'  # mmengine reuses a visualizer of the same name
    Runner.from_cfg(cfg).train()
    log = glob.glob(osp.join(cfg.work_dir, '*', 'vis_data', 'scalars.json'))[0]
    out = str(tmp_path / 'losses.png')
    cmd = [sys.executable, ANALYZE_LOGS, 'plot_curve', log, '--keys', 'loss_cls', 'assist1_loss_cls']
    cmd += ['--out', out, '--backend', 'Agg']
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'metric is assist1_loss_cls' in proc.stdout and osp.getsize(out) > 5000
