"""Deployed CB detectors agree with PyTorch in ONNX Runtime (CPU): every detector kind cbnet registers, ResNet,
Swin and ConvNeXt branches, Dual and Triple, static and dynamic shapes at three input sizes (two of them padded
by the data preprocessor); only the lead path is exported; what MMDeploy cannot export is refused with the reason;
SOLOv2's post-processing rewriter computes what mmdet's does.

Agreement (:class:`cbnet.deploy.Tolerance`): the same number of detections, boxes within 1e-3 of the image size,
scores within 1e-4, the same labels, mask IoU >= 0.99.
"""
import copy
import functools
import os.path as osp

import pytest
import torch
from mmengine.config import Config

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')

from cbnet.deploy import NotDeployableError, check_deployable, check_parity, export  # noqa: E402
from cbnet.deploy.graph import NAMED_PARAMETERS_EXPORT, graph_parameters, parameter_count, used_parameters  # noqa: E402
from cbnet.models.detectors import KINDS  # noqa: E402
from cbnet.testing.backbones import torch_threads  # noqa: E402
from cbnet.testing.deploy_cases import DEPLOY_DETECTORS, DeployCase, deploy_cases, write_case, write_image  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: (h, w) of the test images; the pipeline resizes them to fit 160x160: 128x160 (no padding), 141x160 and 160x122
#: (padded to multiples of 32). The dynamic model, exported at the second, runs all; the static model the third.
SIZES = [(128, 160), (150, 170), (170, 130)]
REFUSED = {'Mask2Former'}
#: refused from the config alone (building them needs a language model): see the test below
TEXT_PROMPTED = {'GLIP', 'GroundingDINO'}
CASES = [c for c in deploy_cases('ResNet') if c.detector not in REFUSED | TEXT_PROMPTED] + [
    DeployCase('FasterRCNN', 'Swin'),
    DeployCase('MaskRCNN', 'ConvNeXt'),
    DeployCase('FasterRCNN', num_backbones=3),
    DeployCase('CascadeMaskRCNN'),
]
#: also exported with static shapes (the shape handling is the same for every detector)
STATIC = {'dual_resnet_fasterrcnn', 'dual_resnet_retinanet'}
FAST = {'dual_resnet_fasterrcnn', 'dual_resnet_maskrcnn'}


def deploy_config(task: str, dynamic: bool) -> str:
    name = f"{task}_onnxruntime_{'dynamic' if dynamic else 'static'}.py"
    if task == 'instance-seg' and not dynamic:
        name = 'instance-seg_onnxruntime_dynamic.py'  # MMDeploy's set has no static instance-seg ORT config
    return osp.join(ROOT, 'configs', 'deploy', name)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    out = tmp_path_factory.mktemp('images')
    return [write_image(str(out / f'image_{h}x{w}.png'), (h, w), seed=k) for k, (h, w) in enumerate(SIZES)]


def _marks(case):
    return [] if case.name in FAST else [pytest.mark.slow]


def _check(agreements):
    assert agreements and all(a.num_torch > 0 for a in agreements), [a.line() for a in agreements]
    assert all(a.ok for a in agreements), '\n'.join(a.line() for a in agreements)


@pytest.mark.parametrize('case', [pytest.param(c, id=c.name, marks=_marks(c)) for c in CASES])
def test_onnxruntime_agrees_with_pytorch(case, images, tmp_path):
    """Dynamic shapes: exported at one size, run at all; static: exported and run at another."""
    cfg, ckpt = write_case(case, str(tmp_path), size=(160, 160))
    dynamic = export(deploy_config(case.task, True), cfg, ckpt, images[1], str(tmp_path / 'dynamic'))
    _check(check_parity(deploy_config(case.task, True), cfg, ckpt, dynamic.backend_files, images))
    if case.name in STATIC:
        static = export(deploy_config(case.task, False), cfg, ckpt, images[2], str(tmp_path / 'static'))
        _check(check_parity(deploy_config(case.task, False), cfg, ckpt, static.backend_files, images[2:]))


