# Copyright (c) cbnet contributors. All rights reserved.
"""ONNX Runtime vs PyTorch eager inference latency on the CPU, Dual vs single R50 Faster R-CNN.

    python benchmarks/deploy.py [--shape 800 1333] [--rounds 3] [--threads 1]
    python benchmarks/deploy.py --backend tensorrt [--dry-run]   # on a CUDA machine (dry run: anywhere)

Both detectors are built with random weights (``cbnet.testing.deploy_cases.randomize``: calibrated, with
detections; same post-processing: the Dual config takes its single config's ``test_cfg``), exported with
``configs/deploy/detection_onnxruntime_static.py`` at the benchmark's input size and checked for agreement with
PyTorch on the benchmark image, with the diagnosis of :mod:`cbnet.deploy.diagnosis` (the export logic run in
PyTorch; PyTorch against itself under 1e-6 relative input noise). Timed: the model on the preprocessed input
(PyTorch: the batch padded to 32, ``predict`` with post-processing; ONNX Runtime: the session on the image
unpadded, whose graph pads it and includes the post-processing up to the boxes in input coordinates), CPU time of
``--threads`` threads in both, variants alternating round by round, minimum over rounds. FLOPs (eval-mode tensor
forward, cbnet.analysis) give the Dual/single ratio the latency ratios are set beside. Writes
``benchmarks/results/deploy.{json,md}``.
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from cbnet.analysis import count_flops, load_config, markdown_header, run_record, start_run, time_once, write_results

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULTS = osp.join(ROOT, 'benchmarks', 'results')
DEPLOY_CFG = osp.join(ROOT, 'configs', 'deploy', 'detection_onnxruntime_static.py')
PAIR = {
    'single': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'dual': osp.join(ROOT, 'configs', 'cbnet', 'dual_r50_faster_rcnn.py'),
}


def _model_config(config: str, single_test_cfg: dict, shape) -> Any:
    """The config with the single's test_cfg and a test pipeline that keeps an image of ``shape`` as it is."""
    cfg = load_config(config)
    cfg.model.test_cfg = single_test_cfg
    for step in cfg.test_pipeline:
        if step['type'] == 'Resize':
            step.update(scale=(shape[1], shape[0]), keep_ratio=True)
    cfg.test_dataloader.dataset.pipeline = cfg.test_pipeline
    return cfg


def cv2_shape(img: str):
    import mmcv
    return mmcv.imread(img).shape[:2]


