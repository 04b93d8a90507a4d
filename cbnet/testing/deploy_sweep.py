"""Every detector class cbnet composes, made Dual and tiny, through MMDeploy to ONNX Runtime and back against PyTorch.

Why: the deployment tests check hand-picked detectors; this sweep gives the evidence for every class of
:data:`cbnet.models.detectors.CB_DETECTORS` that mmdet's zoo has a config of. For each class:

1. build the tiny Dual case of :mod:`cbnet.testing.deploy_cases` (the zoo config made tiny and cbnetified, random
   calibrated weights) and run PyTorch on the test images (a failure, or no detection on any image, makes the
   class *untestable*: there is nothing to compare);
2. export it with ``configs/deploy/{task}_onnxruntime_dynamic.py`` (``instance-seg`` where the model predicts
   masks) at the 150x170 image (:func:`cbnet.deploy.export`);
3. run ONNX Runtime and PyTorch on the 128x160, 150x170 and 170x130 images (:func:`cbnet.deploy.check_parity`)
   and, where they disagree, say why (:func:`cbnet.deploy.diagnosis.diagnose`).

Each class runs in its own process with a time limit, so that a hang or a crash in a custom op costs that class
only (its status then says where it stopped).
"""
import multiprocessing
import os
import os.path as osp
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: result statuses, best first
STATUSES = ('agree', 'disagree', 'refused', 'export-error', 'backend-error', 'untestable', 'timeout')
#: what each status means (the results' legend)
STATUS_MEANING = {
    'agree': 'exported; ONNX Runtime agrees with PyTorch on every image',
    'disagree': 'exported and run, outside the tolerance on some image (the diagnosis says why)',
    'refused': 'cbnet refuses to export it before exporting (NotDeployableError: the reason)',
    'export-error': 'MMDeploy fails to export it (ExportError: the op or module)',
    'backend-error': 'exported, but ONNX Runtime fails to load or run it',
    'untestable': 'the tiny case cannot be built, or PyTorch fails or detects nothing on it',
    'timeout': 'ran out of time (or its process died) at the stage given',
}
#: (h, w) of the test images; the pipeline resizes them to fit 160x160 (two of them then padded to 32)
IMAGE_SIZES = ((128, 160), (150, 170), (170, 130))
#: the image the graph is exported at (its dynamic axes take the others)
EXPORT_IMAGE = 1
#: the size the test pipeline resizes to and the weights are calibrated at
MODEL_SIZE = (160, 160)
#: variants of a class that deploy another way (label -> (class, zoo config)): RTMDet-Ins is an RTMDet
VARIANTS: Dict[str, Tuple[str, str]] = {'RTMDet-Ins': ('RTMDet', 'rtmdet/rtmdet-ins_l_8xb32-300e_coco.py')}
#: short names of the diagnosis verdicts (:class:`cbnet.deploy.diagnosis.Diagnosis`)
VERDICTS = {
    'logic differs': 'the export logic run in PyTorch disagrees with mmdet: a rewriter computes otherwise',
    'near-ties': 'the export logic is mmdet\'s; PyTorch disagrees with itself as much under 1e-6 input noise',
    'kernel': 'the export logic is mmdet\'s and PyTorch is stable: an ONNX Runtime op or kernel computes otherwise',
    'logic not run': 'the export logic has no eager PyTorch kernel, so it could not be checked',
}

METHOD = (
    'Each class of `cbnet.models.detectors.CB_DETECTORS` that mmdet\'s zoo has a config of (`cbnet.testing.zoo.'
    'zoo_config_for`; a base class such as `SingleStageDetector` is built from a subclass\'s config), and the '
    'variants listed in `cbnet.testing.deploy_sweep.VARIANTS`, as the tiny Dual case of `cbnet.testing.deploy_cases` '
    '(the zoo config made tiny with `tiny_zoo_detector`, cbnetified with K=2, random calibrated weights, images '
    'resized to fit 160x160): exported with `configs/deploy/{task}_onnxruntime_dynamic.py` (task `instance-seg` '
    'where the model config has a mask head) at a 150x170 image, then ONNX Runtime against PyTorch on 128x160, '
    '150x170 and 170x130 images (`cbnet.deploy.check_parity`; agreement: the same detections and labels, boxes '
    'within 1e-3 of the image size, scores within 1e-4, mask IoU >= 0.99 unless at most 2 pixels differ). '
    'Disagreeing images are diagnosed (`cbnet.deploy.diagnosis`): *logic differs*: the export logic run eagerly '
    'in PyTorch disagrees with mmdet (a rewriter computes otherwise); *near-ties*: the export logic is mmdet\'s '
    'and PyTorch disagrees with itself as much when its input moves by 1e-6 (rounding amplified by near-ties); '
    '*kernel*: neither (an op of the backend computes otherwise). One process per class, with a time limit.')


