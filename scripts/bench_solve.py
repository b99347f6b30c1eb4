#!/usr/bin/env python
"""Solve benchmark: the distributed TSQR + SVD solve of a Ta_Quadratic-sized design matrix
(15,213 x 1,595) against one LAPACK QR plus SVD of the same matrix on the same cores, on 1 and 2
ranks, in one run.

* **baselines** (one process, ``--cores`` BLAS threads): ``scipy.linalg.qr(M, mode="r")``
  (LAPACK ``dgeqrf`` on a Fortran copy of the weighted matrix ``M = [wA | wb]``), then either
  ``numpy.linalg.svd`` of its ``n x n`` triangle (``dgesdd``, singular vectors too: "QR + SVD")
  or ``numpy.linalg.lstsq`` of the triangle (``dgelsd``, the SVD solver's own call: "QR + SVD
  solve").
* **TSQR + SVD** (``mpiexec -n P``, ``--cores / P`` BLAS threads per rank, as ``mpisnap fit``
  sets them): each rank holds a contiguous slice of the rows and runs what ``solve_shard`` runs —
  ``StreamingR.add`` (weighting, ``dgeqrf``), ``StreamingR.finalize`` (the reduction over ranks:
  packed triangles, ``dtpqrt``) and the SVD solver plugin (``solve_svd``) — timed from a barrier
  to the last rank's end.

Runs alternate (baselines, TSQR on 1 rank, TSQR on 2 ranks, ...) so that the load of a shared
machine hits all alike; medians over --repeats runs; the ratios are TSQR / baseline. On an
oversubscribed machine a multi-threaded BLAS crawls (its threads wait for each other), so with
--cores > 1 the baselines also run on one thread, and the last column divides by the one-thread
QR + SVD time over the cores: the best the baseline could do on those cores.

The matrix: FitSNAP's Ta_Quadratic example data is not on this machine, so the rows are built
the same way from generated bcc Ta configurations (random strains and displacements, 2, 16 and
54 atoms): quadratic SNAP descriptors, 2J = 8 (55 linear + 1,540 quadratic = 1,595 columns), one
energy row, 3N force rows and 6 virial rows per configuration, FitSNAP-like row weights
(energy 100, force 1, virial 0.01), truncated to 15,213 rows. Cached in --cache.

    python scripts/bench_solve.py [--repeats 5] [--ranks 1 2] [--cores 2] [--profile]

``--profile`` adds single-thread CPU times of every piece (local QR, combine, message, SVD),
steady under load and what bounds the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROWS, COLS = 15213, 1595
HERE = Path(__file__).resolve()


def say(msg: str) -> None:
    print(msg, flush=True)


# -- the matrix -----------------------------------------------------------------------------------
def build_matrix(path: Path, seed: int = 0) -> None:
    from mpisnap import Descriptor

    rng = np.random.default_rng(seed)
    d = Descriptor(type=["Ta"], twojmax=8, rcutfac=4.67637, radelem=0.5, wj=1.0, bzeroflag=1,
                   quadraticflag=1)
    assert d.nvalues == COLS, d.nvalues
    rows, b, w = [], [], []
    nrows = 0
    while nrows < ROWS:
        n = rng.choice([1, 2, 3], p=[0.3, 0.6, 0.1])
        g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
        frac = np.concatenate([g, g + 0.5]) / n
        cell = 3.316 * n * (np.eye(3) + rng.normal(scale=0.03, size=(3, 3)))
        pos = frac @ cell + rng.normal(scale=0.1, size=frac.shape)
        r = d.compute(positions=pos, cell=cell, pbc=True, symbols=["Ta"] * len(pos))
        block = np.vstack([r.energy_row.reshape(1, -1), r.force_rows.reshape(len(pos) * 3, -1),
                           r.virial_rows.reshape(6, -1)])
        rows.append(block)
        b.append(rng.normal(size=len(block)))
        w.append(np.r_[100.0, np.ones(3 * len(pos)), np.full(6, 0.01)])
        nrows += len(block)
    A = np.vstack(rows)[:ROWS]
    np.savez(path, A=A, b=np.concatenate(b)[:ROWS], w=np.concatenate(w)[:ROWS])


# -- one timed run (a child process) --------------------------------------------------------------
def run_baseline(path: Path, threads: int, lstsq: bool = False) -> float:
    from scipy.linalg import qr
    from threadpoolctl import threadpool_limits

    z = np.load(path)
    M = np.column_stack([z["A"] * z["w"][:, None], z["b"] * z["w"]])  # C order, as rows are kept
    n = M.shape[1] - 1
    with threadpool_limits(threads):
        t0 = time.perf_counter()
        R = qr(M, mode="r", check_finite=False)[0]
        if lstsq:  # the SVD solver's own LAPACK call (dgelsd)
            np.linalg.lstsq(R[:n, :n], R[:n, n], rcond=1e-13)
        else:
            np.linalg.svd(R[:n, :n])
        return time.perf_counter() - t0


def run_tsqr(path: Path, threads: int) -> float | None:
    from mpi4py import MPI
    from threadpoolctl import threadpool_limits

    from mpisnap.plugins.solvers import solve_svd
    from mpisnap.tsqr import StreamingR

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    z = np.load(path)
    cuts = np.linspace(0, ROWS, size + 1).astype(int)
    s, e = cuts[rank], cuts[rank + 1]
    A, b, w = (np.ascontiguousarray(z[k][s:e]) for k in ("A", "b", "w"))
    with threadpool_limits(threads):
        comm.Barrier()
        t0 = time.perf_counter()
        acc = StreamingR(A.shape[1])
        acc.add(A, b, w)
        R, qb, rnorm2 = acc.finalize(comm)
        solve_svd(R, qb, None, nrows=acc.total_rows, rnorm2=rnorm2)
        t = time.perf_counter() - t0
    t = comm.reduce(t, op=MPI.MAX, root=0)
    return t if rank == 0 else None


def profile(path: Path, repeats: int) -> list[tuple[str, float]]:
    """Single-thread CPU seconds (best of `repeats`) of each piece of the solve: steady under
    the load of a shared machine, and what bounds the ratios."""
    import pickle

    from scipy.linalg import qr
    from threadpoolctl import threadpool_limits

    from mpisnap.tsqr import _geqrf_r, _pack, combine, local_r

    z = np.load(path)
    A, b, w = z["A"], z["b"], z["w"]
    n, h = A.shape[1], A.shape[0] // 2
    M = np.column_stack([A * w[:, None], b * w])

    def cpu(f):
        best = np.inf
        for _ in range(repeats):
            t0 = time.process_time()
            f()
            best = min(best, time.process_time() - t0)
        return best

    with threadpool_limits(1):
        R1, R2 = local_r(A[:h], b[:h], w[:h]), local_r(A[h:], b[h:], w[h:])
        R = combine(R1, R2)

        def stacked():
            S = np.empty((2 * (n + 1), n + 1), order="F")
            S[:n + 1], S[n + 1:] = R1, R2
            return _geqrf_r(S)

        return [
            ("scipy.linalg.qr(M, mode='r'), all rows", cpu(lambda: qr(M, mode="r",
                                                                       check_finite=False))),
            ("local QR (StreamingR.add), all rows", cpu(lambda: local_r(A, b, w))),
            ("local QR, half the rows (one of 2 ranks)", cpu(lambda: local_r(A[:h], b[:h],
                                                                             w[:h]))),
            ("combine two triangles: dtpqrt (now)", cpu(lambda: combine(R1, R2))),
            ("combine two triangles: dgeqrf of the stack (before)", cpu(stacked)),
            ("pack + pickle + unpickle a triangle (message)",
             cpu(lambda: pickle.loads(pickle.dumps(_pack(R1))))),
            ("numpy.linalg.svd of R, with vectors (dgesdd; before)",
             cpu(lambda: np.linalg.svd(R[:n, :n]))),
            ("numpy.linalg.lstsq of R (dgelsd; the SVD solver now)",
             cpu(lambda: np.linalg.lstsq(R[:n, :n], R[:n, n], rcond=1e-13))),
        ]


def child(args) -> None:
    path = Path(args.cache)
    if args.child == "tsqr":
        t = run_tsqr(path, args.threads)
    else:
        t = run_baseline(path, args.threads, lstsq=args.child == "lstsq")
    if t is not None:
        print(json.dumps({"seconds": t}), flush=True)


def launch(kind: str, cache: Path, ranks: int, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(HERE), "--child", kind, "--cache", str(cache), "--threads",
           str(threads)]
    if kind == "tsqr":
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cores", type=int, default=2, help="cores used by every variant")
    ap.add_argument("--cache", default="/tmp/mpisnap_bench_solve_ta_quadratic.npz")
    ap.add_argument("--profile", action="store_true",
                    help="also time each piece on one thread (CPU time)")
    ap.add_argument("--child", choices=["baseline", "lstsq", "tsqr"], help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    cache = Path(args.cache)
    if not cache.exists():
        t0 = time.perf_counter()
        build_matrix(cache)
        say(f"# built the matrix in {time.perf_counter() - t0:.1f} s -> {cache}")
    z = np.load(cache)
    say(f"# design matrix {z['A'].shape[0]:,} x {z['A'].shape[1]:,} (+ the truth column); "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.cores} cores "
        "per variant")
    C = args.cores
    svd = f"LAPACK QR + SVD (dgeqrf, dgesdd), {C} thread{'s' if C > 1 else ''}"
    lsd = f"LAPACK QR + SVD solve (dgeqrf, dgelsd), {C} thread{'s' if C > 1 else ''}"
    svd1, lsd1 = "LAPACK QR + SVD, 1 thread", "LAPACK QR + SVD solve, 1 thread"
    runs = [(svd, "baseline", 1, C), (lsd, "lstsq", 1, C)]
    if C > 1:  # a multi-threaded BLAS crawls on an oversubscribed machine: bound it from 1 thread
        runs += [(svd1, "baseline", 1, 1), (lsd1, "lstsq", 1, 1)]
    runs += [(f"TSQR + SVD solve, {P} rank{'s' if P > 1 else ''}", "tsqr", P, max(1, C // P))
             for P in args.ranks]
    times: dict[str, list[float]] = {}
    for r in range(args.repeats):
        for key, kind, P, threads in runs:
            times.setdefault(key, []).append(launch(kind, cache, P, threads))
        say(f"# run {r + 1}: " + "; ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    say("")
    head = (f"| {z['A'].shape[0]:,} x {z['A'].shape[1]:,}, {C} cores, median of {args.repeats} "
            "| seconds | vs QR + SVD | vs QR + SVD solve |")
    if C > 1:
        head += f" vs QR + SVD at perfect {C}-thread scaling (1 thread / {C}) |"
    say(head)
    say("|---|---:|---:|---:|" + ("---:|" if C > 1 else ""))
    for key, m in med.items():
        line = f"| {key} | {m:.2f} | {m / med[svd]:.2f}x | {m / med[lsd]:.2f}x |"
        if C > 1:
            line += f" {m / (med[svd1] / C):.2f}x |"
        say(line)
    if args.profile:
        say("")
        say("| piece (one thread, CPU seconds, best of 3) | seconds |")
        say("|---|---:|")
        for what, t in profile(cache, 3):
            say(f"| {what} | {t:.3f} |")


if __name__ == "__main__":
    main()
