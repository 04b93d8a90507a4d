from .base import BackboneAdapter, get_adapter, register_adapter, supported_backbones
from .convnext import ConvNeXtAdapter
from .resnet import RegNetAdapter, ResNetAdapter
from .swin import SwinAdapter

__all__ = [
    'BackboneAdapter', 'get_adapter', 'register_adapter', 'supported_backbones', 'ResNetAdapter',
    'RegNetAdapter', 'SwinAdapter', 'ConvNeXtAdapter'
]
