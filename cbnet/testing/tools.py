"""cbnet's command-line scripts (``tools/...``) as modules, so that tests call their ``main`` in-process."""
import importlib.util
import os.path as osp
from types import ModuleType

from .toy_runs import REPO


def load_tool(relative_path: str) -> ModuleType:
    """The script at ``relative_path`` of the checkout (e.g. ``tools/cbnetify.py``), imported as a module named
    after its file, without touching ``sys.path``."""
    path = osp.join(REPO, relative_path)
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
