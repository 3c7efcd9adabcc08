"""The BLAS PyTorch calls on Debian: libblas.so.3, which libopenblas0-pthread provides. OpenBLAS's own
pthreads on top of torch's OpenMP threads oversubscribe the cores: every GEMM then waits for threads
that are busy elsewhere. On this 2-core machine a training step of edgemoe.train takes 4.7 s with
both, 1.9 s with OpenBLAS on one thread, and the PyTorch ViT-S forward 4.3 s against 3.0 s. Training,
evaluation of edgemoe.reference and the benchmark's PyTorch peer run inside single_threaded_blas."""
from __future__ import annotations

import ctypes
import functools
import os
from contextlib import contextmanager


@functools.lru_cache(maxsize=None)
def _openblas():
    """The OpenBLAS torch has loaded as libblas.so.3, or None (another BLAS, or a torch that bundles its
    own: RTLD_NOLOAD finds the library only if the process has it already, never a second copy)."""
    import torch  # noqa: F401  (torch's libraries, libblas.so.3 among them, are loaded first)

    try:
        lib = ctypes.CDLL("libblas.so.3", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return None
    ok = hasattr(lib, "openblas_set_num_threads") and hasattr(lib, "openblas_get_num_threads")
    return lib if ok else None


@contextmanager
def single_threaded_blas():
    """OpenBLAS on one thread inside the block (torch keeps its own threads); restored after."""
    lib = _openblas()
    if lib is None:
        yield
        return
    before = lib.openblas_get_num_threads()
    lib.openblas_set_num_threads(1)
    try:
        yield
    finally:
        lib.openblas_set_num_threads(before)
