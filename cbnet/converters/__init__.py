"""Checkpoint converters: official CBNetV2 (mmdet 2.x) detectors -> cbnet models; a trained plain mmdet
detector -> the matching CB detector (its starting point)."""
from .cbnetv2 import (ConversionReport, build_target_model, convert_cbnetv2_state_dict, convert_checkpoint,
                      detect_family, drop_pruned_stages, load_official_checkpoint, verify_against_model)
from .single_to_cb import (ExpansionReport, expand_checkpoint, expand_single_state_dict, is_single_backbone_state_dict,
                           load_state_dict_file)

__all__ = [
    'ConversionReport', 'build_target_model', 'convert_cbnetv2_state_dict', 'convert_checkpoint', 'detect_family',
    'drop_pruned_stages', 'load_official_checkpoint', 'verify_against_model', 'ExpansionReport', 'expand_checkpoint',
    'expand_single_state_dict', 'is_single_backbone_state_dict', 'load_state_dict_file'
]
