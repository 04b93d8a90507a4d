from .adapters import BackboneAdapter, get_adapter, register_adapter, supported_backbones
from .aliases import CBConvNeXt, CBRes2Net, CBResNet, CBSwinTransformer
from .cbnet import CBNet
from .compositions import AHLC, ALLC, COMPOSITIONS, DHLC, SLC, Composition, Connection

__all__ = [
    'CBNet', 'CBResNet', 'CBRes2Net', 'CBSwinTransformer', 'CBConvNeXt', 'COMPOSITIONS', 'Composition', 'Connection',
    'DHLC', 'AHLC', 'SLC', 'ALLC', 'BackboneAdapter', 'get_adapter', 'register_adapter', 'supported_backbones'
]