def _prepare(name: str, cfg, img: str, work_dir: str, threads: int) -> Dict[str, Any]:
    """Export ``cfg`` (random weights), build an ONNX Runtime session with ``threads`` threads, and the PyTorch
    model and its preprocessed input."""
    import onnxruntime as ort
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.backend.onnxruntime.init_plugins import get_ops_path
    from mmdeploy.utils import load_config as load_deploy_config
    from mmdet.registry import MODELS

    from cbnet.deploy import check_parity, export
    from cbnet.deploy.diagnosis import diagnose
    from cbnet.deploy.pipeline import deployed_configs
    from cbnet.testing.deploy_cases import randomize
    model = MODELS.build(cfg.model)
    model.init_weights()
    randomize(model, seed=0, size=tuple(cv2_shape(img)))  # detections to compare (init weights give none)
    ckpt = osp.join(work_dir, f'{name}.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    out = osp.join(work_dir, name)
    result = export(DEPLOY_CFG, cfg, ckpt, img, out, device='cpu')
    agreement = check_parity(DEPLOY_CFG, cfg, ckpt, result.backend_files, [img])[0]
    diagnosis = diagnose(DEPLOY_CFG, cfg, ckpt, [img])[0]  # the export logic in PyTorch; PyTorch's own noise floor
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.register_custom_ops_library(get_ops_path())
    session = ort.InferenceSession(result.ir_file, options, providers=['CPUExecutionProvider'])
    deploy_cfg = load_deploy_config(DEPLOY_CFG)[0]
    processor = build_task_processor(cfg, deploy_cfg, 'cpu')
    torch_model = processor.build_pytorch_model(ckpt)
    data = processor.create_input(img, None, data_preprocessor=torch_model.data_preprocessor)[0]
    # the graph's input: the image unpadded (the graph pads it itself, cbnet.deploy.padding)
    deployed = build_task_processor(*reversed(deployed_configs(DEPLOY_CFG, cfg)), 'cpu')
    graph_input = deployed.create_input(
        img, None, data_preprocessor=MODELS.build(deployed.model_cfg.model.data_preprocessor))[0]['inputs']
    flops = count_flops(torch_model, data)
    return dict(
        model=torch_model,
        data=data,
        session=session,
        input=graph_input.numpy(),
        agreement=agreement.as_dict(),
        diagnosis=diagnosis.as_dict(),
        flops=flops['total'],
        params=sum(p.numel() for p in torch_model.parameters()),
        input_shape=list(data['inputs'].shape[-2:]))


def measure(shape, rounds: int, threads: int, log=print) -> Dict[str, Any]:
    torch.set_num_threads(threads)
    import mmcv
    single_test_cfg = load_config(PAIR['single']).model.test_cfg.to_dict()
    prepared = {}
    with tempfile.TemporaryDirectory() as work_dir:
        img = osp.join(work_dir, 'image.jpg')
        rng = np.random.default_rng(0)
        mmcv.imwrite(rng.integers(0, 255, (*shape, 3), dtype=np.uint8), img)
        for name, config in PAIR.items():
            log(f'{name}: export and parity')
            prepared[name] = _prepare(name, _model_config(config, single_test_cfg, shape), img, work_dir, threads)
    runners = {}
    for name, p in prepared.items():

        def eager(p=p):
            with torch.no_grad():
                p['model'](p['data']['inputs'], p['data']['data_samples'], mode='predict')

        def onnxruntime(p=p):
            p['session'].run(None, {'input': p['input']})

        runners[f'{name} PyTorch'] = eager
        runners[f'{name} ONNX Runtime'] = onnxruntime
    for label, fn in runners.items():  # warm-up
        log(f'warm-up {label}')
        fn()
    times: Dict[str, List[float]] = {label: [] for label in runners}
    for r in range(rounds):
        for label, fn in runners.items():
            times[label].append(time_once(fn, 'cpu', 'cpu'))
            log(f'round {r + 1}/{rounds} {label}: {times[label][-1]:.2f} s')
    best = {label: min(t) for label, t in times.items()}
    return dict(
        shape=list(shape),
        rounds=rounds,
        threads=threads,
        timer='cpu',
        times_s=times,
        min_s=best,
        models={
            name:
            dict(
                config=PAIR[name],
                params=p['params'],
                gflops=p['flops'] / 1e9,
                input_shape=p['input_shape'],
                parity=p['agreement'],
                diagnosis=p['diagnosis'])
            for name, p in prepared.items()
        },
        ratios=dict(
            flops=prepared['dual']['flops'] / prepared['single']['flops'],
            pytorch=best['dual PyTorch'] / best['single PyTorch'],
            onnxruntime=best['dual ONNX Runtime'] / best['single ONNX Runtime']),
        speedup=dict(
            single=best['single PyTorch'] / best['single ONNX Runtime'],
            dual=best['dual PyTorch'] / best['dual ONNX Runtime']))


def markdown(result: Dict[str, Any]) -> str:
    lines = markdown_header('ONNX Runtime vs PyTorch on the CPU: Dual vs single R50 Faster R-CNN', result['record'])
    r = result['measurement']
    h, w = r['shape']
    lines += [
        f"Image {h}x{w} (input {'x'.join(map(str, r['models']['single']['input_shape']))} after padding), batch 1, "
        f"random calibrated weights, the single config's test_cfg for both; CPU time of {r['threads']} thread(s) "
        f"(torch and ONNX Runtime intra-op threads), minimum over {r['rounds']} alternating rounds. "
        "PyTorch: `predict` with "
        'post-processing; ONNX Runtime: the `detection_onnxruntime_static.py` graph (post-processing included up to '
        'boxes in input coordinates). Agreement with mmdet (detections, max box diff as a fraction of the image size '
        '/ max score diff) of ONNX Runtime, of the export logic run in PyTorch, and of PyTorch itself with its input '
        'times (1 + 1e-6 N(0,1)) (`cbnet.deploy.diagnosis`).', '',
        '| model | params (M) | GFLOPs | PyTorch (s) | ONNX Runtime (s) | PyTorch / ONNX Runtime | ONNX Runtime vs '
        'PyTorch | export logic in PyTorch | PyTorch, 1e-6 input noise |', '|---|---|---|---|---|---|---|---|---|'
    ]

    def agreement(a) -> str:
        if a is None:
            return 'not run'
        return (f"{a['num_backend']}/{a['num_torch']}, {a['max_box_diff']:.1e} / {a['max_score_diff']:.1e}"
                f"{'' if a['ok'] else ' DISAGREE'}")

    for name, m in r['models'].items():
        d = m['diagnosis']
        lines.append(f"| {name} | {m['params'] / 1e6:.2f} | {m['gflops']:.1f} | {r['min_s'][name + ' PyTorch']:.2f} | "
                     f"{r['min_s'][name + ' ONNX Runtime']:.2f} | {r['speedup'][name]:.2f}x | "
                     f"{agreement(m['parity'])} | {agreement(d['logic'])} | {agreement(d['noise'])} |")
    ratios = r['ratios']
    lines += [
        '', f"Dual / single: PyTorch {ratios['pytorch']:.2f}x, ONNX Runtime {ratios['onnxruntime']:.2f}x, "
        f"FLOPs {ratios['flops']:.2f}x.", '',
        'All times (s): ' + '; '.join(f"{label} {', '.join(f'{t:.2f}' for t in ts)}"
                                      for label, ts in r['times_s'].items()) + '.', ''
    ]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------------------
TENSORRT_CFG = osp.join(ROOT, 'configs', 'deploy', 'detection_tensorrt-fp16_dynamic-320x320-1344x1344.py')
#: fp16 engines and TensorRT's batched NMS: agreement within these, reported (not a failure)
FP16 = dict(box=1e-2, score=1e-2, mask_iou=0.9)


def tensorrt(shape, rounds: int, dry_run: bool, log=print) -> Dict[str, Any]:
    """TensorRT fp16 on a CUDA machine: export, engine, agreement with PyTorch (fp32), img/s of both (wall time,
    CUDA synchronised, ``test_step`` with pre- and post-processing, min over rounds). ``dry_run`` (any machine):
    the TensorRT graph is exported on the CPU and checked for TensorRT's ops; no engine is built."""
    import mmcv
    import onnx
    from mmdet.registry import MODELS

    from cbnet.deploy import Tolerance, check_parity, export
    from cbnet.deploy.pipeline import export_graph, load_configs
    single_test_cfg = load_config(PAIR['single']).model.test_cfg.to_dict()
    out: Dict[str, Any] = dict(mode='dry-run' if dry_run else 'cuda', models={})
    with tempfile.TemporaryDirectory() as work_dir:
        img = osp.join(work_dir, 'image.jpg')
        mmcv.imwrite(np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8), img)
        for name, config in PAIR.items():
            cfg = _model_config(config, single_test_cfg, shape)
            model = MODELS.build(cfg.model)
            model.init_weights()
            ckpt = osp.join(work_dir, f'{name}.pth')
            torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
            del model
            if dry_run:
                log(f'{name}: TensorRT graph on the CPU')
                graph = onnx.load(export_graph(TENSORRT_CFG, cfg, ckpt, img, osp.join(work_dir, name)))
                ops = sorted({n.op_type for n in graph.graph.node if n.domain not in ('', 'ai.onnx')})
                if 'TRTBatchedNMS' not in ops or not {'MMCVRoiAlign', 'MMCVMultiLevelRoiAlign'} & set(ops):
                    raise RuntimeError(
                        f'{name}: the TensorRT graph lacks TensorRT\'s NMS or RoIAlign (custom ops: {ops})')
                out['models'][name] = dict(custom_ops=ops, nodes=len(graph.graph.node))
                continue
            log(f'{name}: TensorRT engine')
            result = export(TENSORRT_CFG, cfg, ckpt, img, osp.join(work_dir, name), device='cuda')
            agreement = check_parity(TENSORRT_CFG, cfg, ckpt, result.backend_files, [img], 'cuda', Tolerance(**FP16))[0]
            from mmdeploy.apis.utils import build_task_processor
            deploy_cfg, model_cfg = load_configs(TENSORRT_CFG, cfg)
            processor = build_task_processor(model_cfg, deploy_cfg, 'cuda')
            models = dict(
                pytorch=processor.build_pytorch_model(ckpt),
                tensorrt=processor.build_backend_model(result.backend_files, processor.update_data_preprocessor))
            data = processor.create_input(img, None)[0]
            times = {k: [] for k in models}
            for r in range(rounds + 1):  # round 0 warms up
                for k, m in models.items():
                    with torch.no_grad():
                        t = time_once(lambda m=m: m.test_step(data), 'cuda', 'wall')
                    if r:
                        times[k].append(t)
            out['models'][name] = dict(
                parity=agreement.as_dict(), times_s=times, img_per_s={
                    k: 1 / min(v)
                    for k, v in times.items()
                })
            log(f"{name}: {out['models'][name]['img_per_s']}, {agreement.line()}")
    return out


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out-dir', default=RESULTS)
    parser.add_argument('--backend', choices=['onnxruntime', 'tensorrt'], default='onnxruntime')
    parser.add_argument('--dry-run', action='store_true', help='tensorrt: export and check the graph on the CPU')
    args = parser.parse_args(argv)
    start = start_run()
    if args.backend == 'tensorrt':
        measurement = tensorrt(
            tuple(args.shape), args.rounds, args.dry_run, log=lambda msg: print(msg, file=sys.stderr, flush=True))
        result = dict(record=run_record(start, 'benchmarks/deploy.py', argv), measurement=measurement)
        name = 'deploy_tensorrt' + ('_dryrun' if args.dry_run else '')
        md = '\n'.join(
            markdown_header('TensorRT fp16 deployment: Dual vs single R50 Faster R-CNN', result['record']) +
            ['```', json.dumps(measurement, indent=1), '```', ''])
        write_results(args.out_dir, name, result, md, relative_to=ROOT)
        print(md)
        return result
    measurement = measure(
        tuple(args.shape), args.rounds, args.threads, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    result = dict(record=run_record(start, 'benchmarks/deploy.py', argv), measurement=measurement)
    md = markdown(result)
    write_results(args.out_dir, 'deploy', result, md, relative_to=ROOT)
    print(md)
    return result


if __name__ == '__main__':
    main()
