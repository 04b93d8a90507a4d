"""mmdet's HRNet: parallel multi-resolution streams, returned together by the last stage.

HRNet's stage k consumes a list of maps (one per resolution, stride 4 first) and returns such a list; its
``transition{k}`` layers add the next, coarser stream. The detector reads the four maps of the last stage.
The composite contract has one output feature per stage, so the adapter makes HRNet's returned resolutions
stages of their own (:class:`HRNetAdapter`), and a stage input is the list of maps with the one map that the
composite connections feed (:class:`Streams`).
"""
from typing import List, NamedTuple, Tuple

from mmdet.models.backbones import HRNet
from torch import Tensor

from .base import BackboneAdapter, register_adapter

#: HRNet's stages after ``layer1``, each preceded by the transition that makes its input streams
_STAGES = ((1, 'transition1', 'stage2'), (2, 'transition2', 'stage3'), (3, 'transition3', 'stage4'))


class Streams(NamedTuple):
    """A stage input: HRNet's maps (finest first) and the index of the map composite connections add to."""

    maps: Tuple[Tensor, ...]
    target: int


@register_adapter(HRNet)
class HRNetAdapter(BackboneAdapter):
    """HRNet's stages and returned resolutions as composite stages:

    - stem: ``conv1``/``norm1``/``conv2``/``norm2`` (stride 4);
    - stage 0: ``layer1`` (HRNet's stage 1); output: its map;
    - stages 1, 2: ``transition{k}`` + ``stage{k+1}``; output: the stage's coarsest (newest) stream, so
      stages 0-2 output strides 4, 8, 16;
    - stage 3: ``transition3`` + ``stage4``; output: the finest of HRNet's returned maps;
    - stages 4 .. 3+R-1 (R returned maps, 4 unless ``multiscale_output=False``): no modules; stage 3+j outputs
      returned map j.

    ``out_indices`` are therefore ``(3, ..., 3+R-1)``: every branch returns exactly HRNet's maps. Connections
    into the input of stages 0-3 are added to its finest stream (stride 4, the stream HRNet keeps at full
    resolution; its fuse layers pass it to every coarser stream within the next module); connections into stage
    3+j are added to returned map j (the assisting branch's maps reach the lead's outputs directly there).
    ``del_stages=1`` shares the stem and ``layer1``, as the official ResNet models share theirs. ``norm_eval``
    and ``with_cp`` hold in every branch (HRNet has no ``frozen_stages``). Inputs must be multiples of 32, as
    for HRNet itself (its fuse layers upsample by exact factors).
    """

    connection_norm_cfg = dict(type='BN', requires_grad=True)
    #: stride-2 3x3 convs (padding 1) and exact 2^k upsampling run on any multiple of the total stride
    probe_cells = 1

    @staticmethod
    def _num_returned(backbone: HRNet) -> int:
        return backbone.stage4_cfg['num_branches'] if backbone.stage4[-1].multiscale_output else 1

    def num_stages(self, backbone: HRNet) -> int:
        return 1 + len(_STAGES) + self._num_returned(backbone) - 1

    def out_indices(self, backbone: HRNet) -> Tuple[int, ...]:
        return tuple(range(len(_STAGES), self.num_stages(backbone)))

    def stem_modules(self, backbone: HRNet) -> List[str]:
        return ['conv1', backbone.norm1_name, 'conv2', backbone.norm2_name]

    def stage_modules(self, backbone: HRNet, i: int) -> List[str]:
        if i == 0:
            return ['layer1']
        if i <= len(_STAGES):
            _, transition, stage = _STAGES[i - 1]
            return [transition, stage]
        return []  # a returned resolution: nothing to run

    def total_stride(self, backbone: HRNet) -> int:
        return 4 * 2**(backbone.stage4_cfg['num_branches'] - 1)

    def run_stem(self, backbone: HRNet, x: Tensor) -> Streams:
        x = backbone.relu(backbone.norm1(backbone.conv1(x)))
        x = backbone.relu(backbone.norm2(backbone.conv2(x)))
        return Streams((x, ), 0)

    def run_stage(self, backbone: HRNet, i: int, h: Streams) -> Tuple[Streams, Tensor]:
        if i == 0:
            out = backbone.layer1(h.maps[0])
            return Streams((out, ), 0), out
        if i <= len(_STAGES):
            k, transition, stage = _STAGES[i - 1]
            transition, stage = getattr(backbone, transition), getattr(backbone, stage)
            num_branches = getattr(backbone, f'stage{k + 1}_cfg')['num_branches']
            # as HRNet.forward: a transition (new stream or width change) reads the coarsest stream
            inputs = [h.maps[j] if transition[j] is None else transition[j](h.maps[-1]) for j in range(num_branches)]
            maps = tuple(stage(inputs))
            if i < len(_STAGES):
                return Streams(maps, 0), maps[-1]
            return Streams(maps, 1), maps[0]
        j = i - len(_STAGES)  # returned map j
        return Streams(h.maps, j + 1), h.maps[j]

    def input_size(self, h: Streams) -> Tuple[int, int]:
        return tuple(h.maps[h.target].shape[-2:])

    def input_channels(self, h: Streams) -> int:
        return h.maps[h.target].shape[1]

    def add_to_input(self, h: Streams, delta: Tensor) -> Streams:
        maps = list(h.maps)
        maps[h.target] = maps[h.target] + delta
        return Streams(tuple(maps), h.target)
