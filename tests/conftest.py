import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

import cbnet  # noqa: E402,F401  (registers everything)
from mmdet.utils import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=True)  # sub-modules (data preprocessor, heads) resolve in mmdet's scope

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
