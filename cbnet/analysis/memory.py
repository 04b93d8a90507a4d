"""Peak memory of one step: CUDA's allocator statistics, or on CPU the process' peak resident set size.

On CPU the increase of the peak RSS (VmHWM) over the RSS just before the step is the step's memory
(activations, gradients, temporaries), provided that freed tensors leave the RSS (glibc's mmap threshold
fixed through ``MALLOC_MMAP_THRESHOLD_`` when the process starts, see :func:`cpu_measurement_env`), the heap
is trimmed and VmHWM is reset right before the step (:func:`reset_cpu_peak`). Measure in a fresh process so
that earlier work cannot mask the peak.
"""
import ctypes
import gc
import os
import resource
from typing import Dict

import torch

MMAP_THRESHOLD = 65536
GIB = 2**30


def cpu_measurement_env() -> Dict[str, str]:
    """The environment of a process whose CPU peak memory is to be measured."""
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))


def cpu_method() -> str:
    return f'VmHWM - RSS before the step (fresh process, MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD})'


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """The process' peak resident set size since start or since the last :func:`reset_cpu_peak`."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('VmHWM not found in /proc/self/status (Linux only)')


def reset_cpu_peak() -> int:
    """Free what can be freed, reset the peak RSS to the current RSS and return it."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM (Linux >= 4.0)
    return rss_bytes()


def reset_peak(device: str) -> int:
    """Reset the peak statistic of ``device``; returns the memory held now (bytes)."""
    if device.startswith('cuda'):
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return reset_cpu_peak()


def peak_since_reset(device: str) -> int:
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return peak_rss_bytes()
