"""``--threads`` of cbnet's tools (cbnet.utils.threads): who decides, and the free-cores default on CPU runs."""
import pytest
import torch

from cbnet.utils.threads import choose_threads, configure_cpu_threads, free_cores


@pytest.mark.parametrize('load, expected', [(0.1, 2), (0.4, 2), (0.6, 1), (1.2, 1), (3.5, 1), (9.0, 1)])
def test_free_cores_of_a_two_core_machine(load, expected):
    assert free_cores(cores=2, load=load) == expected


def test_free_cores_never_exceed_the_usable_ones():
    assert free_cores(cores=16, load=0.0) == 16 and free_cores(cores=16, load=4.2) == 12


def test_who_decides():
    busy = dict(cores=2, load=3.5)
    assert choose_threads(3, env={'OMP_NUM_THREADS': '1'}, **busy) == (3, '--threads')  # the user, first
    assert choose_threads(None, env={'OMP_NUM_THREADS': '2'}, **busy)[0] is None  # torch read it at start
    assert choose_threads(None, cpu_run=False, env={}, **busy)[0] is None  # GPU runs: torch's default
    assert choose_threads(None, env={}, **busy)[0] == 1  # a busy CPU: one thread
    assert choose_threads(None, env={}, cores=2, load=0.2)[0] == 2  # a quiet one: every core
    assert choose_threads(None, env={}, default=1, cores=2, load=0.0)[0] == 1  # a timing tool's default
    with pytest.raises(ValueError, match='--threads must be >= 1'):
        choose_threads(0, env={})


def test_configure_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        assert configure_cpu_threads(1, device='cpu') == 1 == torch.get_num_threads()
        torch.set_num_threads(2)
        assert configure_cpu_threads(None, device='cuda:0') == 2  # GPU run without --threads: untouched
    finally:
        torch.set_num_threads(before)
