"""Thread pools: one per-rank number controls every pool a run uses.

A run has up to three thread pools: the core's OpenMP threads (descriptors), the BLAS of NumPy and
SciPy (QR, SVD and the matrix products of the solve and the evaluation) and, with the ``nn`` model
form, PyTorch's intra-op pool. Left alone, OpenBLAS starts one thread per core in *every* MPI rank,
so P ranks on a P-core node run P² BLAS threads — measured here as a 50× slower solve. mpisnap
therefore picks one number per rank (:func:`threads_per_rank`) and applies it to all pools for the
duration of a run (:func:`limited`).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["threads_per_rank", "limited", "pool_sizes", "numpy_blas_threads", "SMALL_QR"]


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _ranks_on_node(comm) -> int:
    if comm.size == 1:
        return 1
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_size()
    finally:
        node.Free()


def _env_threads() -> int | None:
    """The first entry of ``OMP_NUM_THREADS`` when it is a positive integer, else None."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def threads_per_rank(comm, threads: int | None = None) -> int:
    """Threads for each pool of this rank: ``threads`` if given (``--threads``), else
    ``OMP_NUM_THREADS``, else the node's cores divided by the node's ranks (at least 1).
    Collective when ``threads`` is None, the environment does not set it and ``comm.size > 1``."""
    if threads is not None:
        if isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        return int(threads)
    env = _env_threads()
    if env is not None:
        return env
    return max(1, _cores() // _ranks_on_node(comm))


def pool_sizes() -> dict[str, int]:
    """Current size of each thread pool this process has loaded, by kind: ``blas`` and
    ``openmp`` (from threadpoolctl), and ``torch`` once PyTorch is imported."""
    from threadpoolctl import threadpool_info

    sizes: dict[str, int] = {}
    for pool in threadpool_info():
        kind = pool.get("user_api")
        sizes[kind] = max(sizes.get(kind, 0), int(pool.get("num_threads") or 0))
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        sizes["torch"] = int(torch.get_num_threads())
    return sizes


#: variables that set the thread count of a BLAS library when it loads (OpenBLAS, MKL, BLIS)
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@contextlib.contextmanager
def limited(threads: int) -> Iterator[dict[str, int]]:
    """Limit every thread pool (BLAS, OpenMP, PyTorch's if imported) to ``threads`` for the
    block; yields the pool sizes in effect. Restores the previous sizes afterwards.

    Pools loaded before the block are limited through threadpoolctl. A BLAS library loaded during
    the block (SciPy's, imported only by code that needs it) starts with ``threads`` threads: the
    block sets ``OPENBLAS_NUM_THREADS`` (and MKL's, BLIS's), which such a library reads when it
    loads; afterwards it is set to the size its kind of pool had before the block, like the rest.
    """
    import sys

    from threadpoolctl import ThreadpoolController

    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    env_before = {k: os.environ.get(k) for k in _BLAS_ENV}
    controller = ThreadpoolController()
    known = {lib.filepath for lib in controller.lib_controllers}
    sizes_before: dict[str, int] = {}
    for lib in controller.lib_controllers:
        sizes_before[lib.user_api] = max(sizes_before.get(lib.user_api, 0),
                                         int(lib.num_threads or 0))
    with controller.limit(limits=threads):
        for k in _BLAS_ENV:
            os.environ[k] = str(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield pool_sizes()
        finally:
            for k, v in env_before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if torch is not None:
                torch.set_num_threads(torch_before)
            for lib in ThreadpoolController().lib_controllers:  # loaded during the block
                size = sizes_before.get(lib.user_api)
                if lib.filepath not in known and size:
                    lib.set_num_threads(size)


#: below this many ``m n^2`` (rows times columns squared) a QR runs on one BLAS thread: a skinny
#: factorisation is a chain of matrix-vector products, one thread synchronisation each, which a
#: second thread only slows down (15,135 x 32: 0.03 s on 1 thread, 0.6 s on 2 of a loaded
#: machine's cores). The choice depends on the shape only, so a result does not depend on
#: ``--threads`` below it.
SMALL_QR = 1 << 28

_numpy_blas = None


@contextlib.contextmanager
def numpy_blas_threads(threads: int) -> Iterator[None]:
    """NumPy's own BLAS (the one behind ``numpy.linalg``) at ``threads`` threads for the block,
    then back to its previous size. Cheap (a cached controller, no library scan per call)."""
    global _numpy_blas
    if _numpy_blas is None:
        from threadpoolctl import ThreadpoolController

        import numpy

        root = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
        ctl = ThreadpoolController()
        _numpy_blas = [lib for lib in ctl.lib_controllers if lib.user_api == "blas"
                       and os.path.abspath(lib.filepath).startswith(
                           (os.path.join(root, "numpy"), os.path.join(root, "numpy.libs")))]
        if not _numpy_blas:  # a system BLAS: limit whatever BLAS is loaded
            _numpy_blas = [lib for lib in ctl.lib_controllers if lib.user_api == "blas"]
    before = [lib.get_num_threads() for lib in _numpy_blas]
    for lib in _numpy_blas:
        lib.set_num_threads(threads)
    try:
        yield
    finally:
        for lib, n in zip(_numpy_blas, before):
            lib.set_num_threads(n)