@pytest.mark.slow
def test_detr_masks_the_padding_in_the_graph(images, tmp_path):
    """A DETR-style detector whose data preprocessor pads (mmdet's DINO configs pad to 1): mmdet masks the padding
    in the transformer, which ``pre_transformer`` leaves out of an ONNX export; the graph puts the masks back
    (without them the 141x160 image disagrees: labels differ, a box off by 0.73 of the image size)."""
    cfg, ckpt = write_case(DeployCase('DINO'), str(tmp_path), size=(160, 160))
    cfg.model.data_preprocessor.pad_size_divisor = 32
    result = export(deploy_config('detection', True), cfg, ckpt, images[1], str(tmp_path / 'dynamic'))
    _check(check_parity(deploy_config('detection', True), cfg, ckpt, result.backend_files, images))


@pytest.mark.slow
def test_heads_with_their_own_post_processing_export_with_mmdeploys(images, tmp_path):
    """PAA post-processes with its own code (score voting), which MMDeploy's generic dense-head rewriter replaces:
    it exports and runs, with as many detections as PyTorch, but is not held to the tolerance (the deploy sweep,
    ``benchmarks/results/deploy_sweep.md``, reports how far). It failed to export while cbnet's rewriter called
    MMDeploy's outside its context."""
    case = DeployCase('PAA')
    cfg, ckpt = write_case(case, str(tmp_path), size=(160, 160))
    result = export(deploy_config('detection', True), cfg, ckpt, images[1], str(tmp_path / 'dynamic'))
    agreements = check_parity(deploy_config('detection', True), cfg, ckpt, result.backend_files, images[:1])
    assert agreements[0].num_backend == agreements[0].num_torch > 0, agreements[0].line()


def test_every_detector_kind_has_deployment_cases():
    assert {base.__name__ for base in KINDS} <= set(DEPLOY_DETECTORS)


@pytest.mark.parametrize('detector', sorted(REFUSED))
def test_what_mmdeploy_cannot_export_is_refused_with_the_reason(detector, images, tmp_path):
    cfg, ckpt = write_case(DeployCase(detector), str(tmp_path))
    with pytest.raises(NotDeployableError, match='MMDeploy exports .* Deploy a Mask R-CNN'):
        export(deploy_config('instance-seg', True), cfg, ckpt, images[0], str(tmp_path))


def test_cornernet_is_refused_before_its_soft_nms():
    """Switching CornerNet to hard NMS, as the soft-NMS refusal says, would only reach MMDeploy's missing
    CornerHead path: the refusal names that first."""
    model_cfg = Config(dict(model=dict(type='CBCornerNet', test_cfg=dict(nms=dict(type='soft_nms')))))
    with pytest.raises(NotDeployableError, match=r"CBCornerNet: .*pad_shape_for_onnx"):
        check_deployable(model_cfg, Config(dict()))


@pytest.mark.parametrize('detector', sorted(TEXT_PROMPTED))
def test_text_prompted_detectors_are_refused_before_export(detector):
    model_cfg = Config(dict(model=dict(type=f'CB{detector}', test_cfg=dict())))
    with pytest.raises(NotDeployableError, match=f'CB{detector}: MMDeploy 1.3.1 has no task .* text-prompted'):
        check_deployable(model_cfg, Config(dict()))


def test_soft_nms_is_refused_with_the_option_to_change(images, tmp_path):
    cfg, ckpt = write_case(DeployCase('FasterRCNN'), str(tmp_path))
    cfg.model.test_cfg.rcnn.nms = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(NotDeployableError, match=r'model.test_cfg.rcnn.nms.type=nms'):
        export(deploy_config('detection', True), cfg, ckpt, images[0], str(tmp_path))


@pytest.mark.parametrize(
    'case', [DeployCase('FasterRCNN'), DeployCase('FasterRCNN', num_backbones=3)], ids=lambda c: c.name)
