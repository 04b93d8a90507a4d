import os

import pytest
import torch
from mmdet.utils import register_all_modules

import cbnet  # noqa: F401  (registers everything)

register_all_modules(init_default_scope=True)  # sub-modules (data preprocessor, heads) resolve in mmdet's scope

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
