"""Deploying CB detectors with MMDeploy (ONNX Runtime on the CPU; TensorRT on CUDA machines).

Only the lead path is exported: in eval mode a composite backbone returns the lead's features and the neck and
heads run once, so the graph holds the parameters the lead reads (the assisting branches' stages that feed it,
the composition, the lead, the neck and heads) and nothing else.

Importing this package needs ``mmdeploy`` (``requirements/deploy.txt``); ``import cbnet`` does not import it.
The torch-compatibility fixes MMDeploy 1.3.1 needs are applied only while exporting (:mod:`.compat`).
"""
from . import padding, rewriters, solov2  # noqa: F401  (register the ONNX Runtime rewriters with MMDeploy)
from .compat import FIXES, deploy_patches, needed_fixes
from .parity import Agreement, ParityError, Tolerance, compare_instances
from .pipeline import DeployResult, check_parity, deploy, export, load_configs
from .support import NotDeployableError, check_deployable

__all__ = [
    'FIXES', 'deploy_patches', 'needed_fixes', 'Agreement', 'ParityError', 'Tolerance', 'compare_instances',
    'DeployResult', 'check_parity', 'deploy', 'export', 'load_configs', 'NotDeployableError', 'check_deployable'
]
