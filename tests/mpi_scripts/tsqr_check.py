"""Run under ``mpiexec -n N python tsqr_check.py``: distributed TSQR checks on N ranks.

Every rank holds a slice of one global least-squares problem (one rank with fewer rows than
columns, one with none), runs :func:`mpisnap.tsqr.tsqr` and the SVD solver, and checks the result
against the serial ``numpy.linalg.lstsq`` and R against LAPACK's (``scipy.linalg.qr``, up to row
signs); rank 0 checks that every rank holds bit-identical R, Qᵀb
and coefficients. Then the streaming path and the error path (bad input on one rank raises on every
rank). Each rank prints one line per phase (``PHASE rank r ...``) in a single write.

Any failure calls ``comm.Abort(1)`` so the other ranks cannot hang in a collective. With
``TSQR_CHECK_FAIL_RANK=r`` rank r fails an assertion on purpose (to test that net).
"""
import hashlib
import os
import sys
import traceback

import numpy as np
from mpi4py import MPI


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    return h.hexdigest()[:16]


def relerr(x, y):
    return float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300))


def main(comm):
    from mpisnap.comm import SerialComm
    from mpisnap.plugins.solvers import solve_svd
    from mpisnap.tsqr import StreamingR, TsqrError, tsqr

    rank, size = comm.Get_rank(), comm.Get_size()
    if os.environ.get("TSQR_CHECK_FAIL_RANK") == str(rank):
        assert False, f"deliberate failure on rank {rank}"

    rng = np.random.default_rng(2024)
    m, n = 157, 11
    A = rng.normal(size=(m, n))
    b = rng.normal(size=m)
    w = rng.uniform(0.3, 2.0, size=m)
    # rank 0: 3 rows (< n+1), rank 1: no rows, the others share the rest
    cuts = [0, 3, 3] + [int(c) for c in np.linspace(3, m, size - 1)[1:]] if size > 2 else [0, 3, m]
    cuts = cuts[:size] + [m]
    s, e = cuts[rank], cuts[rank + 1]

    # phase 1: one-shot TSQR
    R, qb, rnorm2 = tsqr(comm, A[s:e], b[s:e], w[s:e])
    x = solve_svd(R, qb).coefficients
    x0 = np.linalg.lstsq(A * w[:, None], b * w, rcond=1e-13)[0]
    assert relerr(x, x0) <= 1e-10, relerr(x, x0)
    R1, qb1, r21 = tsqr(SerialComm(), A, b, w)
    assert relerr(R, R1) <= 1e-10 and relerr(qb, qb1) <= 1e-10
    assert abs(rnorm2 - r21) <= 1e-10 * r21
    # LAPACK's R of the whole weighted system [wA | wb] (dgeqrf), up to the signs of its rows
    from scipy.linalg import qr
    RL = qr(np.column_stack([A * w[:, None], b * w]), mode="r")[0][:n + 1]
    RL *= np.where(np.diagonal(RL) < 0, -1.0, 1.0)[:, None]
    assert relerr(R, RL[:n, :n]) <= 1e-10 and relerr(qb, RL[:n, n]) <= 1e-10
    assert abs(rnorm2 - RL[n, n] ** 2) <= 1e-10 * r21
    h = digest(R, qb, [rnorm2], x)
    hashes = comm.gather(h, root=0)
    if rank == 0:
        assert len(set(hashes)) == 1, hashes
    say(f"TSQR rank {rank} {h} relerr={relerr(x, x0):.2e}")

    # phase 2: streaming in small blocks
    acc = StreamingR(n, max_block_rows=4)
    for lo in range(s, e, 5):
        hi = min(e, lo + 5)
        acc.add(A[lo:hi], b[lo:hi], w[lo:hi])
    R2, qb2, r22 = acc.finalize(comm)
    assert acc.total_rows == m
    assert relerr(R2, R) <= 1e-12 and relerr(qb2, qb) <= 1e-12
    say(f"STREAM rank {rank} {digest(R2, qb2)}")

    # phase 3: bad input on the last rank raises the same error on every rank, no hang
    bad = A[s:e, :n - 1] if rank == size - 1 else A[s:e]
    try:
        tsqr(comm, bad, b[s:e], w[s:e])
    except TsqrError as exc:
        assert f"rank {size - 1}: {n - 1} columns" in str(exc), str(exc)
        say(f"ERRORPATH rank {rank} ok")
    else:
        if size > 1:
            raise AssertionError("bad input on one rank did not raise")
        say(f"ERRORPATH rank {rank} ok")

    comm.Barrier()
    say(f"DONE rank {rank}")


if __name__ == "__main__":
    comm = MPI.COMM_WORLD
    try:
        main(comm)
    except BaseException:  # noqa: BLE001 - any failure must end every rank
        sys.stderr.write(f"rank {comm.Get_rank()} failed:\n{traceback.format_exc()}")
        sys.stderr.flush()
        comm.Abort(1)
