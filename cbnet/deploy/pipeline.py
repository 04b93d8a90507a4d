"""Export a (CB) detector with MMDeploy, build its backend model, and check it against PyTorch.

The steps of MMDeploy's ``tools/deploy.py`` (``torch2onnx``, ``to_backend``, optionally ``export2SDK``), run in
this process with the torch-compatibility fixes of :mod:`cbnet.deploy.compat` active only around them, then
both models on the test images, compared by :func:`cbnet.deploy.parity.compare_instances`.
"""
import copy
import logging
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config

from .compat import deploy_patches
from .diagnosis import Diagnosis, diagnose
from .padding import with_padding_in_graph
from .parity import Agreement, ParityError, Tolerance, compare_instances
from .solov2 import with_mmdet_mask_postprocessing
from .support import check_deployable, export_error

ConfigLike = Union[str, Config]
#: the model config of the deployed model, written next to ``end2end.onnx``
DEPLOYED_MODEL_CFG = 'deployed_model_cfg.py'


@dataclass
class DeployResult:
    """What :func:`deploy` made and measured."""

    work_dir: str
    ir_file: str
    backend_files: List[str]
    fixes: List[str]
    agreements: List[Agreement] = field(default_factory=list)
    #: why the disagreeing images disagree (:mod:`.diagnosis`)
    diagnoses: List[Diagnosis] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.agreements)

    def as_dict(self) -> Dict[str, Any]:
        return dict(
            work_dir=self.work_dir,
            ir_file=self.ir_file,
            backend_files=self.backend_files,
            fixes=self.fixes,
            agreements=[a.as_dict() for a in self.agreements],
            diagnoses=[d.as_dict() for d in self.diagnoses],
            ok=self.ok)


def load_configs(deploy_cfg: ConfigLike, model_cfg: ConfigLike):
    """Both configs as mmengine Configs; ``mmdet::``/``cbnet::`` model config names are resolved."""
    from mmdeploy.utils import load_config

    from ..utils.configs import resolve_config_path
    if isinstance(model_cfg, str):
        model_cfg = resolve_config_path(model_cfg)
    deploy_cfg, model_cfg = load_config(deploy_cfg, model_cfg)
    return deploy_cfg, model_cfg


def deployed_configs(deploy_cfg: ConfigLike, model_cfg: ConfigLike):
    """The configs the deployed model is exported and run with: :func:`load_configs`, with the padding moved
    into the graph for ONNX Runtime (:mod:`.padding`) and SOLOv2's backend model (:mod:`.solov2`)."""
    return _deployed(*load_configs(deploy_cfg, model_cfg))


def _deployed(deploy_cfg: Config, model_cfg: Config):
    return with_mmdet_mask_postprocessing(*with_padding_in_graph(deploy_cfg, model_cfg))


def export(deploy_cfg: ConfigLike,
           model_cfg: ConfigLike,
           checkpoint: Optional[str],
           img: Any,
           work_dir: str,
           device: str = 'cpu',
           export_overrides: Optional[Dict] = None) -> DeployResult:
    """``DIR/end2end.onnx`` (the deploy config's ``save_file``) and the backend files, as MMDeploy's tool
    writes them, and ``DIR/deployed_model_cfg.py``: the model config to run the backend model with (MMDeploy's
    ``tools/test.py``), whose data preprocessor leaves the padding to the graph."""
    from mmdeploy.apis import torch2onnx
    from mmdeploy.apis.utils import to_backend
    from mmdeploy.utils import get_backend, get_ir_config

    deploy_cfg, model_cfg = deployed_configs(deploy_cfg, model_cfg)
    check_deployable(model_cfg, deploy_cfg)
    os.makedirs(work_dir, exist_ok=True)
    model_cfg.dump(osp.join(work_dir, DEPLOYED_MODEL_CFG))
    save_file = get_ir_config(deploy_cfg)['save_file']
    with deploy_patches(export_overrides) as fixes:
        try:
            torch2onnx(img, work_dir, save_file, deploy_cfg, model_cfg, checkpoint, device=device)
        except Exception as e:  # noqa: BLE001 - re-raised with the op/module named
            raise export_error(model_cfg.model.type, e) from e
    ir_file = osp.join(work_dir, save_file)
    backend = get_backend(deploy_cfg)
    backend_files = to_backend(
        backend, [ir_file], work_dir=work_dir, deploy_cfg=deploy_cfg, log_level=logging.WARNING, device=device)
    return DeployResult(work_dir=work_dir, ir_file=ir_file, backend_files=list(backend_files), fixes=fixes)


