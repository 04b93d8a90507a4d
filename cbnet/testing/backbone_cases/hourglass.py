"""mmdet's HourglassNet as CornerNet builds it (two stacks), tiny. HourglassNet refuses any ``init_cfg`` and its
``init_weights`` re-initialises every conv: its weights only come with a detector checkpoint (CornerNet's zoo
files: ``{'state_dict': {'backbone.*', 'bbox_head.*'}, 'meta'}``) through ``load_from``, which cbnet expands
into every branch. The writer therefore writes such a file and returns no inner-config overrides (None)."""
import torch
import torch.nn as nn

from . import BackboneCase


def save_cornernet(backbone: nn.Module, path: str) -> None:
    state = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': ('a', 'b')}}}, path)
    return None


CASES = [
    BackboneCase(
        'HourglassNet',
        dict(
            type='HourglassNet',
            downsample_times=2,
            num_stacks=2,
            stage_channels=(8, 8, 16),
            stage_blocks=(1, 1, 1),
            feat_channel=8,
            init_cfg=None),
        write_checkpoint=save_cornernet),
]