@dataclass
class DeployRow:
    """The outcome for one detector class (or variant)."""

    detector: str  # the class without ``CB`` (or a variant's label)
    config: str = ''  # the zoo config it was built from
    task: str = ''
    status: str = ''
    stage: str = ''  # where it stopped (build, pytorch, export, backend, diagnose)
    reason: str = ''  # the refusal, the error, or why it is untestable
    verdict: str = ''  # disagree: the short diagnosis verdicts of the disagreeing images
    max_box_diff: Optional[float] = None  # over the images, fraction of the image size
    max_score_diff: Optional[float] = None
    min_mask_iou: Optional[float] = None
    detections: List[int] = field(default_factory=list)  # PyTorch's, per image
    agreements: List[str] = field(default_factory=list)  # the agreement lines, per image
    diagnoses: List[dict] = field(default_factory=list)  # of the disagreeing images
    seconds: float = 0.0


class _Stop(Exception):
    """A step ended the check: ``status`` and ``reason`` are the row's."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


# -- which classes ---------------------------------------------------------------------------------------------
def sweep_detectors() -> List[str]:
    """Every class of ``CB_DETECTORS`` without its ``CB`` prefix, sorted, then the :data:`VARIANTS`."""
    from ..models.detectors import CB_DETECTORS
    return sorted(name[len('CB'):] for name in CB_DETECTORS) + sorted(VARIANTS)


def case_of(detector: str):
    """The :class:`~cbnet.testing.deploy_cases.DeployCase` of a class name or variant label."""
    from .deploy_cases import WEIGHT_SCALES, DeployCase
    cls, config = VARIANTS.get(detector, (detector, ''))
    return DeployCase(cls, weight_scale=WEIGHT_SCALES.get(cls, 1.0), config=config)


def deploy_config(task: str) -> str:
    """The ONNX Runtime dynamic-shape deploy config of ``task`` in ``configs/deploy``."""
    from ..utils.configs import package_config_dir
    folder = package_config_dir('cbnet')
    return osp.join(folder, 'deploy', f'{task}_onnxruntime_dynamic.py')


# -- one class, in this process ----------------------------------------------------------------------------------
def deploy_detector(detector: str, work_dir: str, report=lambda stage: None) -> DeployRow:
    """Build, export, compare and diagnose one class (see the module doc) in ``work_dir``; ``report(stage)`` is
    called as each stage begins (so that a parent knows where a process that died stopped)."""
    from .zoo_sweep import _quiet
    row = DeployRow(detector=detector)
    start = time.time()
    try:
        with _quiet():
            _deploy(row, work_dir, report)
        row.status = 'agree' if row.status == '' else row.status
    except _Stop as stop:
        row.status, row.reason = stop.status, stop.reason
    row.seconds = round(time.time() - start, 2)
    return row


def _deploy(row: DeployRow, work_dir: str, report) -> None:
    from ..deploy import NotDeployableError, check_deployable, check_parity, export, load_configs
    from ..deploy.support import ExportError
    from .deploy_cases import model_config, write_case, write_image, zoo_source
    from .zoo_sweep import _describe
    report('build')
    row.stage = 'build'
    case = case_of(row.detector)
    try:
        row.config = zoo_source(case.detector, case.config)[0]
        row.task = case.task
        deploy_cfg = deploy_config(row.task)
        check_deployable(*reversed(load_configs(deploy_cfg, model_config(case, MODEL_SIZE))))  # from the config
        cfg, checkpoint = write_case(case, work_dir, size=MODEL_SIZE)
    except NotDeployableError as e:
        raise _Stop('refused', str(e))
    except Exception as e:  # noqa: BLE001 - the tiny case's own failure is the result
        if _needs_proposals(model_config(case, MODEL_SIZE).model):
            raise _Stop(
                'untestable', 'a two-stage detector without an RPN reads precomputed proposals from its data '
                f'samples: the image alone gives it nothing to detect ({_describe(e)})')
        raise _Stop('untestable', f'the tiny Dual case does not build: {_describe(e)}')
    images = [
        write_image(osp.join(work_dir, f'image_{h}x{w}.png'), (h, w), seed=k) for k, (h, w) in enumerate(IMAGE_SIZES)
    ]

    report('pytorch')
    row.stage = 'pytorch'
    try:
        row.detections = _pytorch_detections(deploy_cfg, cfg, checkpoint, images)
    except _Stop:
        raise
    except Exception as e:  # noqa: BLE001
        raise _Stop('untestable', f'PyTorch fails on the test images: {_describe(e)}')
    if not any(row.detections):
        raise _Stop('untestable', 'the random weights give no detection on any test image: nothing to compare')

    report('export')
    row.stage = 'export'
    try:
        result = export(deploy_cfg, cfg, checkpoint, images[EXPORT_IMAGE], osp.join(work_dir, 'export'))
    except NotDeployableError as e:
        raise _Stop('refused', str(e))
    except ExportError as e:
        raise _Stop('export-error', str(e))
    except Exception as e:  # noqa: BLE001 - outside MMDeploy's torch2onnx (its backend conversion)
        raise _Stop('export-error', _describe(e))

    report('backend')
    row.stage = 'backend'
    try:
        agreements = check_parity(deploy_cfg, cfg, checkpoint, result.backend_files, images)
    except ExportError as e:
        raise _Stop('backend-error', str(e))
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's run, or the backend model's post-processing
        raise _Stop('backend-error', _describe(e))
    row.agreements = [a.line().replace(work_dir + os.sep, '') for a in agreements]
    row.max_box_diff = max(a.max_box_diff for a in agreements)
    row.max_score_diff = max(a.max_score_diff for a in agreements)
    ious = [a.min_mask_iou for a in agreements if a.min_mask_iou is not None]
    row.min_mask_iou = min(ious) if ious else None
    row.stage = ''
    disagreeing = [image for image, a in zip(images, agreements) if not a.ok]
    if not disagreeing:
        return
    row.status = 'disagree'
    row.reason = ' / '.join(f'{osp.basename(a.image)}: {"; ".join(a.problems)}' for a in agreements if not a.ok)
    report('diagnose')
    row.verdict = diagnose_disagreement(row, deploy_cfg, cfg, checkpoint, disagreeing)


def _needs_proposals(model_cfg: dict) -> bool:
    """Fast R-CNN: an R-CNN head and no RPN (mmdet then reads ``proposals`` from the data samples)."""
    return bool(model_cfg.get('roi_head')) and not model_cfg.get('rpn_head')


def _pytorch_detections(deploy_cfg: str, cfg, checkpoint: str, images: Sequence[str]) -> List[int]:
    """PyTorch's number of detections per image, through the task processor :func:`check_parity` uses."""
    import torch
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape

    from ..deploy import load_configs
    deploy_cfg, model_cfg = load_configs(deploy_cfg, cfg)
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    model = processor.build_pytorch_model(checkpoint)
    counts = []
    for image in images:
        data, _ = processor.create_input(image, get_input_shape(deploy_cfg))
        with torch.no_grad():
            sample = model.test_step(data)[0]
        if 'pred_instances' not in sample:
            predicted = ', '.join(key for key in sample.keys() if key.startswith('pred_'))
            raise _Stop(
                'untestable', f'PyTorch predicts {predicted} and no instances (a panoptic segmentor): '
                'MMDeploy\'s detection and instance-seg tasks compare instances')
        counts.append(len(sample.pred_instances))
    return counts