def export_graph(deploy_cfg: ConfigLike,
                 model_cfg: ConfigLike,
                 checkpoint: Optional[str],
                 img: Any,
                 work_dir: str,
                 export_overrides: Optional[Dict] = None) -> str:
    """Only ``DIR/end2end.onnx`` for the deploy config's backend, exported on the CPU, without building the
    backend: the graph a CUDA machine's TensorRT would build its engine from (TensorRT's own rewriters and
    ops: ``TRTBatchedNMS``, ``MMCVRoiAlign``), checkable on a machine without one. Returns the file."""
    from mmdeploy.apis.onnx import export as onnx_export
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_backend, get_dynamic_axes, get_input_shape, get_onnx_config

    deploy_cfg, model_cfg = deployed_configs(deploy_cfg, model_cfg)
    check_deployable(model_cfg, deploy_cfg)
    os.makedirs(work_dir, exist_ok=True)
    on_cpu = copy.deepcopy(deploy_cfg)
    on_cpu.backend_config = dict(type='onnxruntime')  # only to build the PyTorch model on the CPU
    processor = build_task_processor(model_cfg, on_cpu, 'cpu')
    model = processor.build_pytorch_model(checkpoint)
    data, inputs = processor.create_input(img, get_input_shape(deploy_cfg), data_preprocessor=model.data_preprocessor)
    onnx_cfg = get_onnx_config(deploy_cfg)
    names = onnx_cfg['input_names'] + onnx_cfg['output_names']
    prefix = osp.join(work_dir, osp.splitext(onnx_cfg['save_file'])[0])
    with deploy_patches(export_overrides):
        onnx_export(
            model,
            inputs,
            prefix,
            backend=get_backend(deploy_cfg).value,
            input_metas=dict(data_samples=data['data_samples'], mode='predict'),
            context_info=dict(deploy_cfg=deploy_cfg),
            input_names=onnx_cfg['input_names'],
            output_names=onnx_cfg['output_names'],
            opset_version=onnx_cfg.get('opset_version', 11),
            dynamic_axes=get_dynamic_axes(deploy_cfg, names),
            keep_initializers_as_inputs=onnx_cfg.get('keep_initializers_as_inputs', True),
            optimize=onnx_cfg.get('optimize', False))
    return prefix + '.onnx'


def dump_sdk_info(deploy_cfg: ConfigLike, model_cfg: ConfigLike, checkpoint: Optional[str], work_dir: str,
                  device: str) -> None:
    """MMDeploy SDK's ``deploy.json``, ``pipeline.json`` and ``detail.json`` (``--dump-info``)."""
    from mmdeploy.backend.sdk.export_info import export2SDK
    deploy_cfg, model_cfg = deployed_configs(deploy_cfg, model_cfg)
    export2SDK(deploy_cfg, model_cfg, work_dir, pth=checkpoint, device=device)


def predictions(deploy_cfg: ConfigLike,
                model_cfg: ConfigLike,
                checkpoint: Optional[str],
                backend_files: Sequence[str],
                imgs: Sequence[Any],
                device: str = 'cpu'):
    """``[(torch_sample, backend_sample, image_size), ...]``: PyTorch's and the backend's predictions of each
    image through the same test pipeline. PyTorch runs the model config as given, unpatched, as in training and
    testing; the backend model runs with the deployed configs (:func:`deployed_configs`)."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape

    deploy_cfg, model_cfg = load_configs(deploy_cfg, model_cfg)
    torch_processor = build_task_processor(model_cfg, deploy_cfg, device)
    torch_model = torch_processor.build_pytorch_model(checkpoint)
    backend_processor = build_task_processor(*reversed(_deployed(deploy_cfg, model_cfg)), device)
    try:
        backend_model = backend_processor.build_backend_model(
            list(backend_files), backend_processor.update_data_preprocessor)
    except Exception as e:  # noqa: BLE001 - re-raised with the op named
        raise export_error(model_cfg.model.type, e, 'backend') from e
    out = []
    for img in imgs:
        data, _ = torch_processor.create_input(img, get_input_shape(deploy_cfg))
        with torch.no_grad():
            torch_sample = torch_model.test_step(copy.deepcopy(data))[0]
            backend_sample = backend_model.test_step(data)[0]
        out.append((torch_sample, backend_sample, max(torch_sample.ori_shape[:2])))
    return out


def check_parity(deploy_cfg: ConfigLike,
                 model_cfg: ConfigLike,
                 checkpoint: Optional[str],
                 backend_files: Sequence[str],
                 imgs: Sequence[Any],
                 device: str = 'cpu',
                 tolerance: Tolerance = Tolerance()) -> List[Agreement]:
    """The agreement of the backend model with PyTorch on each image."""
    agreements = []
    for k, (torch_sample, backend_sample,
            size) in enumerate(predictions(deploy_cfg, model_cfg, checkpoint, backend_files, imgs, device)):
        name = imgs[k] if isinstance(imgs[k], str) else f'image {k}'
        agreements.append(
            compare_instances(torch_sample.pred_instances, backend_sample.pred_instances, size, tolerance, name))
    return agreements


def deploy(deploy_cfg: ConfigLike,
           model_cfg: ConfigLike,
           checkpoint: Optional[str],
           img: Any,
           work_dir: str,
           device: str = 'cpu',
           test_imgs: Optional[Sequence[Any]] = None,
           dump_info: bool = False,
           tolerance: Tolerance = Tolerance(),
           strict: bool = True) -> DeployResult:
    """Export, build the backend model, and compare it with PyTorch on ``test_imgs`` (default: ``img``); the
    images that disagree are diagnosed (:func:`.diagnosis.diagnose`). With ``strict``, raise
    :class:`ParityError` (with the numbers) when they disagree."""
    if dump_info:
        dump_sdk_info(deploy_cfg, model_cfg, checkpoint, work_dir, device)
    result = export(deploy_cfg, model_cfg, checkpoint, img, work_dir, device)
    imgs = list(test_imgs or [img])
    result.agreements = check_parity(deploy_cfg, model_cfg, checkpoint, result.backend_files, imgs, device, tolerance)
    disagreeing = [im for im, a in zip(imgs, result.agreements) if not a.ok]
    if disagreeing:
        result.diagnoses = diagnose(deploy_cfg, model_cfg, checkpoint, disagreeing, device, tolerance)
    if strict and not result.ok:
        raise ParityError('the deployed model disagrees with PyTorch:\n' +
                          '\n'.join([a.line() for a in result.agreements if not a.ok] +
                                    [line for d in result.diagnoses for line in d.lines()]))
    return result
