"""What MMDeploy 1.3.1 cannot export, refused before exporting with the reason and what to do instead."""
from typing import Iterator, Tuple

from mmengine.config import Config


class NotDeployableError(ValueError):
    """The model (or a part of it) has no export path in MMDeploy; the message names it and the way out."""


#: detector types (without the ``CB`` prefix) and why MMDeploy's ONNX Runtime path does not serve them
REFUSED = {
    'MaskFormer': ('MMDeploy exports MaskFormer/Mask2Former only up to the query logits and mask logits '
                   '(panoptic_end2end) and fuses them in Python, for the panoptic task; it has no deploy config or '
                   'backend model for instance segmentation with them. Deploy a Mask R-CNN style detector, or run '
                   'the PyTorch model (tools/test.py).'),
    'Mask2Former':
    None,  # same reason, filled below
}
REFUSED['Mask2Former'] = REFUSED['MaskFormer']


def _nms_configs(node, path='model') -> Iterator[Tuple[str, dict]]:
    if isinstance(node, dict):
        if 'nms' in node and isinstance(node['nms'], dict):
            yield path + '.nms', node['nms']
        for key, value in node.items():
            yield from _nms_configs(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _nms_configs(item, f'{path}[{i}]')


def check_deployable(model_cfg: Config, deploy_cfg: Config) -> None:
    """Raise :class:`NotDeployableError` for what MMDeploy cannot export (before spending minutes on it)."""
    model = model_cfg.model
    detector = model['type'][2:] if model['type'].startswith('CB') else model['type']
    if REFUSED.get(detector):
        raise NotDeployableError(f"{model['type']}: {REFUSED[detector]}")
    for path, nms in _nms_configs(model.get('test_cfg', {}), 'model.test_cfg'):
        if nms.get('type', 'nms') not in ('nms', 'nms_rotated', 'nms_match'):
            raise NotDeployableError(
                f"{path}.type={nms['type']!r} has no ONNX export (MMDeploy exports hard NMS only, as the ONNX "
                f"NonMaxSuppression op). Deploy with --cfg-options {path}.type=nms, and expect the scores and the "
                'low-scoring detections to differ from the soft-NMS model.')
