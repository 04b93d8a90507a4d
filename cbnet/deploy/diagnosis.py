"""Why a deployed model disagrees with PyTorch: the exported logic, or float32 rounding.

A backend can disagree with PyTorch for two reasons. Either the exported post-processing is not mmdet's (a
rewriter computes something else): then the graph's own logic, run eagerly in PyTorch inside MMDeploy's rewriter
context (no ONNX, PyTorch's kernels), disagrees too. Or the backend's kernels round differently (another conv
algorithm, another summation order) and the model amplifies it: near-ties among thousands of proposals and
classes flip in the NMS and the top-k. Then PyTorch disagrees with itself as much when its input moves by as
little as float32 rounding. Measured on random-weight R50 Faster R-CNNs at 150x170: the eager export logic agrees
with mmdet to 6e-7, while PyTorch against itself with the input times (1 + 1e-6 N(0, 1)) moves scores by 6.6e-4
(single) and 1.1e-1 (Dual), as much as ONNX Runtime does.

:func:`diagnose` measures both for each image so that a disagreement comes with its explanation.
"""
import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.structures import InstanceData

from .parity import Agreement, Tolerance, compare_instances

#: relative input noise of the sensitivity check: the order of float32 rounding after a few ops
INPUT_NOISE = 1e-6


@dataclass
class Diagnosis:
    """One image: ``logic`` (the export's rewritten forward, run in PyTorch, against mmdet) and ``noise`` (PyTorch
    against itself with the input times ``1 + INPUT_NOISE * N(0, 1)``); boxes, scores and labels only."""

    image: str
    logic: Optional[Agreement]
    noise: Agreement
    logic_error: str = ''

    @property
    def verdict(self) -> str:
        if self.logic is None:
            return f'the export logic could not run in PyTorch ({self.logic_error})'
        if not self.logic.ok:
            return ('the exported logic itself differs from mmdet\'s (a rewriter post-processes otherwise): the '
                    'deployed model computes something else')
        if not self.noise.ok:
            return ('the exported logic is mmdet\'s; PyTorch disagrees with itself as much under float32-level '
                    'input noise: the backend\'s other rounding, amplified by near-ties in the NMS and top-k')
        return ('the exported logic is mmdet\'s and PyTorch is stable under float32-level input noise: the backend '
                'computes differently (an op or kernel)')

    def lines(self) -> List[str]:
        logic = self.logic.line() if self.logic is not None else f'not run: {self.logic_error}'
        return [
            f'  export logic in PyTorch vs mmdet {logic}',
            f'  PyTorch vs PyTorch with input x (1 + {INPUT_NOISE:g} N(0,1)) {self.noise.line()}',
            f'  so: {self.verdict}'
        ]

    def as_dict(self) -> Dict[str, Any]:
        return dict(
            image=self.image,
            logic=self.logic.as_dict() if self.logic is not None else None,
            logic_error=self.logic_error,
            noise=self.noise.as_dict(),
            input_noise=INPUT_NOISE,
            verdict=self.verdict)


def _boxes_only(pred: InstanceData) -> InstanceData:
    return InstanceData(bboxes=pred.bboxes, scores=pred.scores, labels=pred.labels)


def _graph_outputs_as_instances(outputs, sample) -> InstanceData:
    """The graph's ``dets`` (1, N, 5) and ``labels`` (1, N) in the original image's coordinates."""
    dets, labels = outputs[0][0], outputs[1][0]
    scale = torch.as_tensor(sample.scale_factor, dtype=dets.dtype).repeat(2)
    return InstanceData(bboxes=dets[:, :4] / scale, scores=dets[:, 4], labels=labels)


def diagnose(deploy_cfg,
             model_cfg,
             checkpoint: Optional[str],
             imgs: Sequence[Any],
             device: str = 'cpu',
             tolerance: Tolerance = Tolerance(),
             seed: int = 0) -> List[Diagnosis]:
    """For each image, the export logic against mmdet and PyTorch against itself under input noise."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.core import RewriterContext, patch_model
    from mmdeploy.utils import get_backend, get_input_shape, get_ir_config
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    from .padding import with_padding_in_graph
    from .pipeline import load_configs

    deploy_cfg, model_cfg = load_configs(deploy_cfg, model_cfg)
    graph_deploy_cfg, graph_model_cfg = with_padding_in_graph(deploy_cfg, model_cfg)
    processor = build_task_processor(model_cfg, deploy_cfg, device)
    model = processor.build_pytorch_model(checkpoint)
    with DefaultScope.overwrite_default_scope('mmdet'):
        graph_preprocessor = MODELS.build(graph_model_cfg.model.data_preprocessor).to(device)
    backend = get_backend(graph_deploy_cfg).value
    generator = torch.Generator(device='cpu').manual_seed(seed)
    out = []
    for k, img in enumerate(imgs):
        name = img if isinstance(img, str) else f'image {k}'
        raw, _ = processor.create_input(img, get_input_shape(deploy_cfg))
        with torch.no_grad():
            reference = model.test_step(copy.deepcopy(raw))[0]
            size = max(reference.ori_shape[:2])
            batch = model.data_preprocessor(copy.deepcopy(raw), False)
            noise = torch.randn(batch['inputs'].shape, generator=generator).to(batch['inputs'])
            noisy = model(batch['inputs'] * (1 + INPUT_NOISE * noise), batch['data_samples'], mode='predict')[0]
        noise_agreement = compare_instances(reference.pred_instances, noisy.pred_instances, size, tolerance, name)
        logic, error = None, ''
        try:
            data = graph_preprocessor(copy.deepcopy(raw), False)
            patched = patch_model(model, cfg=graph_deploy_cfg, backend=backend)
            with RewriterContext(
                    cfg=graph_deploy_cfg, backend=backend,
                    opset=get_ir_config(graph_deploy_cfg).get('opset_version', 11)), torch.no_grad():
                outputs = patched(data['inputs'], data['data_samples'], mode='predict')
            logic = compare_instances(
                _boxes_only(reference.pred_instances), _graph_outputs_as_instances(outputs, data['data_samples'][0]),
                size, tolerance, name)
        except Exception as e:  # noqa: BLE001 - reported: some exported ops have no eager kernel
            error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
        out.append(Diagnosis(image=name, logic=logic, noise=noise_agreement, logic_error=error))
    return out
