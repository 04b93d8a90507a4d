from .cb_neck import CBFPN, CBNeck

__all__ = ['CBNeck', 'CBFPN']