def test_only_the_lead_path_is_exported(case, images, tmp_path):
    """The graph's parameters are exactly those the eval-mode CB model uses (no assisting neck/head, no stage
    nobody reads), counted by name in a graph exported without constant folding."""
    from mmdet.registry import MODELS
    cfg, ckpt = write_case(case, str(tmp_path), size=(160, 160))
    result = export(
        deploy_config('detection', True),
        cfg,
        ckpt,
        images[0],
        str(tmp_path / 'named'),
        export_overrides=NAMED_PARAMETERS_EXPORT)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt)['state_dict'])
    batch = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)], data_samples=None), False)
    from mmdet.structures import DetDataSample
    samples = [DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1.0, 1.0)))]
    used = used_parameters(model, batch['inputs'], samples)
    in_graph = graph_parameters(result.ir_file, model)
    assert set(in_graph) == set(used)
    assert parameter_count(in_graph) == parameter_count(used)
    assert any(name.startswith('backbone.branches.0.') for name in in_graph)  # the assisting stages the lead reads


def test_deploy_tool_writes_mmdeploy_files_and_reports_agreement(images, tmp_path, capsys):
    """``tools/deployment/deploy.py`` with MMDeploy's arguments: DIR/end2end.onnx, the agreement printed and saved,
    exit status 0 (1 when they disagree, 2 for what cannot be deployed)."""
    import json

    from cbnet.testing import load_tool
    cfg, ckpt = write_case(DeployCase('FasterRCNN'), str(tmp_path), size=(160, 160))
    cfg_path = str(tmp_path / 'model.py')
    cfg.dump(cfg_path)
    tool = load_tool('tools/deployment/deploy.py')
    work_dir = str(tmp_path / 'work')
    argv = [deploy_config('detection', True), cfg_path, ckpt, images[1], '--work-dir', work_dir, '--test-img', *images]
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    assert osp.isfile(osp.join(work_dir, 'end2end.onnx'))
    assert out.count(': agree') == len(images) and 'compatibility fixes applied while exporting' in out
    deployed = Config.fromfile(osp.join(work_dir, 'deployed_model_cfg.py'))  # for MMDeploy's tools/test.py
    assert deployed.model.data_preprocessor.pad_size_divisor == 1 and deployed.model.type == cfg.model.type
    with open(osp.join(work_dir, 'parity.json')) as f:
        assert json.load(f)['ok'] is True
    assert tool.main(argv + ['--score-tol', '0']) == 1  # a disagreement is diagnosed
    out = capsys.readouterr().out
    assert 'why they disagree:' in out and 'export logic in PyTorch vs mmdet' in out
    with open(osp.join(work_dir, 'parity.json')) as f:
        assert len(json.load(f)['diagnoses']) == len(images)
    cfg.model.test_cfg.rcnn.nms = dict(type='soft_nms', iou_threshold=0.5)
    cfg.dump(cfg_path)
    assert tool.main(argv) == 2
    assert 'model.test_cfg.rcnn.nms.type=nms' in capsys.readouterr().err
    assert tool.main(argv + ['--cfg-options', 'model.test_cfg.rcnn.nms.type=nms']) == 0  # what the refusal says


@pytest.mark.slow
@pytest.mark.parametrize('task', ['detection', 'instance-seg'])
def test_tensorrt_graph_exports_on_the_cpu_with_tensorrt_ops(task, images, tmp_path):
    """The TensorRT fp16 deploy configs' graph (what a CUDA machine builds its engine from) exports here, with
    TensorRT's batched NMS and MMDeploy's RoIAlign plugin ops."""
    import onnx

    from cbnet.deploy.pipeline import export_graph
    case = DeployCase('MaskRCNN' if task == 'instance-seg' else 'FasterRCNN')
    cfg, ckpt = write_case(case, str(tmp_path), size=(160, 160))
    config = osp.join(ROOT, 'configs', 'deploy', f'{task}_tensorrt-fp16_dynamic-320x320-1344x1344.py')
    graph = onnx.load(export_graph(config, cfg, ckpt, images[0], str(tmp_path / 'trt'))).graph
    ops = {n.op_type for n in graph.node}
    assert 'TRTBatchedNMS' in ops and 'NonMaxSuppression' not in ops
    assert {'MMCVRoiAlign', 'MMCVMultiLevelRoiAlign'} & ops and 'RoiAlign' not in ops  # TensorRT plugins
    assert [o.name
            for o in graph.output] == (['dets', 'labels', 'masks'] if task == 'instance-seg' else ['dets', 'labels'])


