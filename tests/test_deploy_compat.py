"""The torch-compatibility fixes of cbnet.deploy: each one is still needed (the original failure happens without
it), applied only while deploying, and undone afterwards."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')

from cbnet.deploy.compat import CAST_LONG, FIXES, LEGACY_EXPORTER, deploy_patches  # noqa: E402
from cbnet.testing.deploy_cases import DeployCase, write_case, write_image  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STATIC = osp.join(ROOT, 'configs', 'deploy', 'detection_onnxruntime_static.py')


@pytest.fixture(scope='module')
def faster_rcnn(tmp_path_factory):
    """A tiny Dual Faster R-CNN (RoIAlign: the op whose symbolic needs _cast_Long) and an image."""
    out = str(tmp_path_factory.mktemp('compat'))
    cfg, ckpt = write_case(DeployCase('FasterRCNN'), out)
    return cfg, ckpt, write_image(osp.join(out, 'image.png')), out


def _export(faster_rcnn, fixes):
    from mmdeploy.apis import torch2onnx
    cfg, ckpt, img, out = faster_rcnn
    with deploy_patches(fixes=fixes):
        torch2onnx(img, out, 'end2end.onnx', STATIC, cfg, ckpt, device='cpu')


def _still_needed(fix):
    if not fix.needed():
        pytest.skip(f'this torch no longer needs the {fix.name!r} fix ({fix.why}): remove it from cbnet.deploy.compat')


def test_without_the_legacy_exporter_fix_mmdeploy_export_fails(faster_rcnn):
    _still_needed(LEGACY_EXPORTER)
    with pytest.raises(Exception, match='onnxscript'):
        _export(faster_rcnn, [CAST_LONG])


def test_without_the_cast_long_fix_the_roi_align_symbolic_fails(faster_rcnn):
    _still_needed(CAST_LONG)
    with pytest.raises(ImportError, match='_cast_Long'):
        _export(faster_rcnn, [LEGACY_EXPORTER])


def test_with_both_fixes_the_export_works_and_everything_is_undone(faster_rcnn):
    import torch.onnx.symbolic_opset9 as opset9
    export, had_cast_long = torch.onnx.export, hasattr(opset9, '_cast_Long')
    _export(faster_rcnn, FIXES)
    assert osp.getsize(osp.join(faster_rcnn[3], 'end2end.onnx')) > 0
    assert torch.onnx.export is export and hasattr(opset9, '_cast_Long') == had_cast_long


def test_import_cbnet_imports_no_deploy_code():
    """The fixes live in cbnet.deploy, which ``import cbnet`` does not import (nor mmdeploy)."""
    code = 'import sys, cbnet; print(sorted(m for m in ("cbnet.deploy", "mmdeploy") if m in sys.modules))'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == '[]'


def test_every_fix_says_why_in_one_line():
    for fix in FIXES:
        assert fix.why and '\n' not in fix.why
