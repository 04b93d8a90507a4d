"""tools/train.py and tools/test.py take the rank argument every launcher passes: ``--local-rank`` (torch >= 2.0's
``torch.distributed.launch``, which ``mim train/test --launcher pytorch`` uses) and ``--local_rank`` (older
launchers), and export it as ``LOCAL_RANK`` for mmengine, as mmdet's tools do."""
import os
import sys

import pytest

from cbnet.testing import load_tool


@pytest.mark.parametrize('tool, positional', [('tools/train.py', ['cfg.py']),
                                              ('tools/test.py', ['cfg.py', 'ckpt.pth'])])
@pytest.mark.parametrize('flag', [['--local-rank=1'], ['--local_rank', '1'], ['--local-rank', '1']])
def test_tools_accept_both_spellings_of_the_local_rank(tool, positional, flag, monkeypatch):
    module = load_tool(tool)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    monkeypatch.setattr(sys, 'argv', [tool, *positional, '--launcher', 'pytorch', *flag])
    assert module.parse_args().local_rank == 1
    assert os.environ['LOCAL_RANK'] == '1'
