"""The two-stage kind: every branch's RPN is supervised, the RoI heads may all train on the lead's proposals."""
import contextlib
from typing import List

from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import TwoStageDetector
from torch import Tensor

from ..structures import MultiBranchFeatures
from .assisted import AssistedDetectorMixin, register_kind

ASSIST_PROPOSALS = ('lead', 'own')


@register_kind(TwoStageDetector)
class TwoStageAssistedMixin(AssistedDetectorMixin):
    """Assistant supervision of two-stage detectors (Faster/Mask/Cascade R-CNN, HTC, ...).

    Args:
        assist_proposals: ``'lead'`` (default, the official CBNetV2 training): the RPN loss is computed for
            every branch, but the RoI heads of ALL branches are trained on the lead branch's proposal list
            (the lead runs first; the assisting RPNs compute their losses only, no proposals). ``'own'``:
            every branch's RoI head trains on its own RPN's proposals.
    """

    kind_options = ('assist_proposals', )

    def __init__(self, *args, assist_proposals: str = 'lead', **kwargs) -> None:
        if assist_proposals not in ASSIST_PROPOSALS:
            raise ValueError(f"assist_proposals must be 'lead' (the RoI heads of all branches train on the lead's "
                             f"proposals, as in CBNetV2) or 'own' (each branch its own), got {assist_proposals!r}")
        super().__init__(*args, **kwargs)
        self.assist_proposals = assist_proposals

    def branch_losses(self, feats: MultiBranchFeatures, batch_inputs: Tensor, batch_data_samples) -> List[dict]:
        if not self.with_rpn:  # Fast R-CNN: every branch trains on the given proposals (each on its own copy)
            return [
                self.branch_loss(self.shared_neck(branch), batch_inputs, _with_own_proposals(batch_data_samples))
                for branch in feats.branches
            ]
        if self.assist_proposals == 'own':
            return super().branch_losses(feats, batch_inputs, batch_data_samples)
        recorded: List = []
        with self._rpn_proposals(record=recorded):
            lead = self.branch_loss(self.shared_neck(feats.lead), batch_inputs, batch_data_samples)
        assisting = []
        for branch in feats.assisting:
            with self._rpn_proposals(given=recorded):
                assisting.append(self.branch_loss(self.shared_neck(branch), batch_inputs, batch_data_samples))
        return assisting + [lead]

    @contextlib.contextmanager
    def _rpn_proposals(self, record: List = None, given: List = None):
        """While active, ``rpn_head.loss_and_predict`` (what mmdet's two-stage ``loss`` calls) records a copy
        of the proposals it returns (``record``) or returns copies of ``given`` in place of its own.

        Copies: the RoI heads rename fields of the proposal list they get (``bboxes`` -> ``priors``); the
        tensors are the same.
        """
        head = self.rpn_head
        own = head.loss_and_predict

        def loss_and_predict(x, rpn_data_samples, proposal_cfg=None):
            if given is None:
                losses, proposals = own(x, rpn_data_samples, proposal_cfg=proposal_cfg)
                record.extend(p.clone() for p in proposals)
                return losses, proposals
            if _loss_is_separable(head):  # the same losses, without making proposals nobody uses
                losses = head.loss(x, rpn_data_samples)
            else:
                losses, _ = own(x, rpn_data_samples, proposal_cfg=proposal_cfg)
            return losses, [p.clone() for p in given]

        head.loss_and_predict = loss_and_predict  # an instance attribute shadows the method
        try:
            yield
        finally:
            del head.loss_and_predict


def _with_own_proposals(batch_data_samples) -> list:
    """The samples with copies of their ``proposals`` (the RoI heads rename its fields as they read it)."""
    samples = []
    for sample in batch_data_samples:
        sample = sample.clone()
        sample.proposals = sample.proposals.clone()
        samples.append(sample)
    return samples


def _loss_is_separable(head) -> bool:
    """Whether ``head.loss`` computes exactly the losses of ``head.loss_and_predict`` (mmdet's dense heads)."""
    cls = type(head)
    return (isinstance(head, BaseDenseHead) and cls.loss_and_predict is BaseDenseHead.loss_and_predict
            and cls.loss is BaseDenseHead.loss)
