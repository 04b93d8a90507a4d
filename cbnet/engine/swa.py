"""Stochastic weight averaging of the epoch-end weights during an SWA training stage.

Why: the released CBNetV2 SWA models (and "SWA Object Detection", about +1 AP on mmdet detectors) train 12 more
epochs with a cyclic learning rate (``configs/_base_/swa_12e.py``) and use the mean of the 12 epoch-end weights.
:class:`SWAHook` keeps that mean while training, so the averaged model exists (and is validated) when the run
ends, without keeping or re-reading the 12 checkpoints. ``tools/model_converters/average_checkpoints.py``
computes the same mean from the epoch checkpoints afterwards (:mod:`cbnet.converters.averaging`).

What is averaged (the same rule as the file averaging): every floating-point tensor of the model's state dict,
parameters and float buffers alike (BatchNorm running statistics: constant in frozen or ``norm_eval`` BNs, the
mean of the epoch-end statistics in BNs that update, as the recipe's averaging did; it does not recompute them on
data); integer tensors (``num_batches_tracked``) are the last epoch's. The running mean is mmengine's
``StochasticWeightAverage`` (``update_buffers=True``).
"""
import logging
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import StochasticWeightAverage, is_model_wrapper
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

#: where a checkpoint carries the running average (for ``--resume``), next to mmengine's ``state_dict``
SWA_STATE_KEY = 'swa_state_dict'


@HOOKS.register_module()
class SWAHook(Hook):
    """Average the model's weights at the end of every epoch (from ``begin_epoch`` on); save and validate the mean.

    After each averaged epoch the mean is written to ``<work_dir>/<filename>`` (a checkpoint with ``state_dict``
    and ``meta``, which ``tools/test.py`` and ``load_from`` read; ``meta.swa`` lists the averaged epochs). The
    epoch checkpoints keep the trained (not averaged) weights, so ``average_checkpoints.py`` over them gives the
    same mean. Every checkpoint also stores the running mean under ``swa_state_dict``: ``--resume`` continues it.

    Args:
        begin_epoch: the first epoch (1-based) whose end weights enter the mean. 1 (default) averages every epoch
            of the run: the SWA configs train the SWA stage as a run of its own, started with ``load_from``.
        filename: the averaged checkpoint's file name in the work dir.
        validate_average: evaluate the mean (instead of the current weights) in the validation after each averaged
            epoch, as the recipe did; the weights are swapped back before training goes on.
    """

    priority = 'NORMAL'  # after the optimizer's last step of the epoch, before CheckpointHook (VERY_LOW)

    def __init__(self, begin_epoch: int = 1, filename: str = 'swa_model.pth', validate_average: bool = True) -> None:
        if begin_epoch < 1:
            raise ValueError(f'SWAHook: begin_epoch is 1-based (the first epoch is 1), got {begin_epoch}.')
        self.begin_epoch = begin_epoch
        self.filename = filename
        self.validate_average = validate_average
        self.average: Optional[StochasticWeightAverage] = None
        self.epochs: List[int] = []
        self._swapped = False

    def _model(self, runner) -> torch.nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _averaged_model(self, runner) -> StochasticWeightAverage:
        # made when first needed: a test run with this config does not hold a second copy of the model
        if self.average is None:
            self.average = StochasticWeightAverage(self._model(runner), update_buffers=True)
        return self.average

    def before_train(self, runner) -> None:
        max_epochs = getattr(runner.train_loop, 'max_epochs', None)
        if max_epochs is None:
            raise ValueError('SWAHook averages epoch-end weights: use an epoch-based training loop '
                             "(train_cfg=dict(type='EpochBasedTrainLoop', ...)), as configs/_base_/swa_12e.py does.")
        if self.begin_epoch > max_epochs:
            raise ValueError(f'SWAHook: begin_epoch={self.begin_epoch} is after the last epoch ({max_epochs}): '
                             'nothing would be averaged.')

    def after_train_epoch(self, runner) -> None:
        epoch = runner.epoch + 1  # runner.epoch is still the 0-based index of the epoch that ends
        if epoch < self.begin_epoch:
            return
        model = self._model(runner)
        self._averaged_model(runner).update_parameters(model)
        # integer tensors (BN num_batches_tracked): the last epoch's, not the first one's
        source = model.state_dict()
        for key, value in self.average.module.state_dict().items():
            if not value.dtype.is_floating_point:
                value.copy_(source[key])
        self.epochs.append(epoch)
        self._save(runner)

    def _save(self, runner) -> None:
        if not is_main_process():
            return
        path = osp.join(runner.work_dir, self.filename)
        meta = dict(
            epoch=runner.epoch + 1,
            iter=runner.iter,
            swa=dict(epochs=list(self.epochs), count=len(self.epochs)),
            cfg=runner.cfg.pretty_text)
        dataset = getattr(runner.train_dataloader, 'dataset', None)
        if hasattr(dataset, 'metainfo'):
            meta['dataset_meta'] = dataset.metainfo
        checkpoint = dict(meta=meta, state_dict=weights_to_cpu(self.average.module.state_dict()))
        save_checkpoint(checkpoint, path, backend_args=dict(backend='atomic_local'))
        print_log(
            f'SWA: mean of the weights of epochs {self.epochs[0]}-{self.epochs[-1]} ({len(self.epochs)} epochs) '
            f'saved to {path}',
            logger='current')

    # validation of the mean -----------------------------------------------------------------------------------
    def _swap(self, runner) -> None:
        current = self._model(runner).state_dict()
        for key, averaged in self.average.module.state_dict().items():
            kept = averaged.detach().clone()
            averaged.copy_(current[key])
            current[key].copy_(kept)
        self._swapped = not self._swapped

    def before_val_epoch(self, runner) -> None:
        if self.validate_average and self.epochs and not self._swapped:
            print_log(f'SWA: validating the mean of {len(self.epochs)} epochs', logger='current')
            self._swap(runner)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self._swapped:
            self._swap(runner)

    # resume ---------------------------------------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.average is None:
            return
        checkpoint[SWA_STATE_KEY] = weights_to_cpu(self.average.state_dict())
        checkpoint.setdefault('meta', {})['swa_epochs'] = list(self.epochs)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: the mean starts with this run's first epoch
        state = checkpoint.get(SWA_STATE_KEY)
        if state is None:
            print_log(
                'SWA: the resumed checkpoint has no running mean (swa_state_dict): averaging starts again from '
                'the next epoch.',
                logger='current',
                level=logging.WARNING)
            return
        self._averaged_model(runner).load_state_dict(state, strict=True)
        self.epochs = list(checkpoint.get('meta', {}).get('swa_epochs', []))
