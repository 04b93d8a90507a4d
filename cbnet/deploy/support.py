"""What MMDeploy 1.3.1 cannot export, refused before exporting with the reason and what to do instead."""
import os.path as osp
import re
import traceback
from typing import Iterator, Tuple

from mmengine.config import Config


class NotDeployableError(ValueError):
    """The model (or a part of it) has no export path in MMDeploy; the message names it and the way out."""


class ExportError(RuntimeError):
    """MMDeploy failed to export (or the backend to load) a model: the message names the op or the module."""


_OP = re.compile(r'(aten::\w+|onnx::\w+|mmdeploy::?\w+|mmcv::\w+|\b[A-Z]\w+\(-?\d+\))')  # torch or ONNX Runtime's names
#: what to do about ops MMDeploy's backend libraries lack (pattern of the error -> advice; checked against the ops
#: its 1.3.1 libraries register)
_DCN_V1 = ("MMDeploy's ONNX Runtime ops have the modulated deformable convolution (DCNv2, MMCVModulatedDeformConv2d) "
           "but not DCN v1 (mmcv's DeformConv2d: dcn=dict(type='DCN'), and the deformable heads of TOOD, VFNet, "
           "RepPoints): use dcn=dict(type='DCNv2') and retrain, or deploy to TensorRT, whose MMDeploy plugins have "
           'both')
OP_ADVICE = {r'\bMMCVDeformConv2d\b|\bDeformConv2dFunction\b': _DCN_V1}
_PACKAGES = ('mmdet', 'mmcv', 'mmpretrain', 'cbnet', 'mmdeploy', 'timm')


def export_error(model_type: str, error: BaseException, stage: str = 'export') -> ExportError:
    """An :class:`ExportError` for ``error`` raised while exporting (``stage='export'``) or loading the backend
    model (``'backend'``): the op it names and the innermost OpenMMLab/cbnet function it came from."""
    frames = traceback.extract_tb(error.__traceback__)
    frame = next(
        (f for f in reversed(frames) if any(f'{osp.sep}{p}{osp.sep}' in f.filename
                                            for p in _PACKAGES) and f'{osp.sep}deploy{osp.sep}' not in f.filename),
        None)
    where = ''
    if frame is not None:
        parts = frame.filename.split(osp.sep)
        package = next((i for i, part in enumerate(parts) if part in _PACKAGES), len(parts) - 1)
        where = f" in {frame.name} ({'/'.join(parts[package:])}:{frame.lineno})"
    op = _OP.search(str(error))
    what = f'the op {op.group(0)}' if op else f'{type(error).__name__}'
    advice = ('the backend has no kernel for it: use a backend or opset that has, or replace the module that '
              'emits it' if stage == 'backend' else 'MMDeploy has no symbolic or rewriter for it: replace the module '
              'in the model config by one MMDeploy exports, or register a rewriter for it (mmdeploy.core.'
              'FUNCTION_REWRITER); the PyTorch model itself still runs with tools/test.py')
    advice = next((text for pattern, text in OP_ADVICE.items() if re.search(pattern, str(error))), advice)
    return ExportError(
        f'{model_type}: {stage} failed on {what}{where}: {str(error).splitlines()[0] if str(error) else ""}'
        f'. {advice[0].upper()}{advice[1:]}.')


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
REFUSED['CornerNet'] = (  # CentripetalNet's configs build a CornerNet too
    "MMDeploy 1.3.1 has no rewriter for mmdet 3's CornerHead, whose ONNX path reads img_meta['pad_shape_for_onnx'], "
    'which nothing sets (the export fails with that KeyError). Run the PyTorch model (tools/test.py).')
for _text_prompted in ('GLIP', 'GroundingDINO'):
    REFUSED[_text_prompted] = (
        'MMDeploy 1.3.1 has no task or rewriters for text-prompted detectors: the prompt is tokenized in Python and '
        'the language model runs inside the forward, so there is no graph to export from the image alone. Run the '
        "PyTorch model (mmdet's DetInferencer with texts=..., or tools/test.py).")


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
