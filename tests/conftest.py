import pytest
import torch
from mmdet.utils import register_all_modules

import cbnet  # noqa: F401  (registers everything)

register_all_modules(init_default_scope=True)  # sub-modules (data preprocessor, heads) resolve in mmdet's scope

# One thread: the tests' models are tiny, and intra-op threads cost more than they gain at these sizes
# (several times slower on a loaded 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
    # a Runner with randomness.deterministic=True switches torch to deterministic algorithms for the whole
    # process (uninitialised memory then reads NaN): no test inherits that from another
    torch.use_deterministic_algorithms(False)
