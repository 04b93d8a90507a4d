"""mmdet's HourglassNet (CornerNet, CentripetalNet): stacked hourglasses, one composite stage per stack."""
from typing import List, Sequence, Tuple

from mmdet.models.backbones import HourglassNet
from torch import Tensor

from .base import BackboneAdapter, register_adapter


@register_adapter(HourglassNet)
class HourglassAdapter(BackboneAdapter):
    """Stem = ``stem`` (7x7 conv and a residual block: stride 4); stage i = hourglass stack i: its hourglass
    and ``out_convs[i]`` (the stage output, what the family returns for stack i) and, except for the last stack,
    the transition that makes the next stack's input from this stack's input and output (``conv1x1s[i]``,
    ``remap_convs[i]``, ``inters[i]``). All stacks keep the stride-4 resolution of the stem.

    Every stack's output is returned (``out_indices`` = all stacks, as the family does): CornerNet's heads
    supervise the intermediate stacks too (``num_feat_levels``), in every branch. Composite connections feed a
    stack's input, the map the family's transition hands it; with zero-initialised connections every branch is
    the single HourglassNet. ``del_stages=1`` lets the lead share the stem and the first stack; a Dual
    Hourglass-104 (two stacks) then adds one stack to the lead, ``del_stages=0`` a whole second network.

    HourglassNet has no ``frozen_stages``/``norm_eval``/``with_cp`` and refuses any ``init_cfg`` (its
    ``init_weights`` re-initialises every conv): its weights come with a detector checkpoint (``load_from``),
    which cbnet expands into every branch.
    """

    connection_norm_cfg = dict(type='BN', requires_grad=True)

    def num_stages(self, backbone: HourglassNet) -> int:
        return backbone.num_stacks

    def stem_modules(self, backbone: HourglassNet) -> List[str]:
        return ['stem']

    def stage_modules(self, backbone: HourglassNet, i: int) -> List[str]:
        names = [f'hourglass_modules.{i}', f'out_convs.{i}']
        if i < backbone.num_stacks - 1:
            names += [f'conv1x1s.{i}', f'remap_convs.{i}', f'inters.{i}']
        return names

    def out_indices(self, backbone: HourglassNet) -> Sequence[int]:
        return tuple(range(backbone.num_stacks))

    def total_stride(self, backbone: HourglassNet) -> int:
        return 4

    def probe_size(self, backbone: HourglassNet) -> int:
        # the hourglass halves the stem's map `depth` times inside each stack: probe down to 1x1 there
        return self.total_stride(backbone) * 2**backbone.hourglass_modules[0].depth

    def run_stem(self, backbone: HourglassNet, x: Tensor) -> Tensor:
        return backbone.stem(x)

    def run_stage(self, backbone: HourglassNet, i: int, h: Tensor) -> Tuple[Tensor, Tensor]:
        out = backbone.out_convs[i](backbone.hourglass_modules[i](h))
        if i == backbone.num_stacks - 1:
            return out, out
        following = backbone.conv1x1s[i](h) + backbone.remap_convs[i](out)
        return backbone.inters[i](backbone.relu(following)), out
