from .cb_neck import CBFPN, CBNeck
from .simple_fpn import LN2d, SimpleFeaturePyramid

__all__ = ['CBNeck', 'CBFPN', 'LN2d', 'SimpleFeaturePyramid']
