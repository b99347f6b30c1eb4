#!/usr/bin/env python
"""Descriptor-stage benchmark: mpisnap (1 and 2 OpenMP threads) against LAMMPS `compute snap`.

Full design-matrix build (B + force rows + virial rows) on bcc Ta (lattice 3.316 Å, Gaussian
displacements 0.05 Å, Ta settings: rcutfac 4.67637, rfac0 0.99363, radelem 0.5, wj 1), 2,000 and
16,000 atoms, twojmax 6, 8 and 8 with quadraticflag. Every figure is a median over --repeats runs
measured in this one process, so the ratios compare like with like.

    python scripts/bench_descriptors.py [--sizes 2000 16000] [--repeats 3] [--markdown]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mpisnap import Descriptor
from mpisnap import _core
from mpisnap.testing import structures as S
from mpisnap.testing.lammps import compute_snap, lammps_version

SETTINGS = [("twojmax 6", 6, 0), ("twojmax 8", 8, 0), ("twojmax 8 quadratic", 8, 1)]


def structure(natoms: int):
    n = round((natoms / 2) ** (1 / 3))
    assert 2 * n ** 3 == natoms, "natoms must be 2 n^3"
    return S.bcc_supercell((n, n, n), a=3.316, displacement=0.05, seed=2024)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 16000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lammps-repeats", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    rows = []
    print(f"# kernel {_core.kernel_isa()}, LAMMPS {lammps_version()}", flush=True)
    for natoms in args.sizes:
        s = structure(natoms)
        for label, twojmax, quad in SETTINGS:
            d = Descriptor(type=["Ta"], twojmax=twojmax, rcutfac=4.67637, rfac0=0.99363,
                           radelem=0.5, wj=1.0, bzeroflag=1, quadraticflag=quad)
            d.compute(**s.kwargs(), threads=2)  # warm-up (page faults, thread pool)
            t1 = median_time(lambda: d.compute(**s.kwargs(), threads=1), args.repeats)
            t2 = median_time(lambda: d.compute(**s.kwargs(), threads=2), args.repeats)
            ref = compute_snap(s.positions, s.cell, s.pbc, s.types + 1, twojmax=twojmax,
                               rcutfac=4.67637, rfac0=0.99363, radelem=[0.5], wj=[1.0],
                               bzeroflag=1, quadraticflag=quad,
                               timing_repeats=args.lammps_repeats)
            tl = ref["seconds"]
            ours = d.compute(**s.kwargs(), threads=2)
            err = np.abs(ours.force_rows - ref["force_rows"]).max() / np.abs(ref["force_rows"]).max()
            row = dict(natoms=natoms, setting=label, lammps=natoms / tl, one=natoms / t1,
                       two=natoms / t2, r1=tl / t1, r2=tl / t2, scaling=t1 / t2, err=err)
            rows.append(row)
            print(f"{natoms:6d} {label:22s} LAMMPS {row['lammps']:8.0f} atoms/s | mpisnap 1 thread "
                  f"{row['one']:8.0f} ({row['r1']:.2f}x) | 2 threads {row['two']:8.0f} "
                  f"({row['r2']:.2f}x, {row['scaling']:.2f}x over 1 thread) | force rows vs LAMMPS "
                  f"{err:.1e}", flush=True)
    if args.markdown:
        print("\n| atoms | setting | LAMMPS atoms/s (1 proc) | mpisnap 1 thread | ratio | "
              "mpisnap 2 threads | ratio | 2 vs 1 thread |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['natoms']} | {r['setting']} | {r['lammps']:.0f} | {r['one']:.0f} | "
                  f"{r['r1']:.2f}x | {r['two']:.0f} | {r['r2']:.2f}x | {r['scaling']:.2f}x |")


if __name__ == "__main__":
    main()
