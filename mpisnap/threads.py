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

__all__ = ["threads_per_rank", "limited", "pool_sizes"]


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


@contextlib.contextmanager
def limited(threads: int) -> Iterator[dict[str, int]]:
    """Limit every loaded thread pool (BLAS, OpenMP, PyTorch's if imported) to ``threads`` for
    the block; yields the pool sizes in effect. Restores the previous sizes afterwards."""
    import sys

    import scipy.linalg  # noqa: F401  (load SciPy's BLAS too, so that it is limited as well)
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield pool_sizes()
        finally:
            if torch is not None:
                torch.set_num_threads(torch_before)
