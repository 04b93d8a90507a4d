"""The deployed ONNX Runtime graph pads the image itself (:mod:`cbnet.deploy.padding`): the configs that move the
padding into the graph, and the rewriters that do it, for every detector cbnet composes."""
import pytest
import torch
from mmengine.config import Config

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')

from mmdeploy.core import RewriterContext  # noqa: E402
from mmdeploy.core.rewriters.rewriter_utils import import_function  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402

from cbnet.deploy.padding import EXTRACT_FEAT, GRAPH_PADDING, with_padding_in_graph  # noqa: E402
from cbnet.models.detectors import CB_DETECTORS  # noqa: E402
from cbnet.testing.deploy_cases import DeployCase, model_config  # noqa: E402

ORT = Config(dict(backend_config=dict(type='onnxruntime'), onnx_config=dict(type='onnx')))
TRT = Config(dict(backend_config=dict(type='tensorrt'), onnx_config=dict(type='onnx')))


def _model_cfg(divisor):
    return Config(dict(model=dict(type='CBFasterRCNN', data_preprocessor=dict(pad_size_divisor=divisor, pad_value=3))))


def test_onnxruntime_graph_takes_the_padding_from_the_data_preprocessor():
    model_cfg = _model_cfg(32)
    deploy_cfg, deployed = with_padding_in_graph(ORT, model_cfg)
    assert deployed.model.data_preprocessor.pad_size_divisor == 1
    assert deploy_cfg[GRAPH_PADDING] == dict(size_divisor=32, value=3.0)
    assert model_cfg.model.data_preprocessor.pad_size_divisor == 32 and GRAPH_PADDING not in ORT  # copies


@pytest.mark.parametrize('deploy_cfg, divisor', [(TRT, 32), (ORT, 1)], ids=['tensorrt', 'no padding'])
def test_configs_unchanged_for_tensorrt_and_models_that_do_not_pad(deploy_cfg, divisor):
    model_cfg = _model_cfg(divisor)
    assert with_padding_in_graph(deploy_cfg, model_cfg) == (deploy_cfg, model_cfg)


def test_every_rewritten_extract_feat_resolves():
    """MMDeploy only warns and skips a rewriter whose path does not import."""
    for path in EXTRACT_FEAT:
        func, cls = import_function(path)
        assert cls is not None and func is cls.__dict__['extract_feat'], path


@pytest.mark.parametrize('name', CB_DETECTORS)
def test_every_cb_detector_pads_in_its_extract_feat(name):
    """Each composite detector's ``extract_feat`` is one the graph padding rewrites (generated from the registry)."""
    rewritten = {import_function(path)[0] for path in EXTRACT_FEAT}
    assert MODELS.get(name).extract_feat in rewritten


def test_graph_features_of_the_unpadded_image_are_mmdets_of_the_padded_one():
    """Inside the export context, the composite detector's features of a 141x150 image are those mmdet computes
    from the batch its data preprocessor pads to 160x160."""
    torch.manual_seed(0)
    model = MODELS.build(model_config(DeployCase('FasterRCNN')).model).eval()
    image = torch.randn(1, 3, 141, 150)
    padded = torch.nn.functional.pad(image, (0, 10, 0, 19), value=0.0)
    deploy_cfg = Config(dict(ORT.to_dict(), **{GRAPH_PADDING: dict(size_divisor=32, value=0.0)}))
    with torch.no_grad():
        expected = model.extract_feat(padded)
        with RewriterContext(cfg=deploy_cfg, backend='onnxruntime'):
            got = model.extract_feat(image)
    assert [f.shape for f in got] == [f.shape for f in expected] and expected[0].shape[-2:] == (40, 40)
    assert all(torch.equal(g, e) for g, e in zip(got, expected))


def test_sdk_pipeline_leaves_the_padding_to_the_graph(tmp_path):
    """``--dump-info``: the MMDeploy SDK's preprocessing pads to 1, as the deployed graph expects."""
    import json
    import os.path as osp

    from cbnet.deploy.pipeline import dump_sdk_info
    from cbnet.testing.deploy_cases import write_case
    cfg, ckpt = write_case(DeployCase('FasterRCNN'), str(tmp_path), size=(160, 160))
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    dump_sdk_info(
        osp.join(root, 'configs', 'deploy', 'detection_onnxruntime_dynamic.py'), cfg, ckpt, str(tmp_path), 'cpu')
    with open(tmp_path / 'pipeline.json') as f:
        transforms = json.load(f)['pipeline']['tasks'][0]['transforms']
    assert [t.get('size_divisor') for t in transforms if t['type'] == 'Pad'] == [1]
