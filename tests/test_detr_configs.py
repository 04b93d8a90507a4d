"""The DINO and Mask2Former CB configs: the paper-style recipes keep mmdet's parameter groups for every branch,
and the toy configs learn on generated toy data through mmengine's Runner.

(Building and counting the paper-style configs is the generic job of tests/test_paper_configs.py.)
"""
import gc
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from cbnet.testing import REPO, make_tiny_toy, write_tiny_config
from cbnet.testing.zoo import plain_parameter_name
from cbnet.utils.configs import resolve_config_path, strip_pretrained

CONFIGS = osp.join(REPO, 'configs', 'cbnet')
#: CB recipe -> the mmdet recipe it is a delta of
RECIPES = {
    'dual_r50_dino.py': 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    'dual_swin_s_mask2former_instance.py': 'mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py',
}
TOY = ['dual_r18_dino_toy.py', 'dual_r18_mask2former_toy.py']


def _groups(config: str):
    """Model and ``{parameter name: (lr, weight decay)}`` as the config's optimizer constructor sets them."""
    cfg = Config.fromfile(resolve_config_path(config))
    strip_pretrained(cfg.model)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    by_param = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            by_param[id(param)] = (group['lr'], group['weight_decay'])
    named = {name: by_param[id(p)] for name, p in model.named_parameters() if id(p) in by_param}
    base_lr = cfg.optim_wrapper.optimizer.lr
    del model, optimizer
    gc.collect()
    return named, base_lr


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_every_branch_gets_the_recipes_lr_and_decay(name):
    """mmdet's custom_keys name the plain backbone's modules; the CB config must give each branch's copy of a
    parameter the lr and weight decay the single recipe gives the original, and the new composite connections
    the detector's full lr."""
    composite, base_lr = _groups(osp.join(CONFIGS, name))
    plain, plain_lr = _groups(RECIPES[name])
    assert base_lr == plain_lr
    checked = connections = 0
    for param_name, (lr, decay) in composite.items():
        if '.composition.' in param_name:
            assert lr == pytest.approx(base_lr), f'{param_name}: lr {lr}, expected the full {base_lr}'
            connections += 1
            continue
        expected = plain[plain_parameter_name(param_name)]
        assert (lr, decay) == pytest.approx(expected), \
            f'{param_name}: lr/decay {(lr, decay)}; the single recipe: {plain_parameter_name(param_name)} {expected}'
        checked += param_name.startswith('backbone.branches.1.')
    assert checked > 30 and connections > 0  # the lead's trainable parameters (R-50: frozen BN excluded)
    # the recipes really give the backbone its own groups (else the comparison above proves little): a lower lr
    # than the detector's, and for Mask2Former no decay on the Swin norms
    backbone_groups = {v for k, v in plain.items() if k.startswith('backbone.')}
    assert base_lr not in {lr for lr, _ in backbone_groups}
    assert len(backbone_groups) >= (1 if 'dino' in name else 2)


@pytest.fixture
def one_thread():
    """The toy models are too small to gain from a second thread; on shared cores two threads spin-waiting on
    each other made these runs ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('config', TOY)
def test_toy_detr_style_detectors_learn_on_the_toy_data(tmp_path, config, one_thread):
    """The Dual toy DINO / Mask2Former through mmengine's Runner on generated toy images: the loss falls and
    the assisting branch is supervised in every step."""
    from mmengine.runner import Runner

    data_root = make_tiny_toy(str(tmp_path / 'toy'))
    iters = 24
    # 24 steps at lr 1e-3 (the toys' 300-iteration schedules use less) so that the fall is clear in a short run
    path = write_tiny_config(
        str(tmp_path / 'cfg.py'),
        data_root,
        osp.join(CONFIGS, config),
        max_iters=iters,
        flip_prob=0.0,
        extra='param_scheduler = []\nval_cfg = None\nval_dataloader = None\n'
        'val_evaluator = None\nrandomness = dict(seed=0)\n'
        'optim_wrapper = dict(optimizer=dict(lr=1e-3))\n')
    cfg = Config.fromfile(path)
    cfg.work_dir = str(tmp_path / 'work')
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    losses = np.array(hub.get_scalar('train/loss')._log_history)
    assert len(losses) == iters and np.isfinite(losses).all()
    assert losses[-6:].mean() < 0.7 * losses[:6].mean(), losses
    assert len(hub.get_scalar('train/assist1_loss_cls')._log_history) == iters
