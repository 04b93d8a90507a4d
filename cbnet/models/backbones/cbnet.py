"""CBNet: K copies of any supported backbone; assisting branches feed the lead through composite connections."""
import copy
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from torch import Tensor

from ..structures import MultiBranchFeatures
from .adapters import BackboneAdapter, get_adapter
from .adapters.base import prune
from .compositions import Composition, build_composition, composition_class
from .pretrained import find_pretrained, load_pretrained_into_branches


@MODELS.register_module()
class CBNet(BaseModule):
    """Composite backbone (CBNetV2): ``num_backbones`` branches of the same backbone.

    Branches ``0..K-2`` assist, branch ``K-1`` leads. Every stage input of branch ``k >= 1`` receives the
    previous branch's stage outputs through the ``composition`` (DHLC by default). Branches after the first
    are pruned: their stem and first ``del_stages`` stages are parameter-free placeholders and they reuse the
    first branch's features there (fewer FLOPs, no parameters that never get gradients).

    Every branch is the inner backbone's own module and keeps its own training behaviour: ``train()`` runs
    each branch's ``train()`` (its ``frozen_stages``, ``norm_eval``, ...), which the placeholders tolerate.

    In eval mode the lead's features are returned as a tuple, like any mmdet backbone. In train mode all
    branches are returned as :class:`MultiBranchFeatures` for assistant supervision (a CB detector).

    Args:
        backbone: config of the inner backbone, any supported family; its options (``frozen_stages``,
            ``norm_eval``, ``with_cp``, ``out_indices``, ``dcn``, drop path, ``init_cfg``) hold per branch.
            A ``Pretrained`` ``init_cfg`` there is loaded once and copied into every branch.
        num_backbones: K >= 2 (2 = Dual, 3 = Triple).
        composition: a registered composition name or config (``DHLC``, ``AHLC``, ``SLC``, ``ALLC``). Its
            ``norm_cfg`` defaults to the family's (BN for CNNs, none for transformers).
        del_stages: stages (after the stem, which is always shared) that branches ``k >= 1`` drop and take
            from the first branch. 1 reproduces the official ResNet models; the official Swin models
            (``cb_del_stages=1`` there counts the patch embedding) correspond to 0. None: the family's
            default (``BackboneAdapter.default_del_stages``: 1, plain ViTs 0).
        zero_init: connections start at exactly zero, so the composite initially computes the single
            backbone's features in every branch.
        share_weights: all branches use the first branch's weights (only connections are new); no pruning.
    """

    def __init__(self,
                 backbone: dict,
                 num_backbones: int = 2,
                 composition: Union[str, dict] = 'DHLC',
                 del_stages: Optional[int] = None,
                 zero_init: bool = True,
                 share_weights: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        if find_pretrained(init_cfg) is not None:
            raise ValueError('CBNet loads pretrained weights through its inner backbone: move '
                             "init_cfg=dict(type='Pretrained', ...) into backbone=dict(..., init_cfg=...); it is "
                             'then loaded into every branch.')
        super().__init__(init_cfg)
        if not isinstance(num_backbones, int) or num_backbones < 2:
            raise ValueError(f'num_backbones must be an int >= 2 (2 = Dual, 3 = Triple), got {num_backbones!r}; '
                             'for a single backbone use the backbone config itself.')
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError('CBNet needs backbone=dict(type=..., ...), the config of the inner backbone.')
        self.num_backbones = num_backbones
        self.zero_init = zero_init
        self.share_weights = share_weights

        # ConfigDict: some families read their init_cfg by attribute (mmdet Swin), also when built from a dict
        first = MODELS.build(ConfigDict(copy.deepcopy(backbone)))
        self.adapter: BackboneAdapter = get_adapter(first)
        self.adapter.check(first)
        self.num_stages = self.adapter.num_stages(first)
        if del_stages is None:
            del_stages = self.adapter.del_stages_default(first)
        if not 0 <= del_stages < self.num_stages:
            raise ValueError(f'del_stages must be in [0, {self.num_stages - 1}] for this backbone, got {del_stages}')
        self.del_stages = del_stages
        self.out_indices = tuple(self.adapter.out_indices(first))
        if not self.out_indices or not all(0 <= i < self.num_stages for i in self.out_indices):
            raise ValueError(f'out_indices {self.out_indices} of the inner backbone must be within '
                             f'0..{self.num_stages - 1}')
        self.stem_channels, self.stage_in_channels, self.stage_out_channels = self._measure_widths(first)

        #: the last stage each branch runs: no stage whose output nobody reads (no parameter without gradient)
        self.last_stages = self._plan_last_stages(composition_class(composition), share_weights)
        branches = [first]
        if not share_weights:
            branches += [copy.deepcopy(first) for _ in range(num_backbones - 1)]
            for k in range(num_backbones):
                for name in self._pruned_modules(branches[k], k, self.last_stages[k]):
                    prune(branches[k], name)
        self.branches = nn.ModuleList(branches)

        norm_default = self.adapter.connection_norm_cfg
        self.composition: Composition = build_composition(
            composition,
            num_links=num_backbones - 1,
            source_channels=self.stage_out_channels,
            target_channels=self.stage_in_channels,
            target_stages=[range(self.del_stages,
                                 self._last_stage(k) + 1) for k in range(1, num_backbones)],
            norm_cfg=copy.deepcopy(norm_default))
        if zero_init:
            self.composition.zero_init_()

    # -- construction helpers ----------------------------------------------------------------------------
    def _measure_widths(self, backbone: nn.Module) -> Tuple[int, List[int], List[int]]:
        """Run the family's stem and stages once to learn every width (any variant works), at the adapter's
        probe size: the smallest image whose deepest map the family's layers accept (deformable convs refuse
        maps smaller than their kernel), since this runs on the full-width model at build time. The same run
        gives each stage's stride (``stage_strides``), which the pyramid check compares with the heads'."""
        if self.adapter.probe_on_copy:
            backbone = copy.deepcopy(backbone)
        was_training = [m.training for m in backbone.modules()]
        backbone.eval()
        size = self.adapter.probe_size(backbone)
        try:
            with torch.no_grad():
                param = next(backbone.parameters())
                h = self.adapter.run_stem(backbone, torch.zeros(1, 3, size, size, dtype=param.dtype))
                in_channels, out_channels, strides = [], [], []
                for i in range(self.num_stages):
                    in_channels.append(self.adapter.input_channels(h))
                    h, out = self.adapter.run_stage(backbone, i, h)
                    out_channels.append(out.shape[1])
                    strides.append(max(1, round(size / out.shape[-1])))
        finally:
            for m, mode in zip(backbone.modules(), was_training):
                m.training = mode
        #: the stride of every stage's output (input pixels per feature cell)
        self.stage_strides = strides
        return in_channels[0], in_channels, out_channels

    def _plan_last_stages(self, composition: type, share_weights: bool) -> List[int]:
        """Per branch, the last stage it runs. Every branch returns ``out_indices`` (assisting branches are
        supervised too); an assisting branch also runs the stages whose outputs the next branch's connections
        read (DHLC: all of them; AHLC/SLC/ALLC: none beyond what it returns). The first branch holds the
        weights every branch copies, so it runs at least as deep as any."""
        last = [max(self.out_indices)] * self.num_backbones
        for k in range(self.num_backbones - 2, -1, -1):
            read = [
                s for target in range(self.del_stages, last[k + 1] + 1)
                for s in composition.sources(target, self.num_stages) if 0 <= s < self.num_stages
            ]
            last[k] = max([last[k]] + read)
        last[0] = self.num_stages - 1 if share_weights else max(last)
        return last

    def _pruned_modules(self, branch: nn.Module, k: int, last_stage: int) -> List[str]:
        """Branches after the first drop the stem and the first ``del_stages`` stages (they reuse the first
        branch's); every branch drops the stages after its last one."""
        names = [] if k == 0 else list(self.adapter.stem_modules(branch))
        shared = [] if k == 0 else list(range(self.del_stages))
        for i in shared + list(range(last_stage + 1, self.num_stages)):
            names += self.adapter.stage_modules(branch, i)
        return names

    def _last_stage(self, k: int) -> int:
        return self.last_stages[k]

    def branch(self, k: int) -> nn.Module:
        return self.branches[0 if self.share_weights else k]

    # -- forward -----------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Union[Tuple[Tensor, ...], MultiBranchFeatures]:
        adapter = self.adapter
        first = self.branch(0)
        h = adapter.run_stem(first, x)
        shared_input, outs = h, []
        for i in range(self._last_stage(0) + 1):
            if i == self.del_stages:
                shared_input = h  # what the pruned branches start from
            h, out = adapter.run_stage(first, i, h)
            outs.append(out)
        branch_outs = [outs]

        for k in range(1, self.num_backbones):
            branch = self.branch(k)
            h, outs = shared_input, list(branch_outs[0][:self.del_stages])
            for i in range(self.del_stages, self._last_stage(k) + 1):
                h = self.composition(k - 1, i, h, branch_outs[-1], adapter.input_size, adapter.add_to_input)
                h, out = adapter.run_stage(branch, i, h)
                outs.append(out)
            branch_outs.append(outs)

        per_branch = [tuple(outs[i] for i in self.out_indices) for outs in branch_outs]
        if self.training:
            return MultiBranchFeatures(per_branch)
        return per_branch[-1]

    # -- weights ---------------------------------------------------------------------------------------
    def init_weights(self) -> None:
        """Initialise (or load the pretrained checkpoint into) the first branch, copy it into the others,
        and keep the composite connections at zero."""
        load_pretrained_into_branches(self.branches, composition=self.composition)
        if self.zero_init:
            self.composition.zero_init_()
        for m in self.modules():  # the branches were initialised above: the detector must not re-init them
            if isinstance(m, BaseModule):
                m._is_init = True
