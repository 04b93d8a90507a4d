"""Which heads cbnet's ONNX Runtime post-processing rewriters take over from MMDeploy's (generated from mmdet's
registry, so that a new head cannot be forgotten), and that the others keep MMDeploy's own."""
import pytest

pytest.importorskip('mmdeploy', reason='the deploy stack (requirements/deploy.txt, make install)')

from mmdeploy.core.rewriters.rewriter_utils import import_function  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402

from cbnet.deploy.rewriters import base_post_processing, heads_with_base_post_processing  # noqa: E402

PATHS = heads_with_base_post_processing()


@pytest.mark.parametrize('path', PATHS)
def test_every_rewritten_dense_head_path_resolves_to_its_class(path):
    """MMDeploy only warns and skips a rewriter whose path does not import."""
    func, cls = import_function(path)
    assert cls is not None and base_post_processing(cls) and func is cls.predict_by_feat


def test_heads_with_mmdets_base_post_processing_are_all_rewritten():
    rewritten = {import_function(path)[1] for path in PATHS}
    expected = {cls for cls in MODELS.module_dict.values() if base_post_processing(cls)}
    assert rewritten == expected
    assert {'RetinaHead', 'ATSSHead', 'FCOSHead', 'RTMDetHead'} <= {cls.__name__ for cls in rewritten}


@pytest.mark.parametrize('head', ['PAAHead', 'TOODHead', 'GFLHead', 'LADHead', 'RPNHead', 'YOLOXHead'])
def test_heads_with_their_own_post_processing_are_left_to_their_rewriters(head):
    """PAA's and TOOD's post-processing is theirs: MMDeploy's rewriter keeps them (cbnet's used to call it outside
    its context: the export failed with "'NoneType' object has no attribute 'cfg'")."""
    assert not base_post_processing(MODELS.get(head))