def verdict_of(diagnosis) -> str:
    """The short name (:data:`VERDICTS`) of a :class:`~cbnet.deploy.diagnosis.Diagnosis`."""
    if diagnosis.logic is None:
        return 'logic not run'
    if not diagnosis.logic.ok:
        return 'logic differs'
    return 'near-ties' if not diagnosis.noise.ok else 'kernel'


def diagnose_disagreement(row: DeployRow, deploy_cfg: str, cfg, checkpoint: str, images: Sequence[str]) -> str:
    """The diagnoses of the disagreeing ``images`` into ``row``; returns their distinct short verdicts."""
    from ..deploy.diagnosis import diagnose
    from .zoo_sweep import _describe
    try:
        diagnoses = diagnose(deploy_cfg, cfg, checkpoint, images)
    except Exception as e:  # noqa: BLE001 - the disagreement stands; its cause is unknown
        return f'diagnosis failed: {_describe(e)}'
    for d in diagnoses:  # named by the file, not the temporary folder
        d.image = osp.basename(d.image)
        for agreement in (d.logic, d.noise):
            if agreement is not None:
                agreement.image = d.image
    row.diagnoses = [dict(d.as_dict(), lines=d.lines()) for d in diagnoses]
    verdicts = [verdict_of(d) for d in diagnoses]
    return ', '.join(sorted(set(verdicts), key=verdicts.index))


