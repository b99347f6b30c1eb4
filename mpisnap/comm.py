"""The communicator layer. Every distributed function takes ``comm`` first; one process is a
communicator of size 1 (:class:`SerialComm`), not a separate code path. ``import mpisnap`` never
imports mpi4py: :func:`world` does, when the CLI asks for it."""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["SerialComm", "world"]


class SerialComm:
    """The subset of the mpi4py communicator API mpisnap uses, for one process."""

    rank = 0
    size = 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def allreduce(self, obj: Any, op: Callable | None = None) -> Any:
        return obj

    def allgather(self, obj: Any) -> list:
        return [obj]

    def gather(self, obj: Any, root: int = 0) -> list:
        return [obj]

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def Barrier(self) -> None:
        return None

    barrier = Barrier

    def Abort(self, code: int = 1) -> None:
        raise SystemExit(code)


def world():
    """``MPI.COMM_WORLD`` when running under more than one MPI process, else a SerialComm."""
    import os

    launched = any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                                             "PMIX_RANK", "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD"))
    if not launched:
        return SerialComm()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else SerialComm()