@functools.lru_cache()
def _solov2_model_cfg():
    from cbnet.testing.deploy_cases import model_config
    return model_config(DeployCase('SOLOv2')).model


def _tiny_solov2_head(test_cfg: dict):
    """A SOLOv2 head of the deploy case with 3 classes and small grids (its post-processing only)."""
    from mmdet.registry import MODELS
    model = _solov2_model_cfg()
    head = copy.deepcopy(model.mask_head)
    head.update(num_classes=3, num_grids=[8, 6, 4, 3, 2], test_cfg=dict(model.test_cfg, **test_cfg))
    return MODELS.build(head).eval()


def _solov2_outputs(head, feat_size=(12, 16)):
    g = torch.Generator().manual_seed(0)
    kernels = [torch.randn(1, head.kernel_out_channels, n, n, generator=g) for n in head.num_grids]
    scores = [torch.randn(1, head.num_classes, n, n, generator=g) for n in head.num_grids]
    return kernels, scores, torch.randn(1, head.mask_feature_head.out_channels, *feat_size, generator=g)


SOLOV2_TEST_CFGS = {
    'zoo': dict(),  # the deploy case's (mmdet's thresholds, 20 masks)
    'filter_thr_drops_all_masks_kept': dict(filter_thr=0.4, max_per_img=-1),
    'linear_kernel_few_before_nms': dict(kernel='linear', nms_pre=5, max_per_img=3),
    'strides_drop_small_masks': dict(mask_thr=0.999),
    'nothing_above_score_thr': dict(score_thr=0.999),
}


def test_solov2_rewriter_post_processes_as_mmdet():
    """cbnet's ONNX Runtime SOLOv2 rewriter, run in PyTorch, gives mmdet's scores, labels and (with the backend
    model's :func:`mmdet_masks`) masks, and MMDeploy's full image boxes, under each test_cfg above; the zero-score
    rows it adds are those the backend model drops. (One rewriter context: entering one takes
    2.5 s.)"""
    from mmdeploy.core import RewriterContext

    from cbnet.deploy.solov2 import mmdet_masks, solov2_head__predict_by_feat__as_mmdet
    metas = [dict(img_shape=(44, 60), ori_shape=(55, 75))]  # 48x64 padded, resized from 55x75
    heads = {name: _tiny_solov2_head(test_cfg) for name, test_cfg in SOLOV2_TEST_CFGS.items()}
    outputs = _solov2_outputs(heads['zoo'])
    with torch.no_grad():  # mmdet's, before the context patches it
        results = {
            name: head.predict_by_feat(*copy.deepcopy(outputs), batch_img_metas=metas)[0]
            for name, head in heads.items()
        }
    with torch.no_grad(), RewriterContext(
            cfg=Config(dict(backend_config=dict(type='onnxruntime'))), backend='onnxruntime'):
        for name, head in heads.items():
            expected = results[name]
            dets, labels, probabilities = solov2_head__predict_by_feat__as_mmdet(
                head, *copy.deepcopy(outputs), batch_img_metas=metas)
            kept = dets[0, :, 4] > 0
            order = expected.scores.argsort(descending=True)
            masks = mmdet_masks(probabilities[0, kept], metas[0]['img_shape'], metas[0]['ori_shape'], head.mask_stride,
                                head.test_cfg.mask_thr)
            assert dets[0, :, :4].tolist() == [[0, 0, 60, 44]] * len(dets[0]), name
            torch.testing.assert_close(dets[0, kept, 4], expected.scores[order], msg=name)
            assert labels[0, kept].tolist() == expected.labels[order].tolist(), name
            assert torch.equal(masks, expected.masks[order]), name


