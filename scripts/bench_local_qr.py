#!/usr/bin/env python
"""The local QR of TSQR: chunks stacked under the running R (``mpisnap.tsqr``, now) against one
``dgeqrf`` of the whole weighted block, on an InP-sized block (367,900 x 480 random numbers plus
the truth column), 1 and 2 BLAS threads, runs alternating; also the pipeline's pattern (blocks of
18,395 rows handed to ``StreamingR.add``). Prints wall seconds per run and the medians.

    python scripts/bench_local_qr.py [--rows 367900] [--cols 480] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import mpisnap.tsqr as T


def one_block(A, b, w):
    """The previous local QR: the whole weighted block in Fortran order, one dgeqrf."""
    block = np.empty((A.shape[0], A.shape[1] + 1), order="F")
    T._fill(block, A, b, w)
    return T._fix_signs(T._geqrf_r(block))


def pipeline_blocks(A, b, w, rows=18395):
    acc = T.StreamingR(A.shape[1])
    for s in range(0, A.shape[0], rows):
        acc.add(A[s:s + rows], b[s:s + rows], w[s:s + rows])
    return acc.R


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=367900)
    ap.add_argument("--cols", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    A = rng.standard_normal((args.rows, args.cols))
    b = rng.standard_normal(args.rows)
    w = rng.uniform(0.5, 2.0, args.rows)
    variants = {"chunks (local_r)": lambda: T.local_r(A, b, w),
                "one block": lambda: one_block(A, b, w),
                "pipeline blocks": lambda: pipeline_blocks(A, b, w)}
    times = {(n, v): [] for n in (1, 2) for v in variants}
    for _ in range(args.repeats):
        for n in (1, 2):
            with threadpool_limits(n):
                for name, fn in variants.items():
                    t = time.perf_counter()
                    fn()
                    times[n, name].append(time.perf_counter() - t)
    print(f"{args.rows} x {args.cols + 1}, medians of {args.repeats}")
    print("| BLAS threads | variant | seconds |\n|---:|---|---:|")
    for (n, name), ts in times.items():
        print(f"| {n} | {name} | {statistics.median(ts):.2f} |")


if __name__ == "__main__":
    main()
