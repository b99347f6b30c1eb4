"""The communicator layer. Every distributed function takes ``comm`` first; one process is a
communicator of size 1 (:class:`SerialComm`), not a separate code path. ``import mpisnap`` never
imports mpi4py: :func:`world` does, when the CLI asks for it."""
from __future__ import annotations

from typing import Any, Callable

from .errors import CollectiveError, CollectiveInternalError, is_user_error, one_line

__all__ = ["SerialComm", "world", "agree", "gather_dict"]


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


def gather_dict(comm, local: dict) -> dict:
    """The union of every rank's ``local`` dict (collective; keys are expected to be disjoint,
    e.g. the indices of each rank's own configurations)."""
    out: dict = {}
    for part in comm.allgather(local):
        out.update(part)
    return out


def agree(comm, fn, *args, **kwargs):
    """Run ``fn`` on every rank; if it raises on any rank, every rank raises the error of the
    lowest failing rank (a user error stays a user error), so no rank waits forever in the next
    collective. ``fn`` must not itself call collectives (a failing rank would skip them and the
    others would pair theirs with this function's exchange). With one process the original
    exception propagates unchanged."""
    err, out = None, None
    try:
        out = fn(*args, **kwargs)
    except (ValueError, OSError) as exc:
        err = exc
    except Exception as exc:  # a bug: still tell the other ranks, then re-raise here
        err = exc
    if comm.size == 1:
        if err is not None:
            raise err
        return out
    msgs = comm.allgather(None if err is None else (is_user_error(err), one_line(err)))
    bad = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if bad:  # the same exception type and message on every rank (the failing one: from its own)
        rank, (user, msg) = bad[0]
        cause = err if rank == comm.rank else None
        if user:
            raise CollectiveError(f"rank {rank}: {msg}") from cause
        raise CollectiveInternalError(f"rank {rank}: {msg}") from cause
    return out
