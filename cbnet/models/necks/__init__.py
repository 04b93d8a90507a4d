from .cb_neck import CBFPN, BranchwiseNeckMixin, CBNeck, branchwise

__all__ = ['CBNeck', 'CBFPN', 'BranchwiseNeckMixin', 'branchwise']
