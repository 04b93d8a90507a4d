"""A time limit for a block of Python (the sweeps give each config or architecture a bounded time)."""
import signal
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def time_limit(seconds: int, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``error()`` inside the block when it runs longer than ``seconds``. SIGALRM: main thread only, and
    a C call that never returns to Python (a long kernel) is interrupted only when it does."""

    def expire(signum, frame):
        raise error()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
