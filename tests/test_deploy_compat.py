"""The torch-compatibility fixes of cbnet.deploy: each one is still needed (the original failure happens without
it), applied only while deploying, and undone afterwards."""
import pytest
import torch

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')

from cbnet.deploy.compat import CAST_LONG, FIXES, LEGACY_EXPORTER, deploy_patches  # noqa: E402


class RoIAlignNet(torch.nn.Module):
    """The smallest model on MMDeploy's export path through mmcv's RoIAlign (whose symbolic needs _cast_Long)."""

    def forward(self, x):
        from mmcv.ops import roi_align
        rois = torch.tensor([[0.0, 1.0, 1.0, 6.0, 7.0]])
        return roi_align(x, rois, (2, 2), 1.0, 0, 'avg', True)


def _export(tmp_path, fixes):
    """MMDeploy's own ``torch.onnx.export`` call (mmdeploy.apis.onnx.export) with ``fixes`` applied."""
    from mmdeploy.apis.onnx import export
    from mmengine.config import Config
    with deploy_patches(fixes=fixes):
        export(
            RoIAlignNet(),
            torch.randn(1, 3, 8, 8),
            str(tmp_path / 'roi_align'),
            backend='onnxruntime',
            context_info=dict(deploy_cfg=Config()),
            input_names=['input'],
            output_names=['output'])
    return tmp_path / 'roi_align.onnx'


def _still_needed(fix):
    if not fix.needed():
        pytest.skip(f'this torch no longer needs the {fix.name!r} fix ({fix.why}): remove it from cbnet.deploy.compat')


def test_without_the_legacy_exporter_fix_mmdeploy_export_fails(tmp_path):
    _still_needed(LEGACY_EXPORTER)
    with pytest.raises(Exception, match='onnxscript'):
        _export(tmp_path, [CAST_LONG])


def test_without_the_cast_long_fix_the_roi_align_symbolic_fails(tmp_path):
    _still_needed(CAST_LONG)
    with pytest.raises(ImportError, match='_cast_Long'):
        _export(tmp_path, [LEGACY_EXPORTER])


def test_with_both_fixes_the_export_works_and_everything_is_undone(tmp_path):
    import onnx
    import torch.onnx.symbolic_opset9 as opset9
    export, had_cast_long = torch.onnx.export, hasattr(opset9, '_cast_Long')
    graph = onnx.load(str(_export(tmp_path, FIXES))).graph
    assert [n.op_type for n in graph.node if n.op_type == 'RoiAlign'] == ['RoiAlign']
    assert torch.onnx.export is export and hasattr(opset9, '_cast_Long') == had_cast_long


def test_importing_cbnet_and_cbnet_deploy_applies_no_fix():
    import torch.onnx.symbolic_opset9 as opset9

    import cbnet  # noqa: F401
    import cbnet.deploy  # noqa: F401
    assert not hasattr(torch.onnx.export, '__wrapped__')
    assert not CAST_LONG.needed() or not hasattr(opset9, '_cast_Long')


def test_every_fix_says_why_in_one_line():
    for fix in FIXES:
        assert fix.why and '\n' not in fix.why


@pytest.mark.parametrize('opset', [11, 16])
def test_onnxruntime_roi_align_matches_mmcv_from_opset_16(opset):
    """Why the deploy configs export opset 16: below it, RoIs under one feature pixel (common in random or
    early models) get other features in ONNX Runtime than in mmcv; from 16 they agree."""
    import numpy as np
    import onnxruntime as ort
    from mmcv.ops import roi_align
    from onnx import TensorProto, helper
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 10.0, 10.0, 11.0, 12.5], [0, 2.0, 3.0, 30.0, 40.0]])  # 0.25 and 7 feature pixels wide
    expected = roi_align(x, rois, (7, 7), 0.25, 0, 'avg', True)
    attrs = dict(output_height=7, output_width=7, sampling_ratio=0, spatial_scale=0.25, mode='avg')
    boxes = rois[:, 1:]
    if opset >= 16:
        attrs['coordinate_transformation_mode'] = 'half_pixel'
    else:
        boxes = boxes - 0.5 / 0.25  # how MMDeploy's RoIAlign symbolic emulates aligned=True below opset 16
    inputs = [
        helper.make_tensor_value_info(name, kind, None)
        for name, kind in (('x', TensorProto.FLOAT), ('rois', TensorProto.FLOAT), ('idx', TensorProto.INT64))
    ]
    graph = helper.make_graph([helper.make_node('RoiAlign', ['x', 'rois', 'idx'], ['y'], **attrs)], 'roi_align', inputs,
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 8
    out = ort.InferenceSession(model.SerializeToString()).run(None, {
        'x': x.numpy(),
        'rois': boxes.numpy(),
        'idx': np.zeros(2, np.int64)
    })[0]
    diff = (torch.from_numpy(out) - expected).abs().amax(dim=(1, 2, 3))
    assert diff[1] < 1e-5  # a RoI of several pixels agrees either way
    assert (diff[0] < 1e-5) == (opset >= 16), diff.tolist()


def test_an_op_without_export_path_is_named_with_what_to_do(tmp_path):
    from cbnet.deploy.support import ExportError, export_error

    class SVD(torch.nn.Module):

        def forward(self, x):
            return torch.linalg.svd(x)[1]

    with deploy_patches(), pytest.raises(Exception) as info:
        torch.onnx.export(SVD(), torch.randn(3, 3), str(tmp_path / 'svd.onnx'), opset_version=16)
    error = export_error('CBFasterRCNN', info.value)
    assert isinstance(error, ExportError)
    assert 'CBFasterRCNN: export failed on the op aten::linalg_svd' in str(error)
    assert 'rewriter' in str(error) and 'tools/test.py' in str(error)


@pytest.mark.parametrize(
    'message, stage, dcn_advice',
    [('[ONNXRuntimeError] : 1 : FAIL : Load model failed:Fatal error: mmdeploy:MMCVDeformConv2d(-1) is not a '
      'registered function/op', 'backend', True),
     ("'int' object is not iterable (occurred when translating DeformConv2dFunction)", 'export', True),
     ('error (occurred when translating ModulatedDeformConv2dFunction)', 'export', False)],
    ids=['onnxruntime lacks DCN v1', 'DCN v1 symbolic', 'DCNv2 is not DCN v1'])
def test_deformable_conv_v1_errors_say_to_use_dcnv2_or_tensorrt(message, stage, dcn_advice):
    """MMDeploy's ONNX Runtime library registers MMCVModulatedDeformConv2d only (its TensorRT library both): the
    errors of models with DCN v1 (Res2Net-DCN, TOOD, VFNet, RepPoints) say what to change."""
    from cbnet.deploy.support import export_error
    error = str(export_error('CBVFNet', RuntimeError(message), stage))
    assert ("dcn=dict(type='DCNv2')" in error) == dcn_advice, error
    if stage == 'backend':
        assert 'the op mmdeploy:MMCVDeformConv2d' in error