def test_solov2_inputs_exercise_the_filters():
    """The inputs above make each configuration do what its name says (so the test above checks it)."""
    head = _tiny_solov2_head({})
    outputs = _solov2_outputs(head)
    counts = {}
    for name, test_cfg in SOLOV2_TEST_CFGS.items():
        head.test_cfg.update(dict(_tiny_solov2_head(test_cfg).test_cfg))
        with torch.no_grad():
            counts[name] = len(
                head.predict_by_feat(
                    *copy.deepcopy(outputs), batch_img_metas=[dict(img_shape=(44, 60), ori_shape=(44, 60))])[0])
    assert counts['zoo'] == 20 and counts['nothing_above_score_thr'] == 0
    kernels, _, features = outputs  # every cell's mask at mask_thr 0.999: some no larger than their level's stride
    areas = torch.cat([(torch.einsum('kc,chw->khw', k[0].flatten(1).T, features[0]).sigmoid() > 0.999).sum((1, 2))
                       for k in kernels])
    strides = torch.cat([torch.full((n * n, ), s) for n, s in zip(head.num_grids, head.strides)])
    assert (areas <= strides).any() and (areas > strides).any()
    assert 0 < counts['filter_thr_drops_all_masks_kept'] < head.test_cfg.nms_pre
    assert counts['linear_kernel_few_before_nms'] == 3


def test_solov2_backend_model_is_selected_for_onnxruntime_only():
    """The backend model that resizes and thresholds SOLOv2's masks as mmdet does, for SOLOv2 heads on ONNX
    Runtime (whose graph cbnet's rewriter makes); other detectors and backends keep MMDeploy's."""
    from cbnet.deploy.solov2 import SOLOV2_BACKEND_MODEL, with_mmdet_mask_postprocessing
    from cbnet.testing.deploy_cases import model_config
    ort = Config(dict(backend_config=dict(type='onnxruntime'), codebase_config=dict(type='mmdet')))
    trt = Config(dict(backend_config=dict(type='tensorrt'), codebase_config=dict(type='mmdet')))
    solo = model_config(DeployCase('SOLOv2'))
    deploy_cfg, model_cfg = with_mmdet_mask_postprocessing(ort, solo)
    assert deploy_cfg.codebase_config.model_type == SOLOV2_BACKEND_MODEL and model_cfg is solo
    assert 'model_type' not in ort.codebase_config  # a copy
    assert with_mmdet_mask_postprocessing(trt, solo)[0] is trt
    assert with_mmdet_mask_postprocessing(ort, model_config(DeployCase('MaskRCNN')))[0] is ort


def test_mmdeploy_solov2_rewriter_still_differs_from_mmdet():
    """Why cbnet's rewriter exists (cause 1 in :mod:`cbnet.deploy.solov2`): MMDeploy's own keeps each grid cell's
    best class only. When a newer MMDeploy computes mmdet's detections, this fails: drop cbnet's rewriter."""
    from mmdeploy.core import RewriterContext
    head = _tiny_solov2_head({})
    outputs = _solov2_outputs(head)
    metas = [dict(img_shape=(44, 60), ori_shape=(44, 60))]
    deploy_cfg = Config(
        dict(
            backend_config=dict(type='onnxruntime'),
            codebase_config=dict(type='mmdet', task='InstanceSegmentation', post_processing=dict())))
    with torch.no_grad():
        expected = head.predict_by_feat(*copy.deepcopy(outputs), batch_img_metas=metas)[0]
        with RewriterContext(cfg=deploy_cfg, backend='default'):
            dets, labels, _ = head.predict_by_feat(*copy.deepcopy(outputs), batch_img_metas=metas)
    kept = dets[0, :, 4] > 0
    order = expected.scores.argsort(descending=True)
    assert len(expected) == int(kept.sum()) == 20
    assert labels[0, kept].tolist() != expected.labels[order].tolist()
