"""The neck's output strides against what the heads declare (cbnet.utils.compat_checks.check_pyramid_strides).

A neck that reads other backbone levels than the anchors and RoI extractors assume trains without any error;
the CB detectors check it when they are built, CheckpointCompatibilityHook before a run.
"""
import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

from cbnet.testing import DUAL_TOY
from cbnet.utils.compat_checks import check_pyramid_strides, neck_output_strides

# the demo model with out_indices=(1, 2, 3) and the neck in_channels the channel check asks for
FEWER_LEVELS = {'backbone.backbone.out_indices': (1, 2, 3), 'neck.in_channels': [64, 128, 256]}


def _build(**changes):
    cfg = Config.fromfile(DUAL_TOY)
    cfg.merge_from_dict({f'model.{k}': v for k, v in changes.items()})
    return MODELS.build(cfg.model)


def test_demo_model_passes_and_knows_its_strides():
    model = _build()
    assert model.backbone.stage_strides == [4, 8, 16, 32]
    assert neck_output_strides(model.neck, [4, 8, 16, 32]) == [8, 16, 32]  # start_level=1, num_outs=3
    check_pyramid_strides(model)


def test_neck_reading_the_wrong_levels_is_refused_with_both_fixes():
    with pytest.raises(ValueError) as e:  # start_level=1 of the toy FPN now skips stride 8: 16/32/64 out
        _build(**FEWER_LEVELS)
    msg = str(e.value)
    assert 'returns strides [8, 16, 32]' in msg and 'outputs strides [16, 32, 64]' in msg
    assert "rpn_head's AnchorGenerator declares [8, 16, 32]" in msg
    assert 'roi_head.bbox_roi_extractor declares [8, 16, 32]' in msg
    assert 'model.neck.start_level=0' in msg  # fix 1: the neck
    assert '"model.rpn_head.anchor_generator.strides=[16,32,64]"' in msg  # fix 2: the heads
    assert '"model.roi_head.bbox_roi_extractor.featmap_strides=[16,32,64]"' in msg


def test_each_suggested_fix_builds():
    _build(**FEWER_LEVELS, **{'neck.start_level': 0})
    _build(
        **FEWER_LEVELS, **{
            'rpn_head.anchor_generator.strides': [16, 32, 64],
            'roi_head.bbox_roi_extractor.featmap_strides': [16, 32, 64]
        })
