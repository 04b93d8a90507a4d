"""Checkpoint converters: official CBNetV2 (mmdet 2.x) detectors -> cbnet models."""
from .cbnetv2 import (ConversionReport, convert_cbnetv2_state_dict, convert_checkpoint, detect_family,
                      verify_against_model)

__all__ = ['ConversionReport', 'convert_cbnetv2_state_dict', 'convert_checkpoint', 'detect_family',
           'verify_against_model']