# -- one class, in its own process ----------------------------------------------------------------------------
def sweep_detector(detector: str, timeout: int = 600) -> DeployRow:
    """:func:`deploy_detector` in a fresh process that may run ``timeout`` seconds: a hang or a crash (a custom
    op's segfault) ends that process only and the row says at which stage (status ``timeout``). The process is
    spawned, not forked: importing ``mmengine.model`` marks CUDA as unusable in forked children, which would
    replace the errors of code that asks for a CUDA device with a fork error."""
    context = multiprocessing.get_context('spawn')
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(detector, send), daemon=True)
    start = time.time()
    process.start()
    send.close()
    stage, row = 'start', None
    deadline = start + timeout
    while row is None:
        left = deadline - time.time()
        if left <= 0 or not receive.poll(min(left, 1.0)):
            if left <= 0 or not process.is_alive():
                break
            continue
        try:
            kind, value = receive.recv()
        except EOFError:
            break
        if kind == 'stage':
            stage = value
        else:
            row = DeployRow(**value)
    if row is None:
        alive = process.is_alive()
        if alive:
            process.kill()
        process.join(10)
        why = (f'took more than {timeout} s' if alive else f'its process died (exit code {process.exitcode})')
        row = DeployRow(detector=detector, status='timeout', stage=stage, reason=f'at {stage}: {why}')
        row.seconds = round(time.time() - start, 2)
    process.join(30)
    receive.close()
    return row


def _worker(detector: str, send) -> None:
    """One class in a spawned process: one torch thread, mmdet's scope, the row sent back."""
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    torch.set_num_threads(1)
    init_default_scope('mmdet')
    MMLogger.get_instance('mmengine', log_level='ERROR')
    with tempfile.TemporaryDirectory() as work_dir:
        with open(osp.join(work_dir, 'log.txt'), 'w') as log:  # MMDeploy and ONNX Runtime print as they go
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            row = deploy_detector(detector, work_dir, report=lambda stage: send.send(('stage', stage)))
    send.send(('row', asdict(row)))
    send.close()


# -- summaries ------------------------------------------------------------------------------------------------
def row_from_dict(data: dict) -> DeployRow:
    return DeployRow(**data)


def row_to_dict(row: DeployRow) -> dict:
    return asdict(row)


def totals(rows: Sequence[DeployRow]) -> Dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in STATUSES}


def _number(value: Optional[float], digits: str = '.1e') -> str:
    return '' if value is None else format(value, digits)


def _md(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def _note(row: DeployRow, limit: int = 300) -> str:
    """The verdict of a disagreement (and its problems), else the reason, shortened for the table."""
    text = f'{row.verdict}: {row.reason}' if row.status == 'disagree' else row.reason
    if row.stage and row.status != 'disagree':
        text = f'{row.stage}: {text}'
    return _md(text if len(text) <= limit else text[:limit] + ' ...')


def markdown_report(rows: Sequence[DeployRow], header: Dict[str, str]) -> str:
    """The results file: how it was run, totals per status, one row per class, the disagreements in full."""
    counts = totals(rows)
    lines = ['# Deploying every CB detector class to ONNX Runtime (tiny Dual models)', '']
    lines += [f'- {key}: {value}' for key, value in header.items()]
    lines += ['', METHOD, '', '| status | meaning | classes |', '|---|---|---|']
    lines += [f'| {s} | {STATUS_MEANING[s]} | {counts[s]} |' for s in STATUSES]
    lines += [f'| all | | {len(rows)} |', '', '## Every class', '']
    lines += [
        '| class | zoo config | task | status | PyTorch detections | max box diff | max score diff | min mask IoU '
        '| diagnosis / reason |', '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        detections = '/'.join(str(n) for n in r.detections)
        lines.append(f'| {r.detector} | `{r.config}` | {r.task} | {r.status} | {detections} | '
                     f'{_number(r.max_box_diff)} | {_number(r.max_score_diff)} | {_number(r.min_mask_iou, ".4f")} | '
                     f'{_note(r)} |')
    disagreeing = [r for r in rows if r.status == 'disagree']
    if disagreeing:
        lines += ['', '## Disagreements, image by image', '']
        for r in disagreeing:
            lines += [f'### {r.detector}', '', '```'] + r.agreements
            for d in r.diagnoses:
                lines += [f'{osp.basename(d["image"])}:'] + d['lines']
            lines += ['```', '']
    return '\n'.join(lines).rstrip() + '\n'
