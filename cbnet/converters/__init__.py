"""Checkpoint converters: official CBNetV2 (mmdet 2.x) detectors -> cbnet models."""
from .cbnetv2 import (ConversionReport, build_target_model, convert_cbnetv2_state_dict, convert_checkpoint,
                      detect_family, drop_pruned_stages, load_official_checkpoint, verify_against_model)

__all__ = ['ConversionReport', 'build_target_model', 'convert_cbnetv2_state_dict', 'convert_checkpoint',
           'detect_family', 'drop_pruned_stages', 'load_official_checkpoint', 'verify_against_model']
