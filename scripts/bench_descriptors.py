#!/usr/bin/env python
"""Descriptor-stage benchmark: mpisnap (1 and 2 OpenMP threads) against LAMMPS `compute snap`.

Full design-matrix build (B + force rows + virial rows) on bcc Ta (lattice 3.316 Å, Gaussian
displacements 0.05 Å, Ta settings: rcutfac 4.67637, rfac0 0.99363, radelem 0.5, wj 1), 2,000 and
16,000 atoms, twojmax 6, 8 and 8 with quadraticflag.

The runs are interleaved (each repeat runs LAMMPS, mpisnap on 1 thread and on 2 threads one after
the other) and each ratio is the median over repeats of that repeat's ratio, so that a shared,
busy machine slows both sides alike. LAMMPS is one process timed on `run 0` of a fresh instance
(set-up excluded). Besides wall time, the 1-thread comparison is also given in CPU time of this
process (`time.process_time`), which other processes on the machine do not inflate: LAMMPS and
mpisnap with one thread each use one core, so that is the per-core ratio. On a busy machine CPU
time still grows (caches and the memory bus are shared, and LAMMPS's larger working set suffers
more), so the 1-thread ratio of the best repeats (fastest LAMMPS CPU time over fastest mpisnap CPU
time, each the least disturbed run) is printed too; the figure to quote is the one nearest that.

    python scripts/bench_descriptors.py [--sizes 2000 16000] [--repeats 5] [--markdown]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from mpisnap import Descriptor
from mpisnap import _core
from mpisnap.lammps_bridge import (SKIN, box_and_atoms, box_frame, check_inputs, commands, fmt,
                                   lammps_version, neighbour_settings)
from mpisnap.testing import structures as S
from mpisnap.testing.lammps import compute_snap

SETTINGS = [("twojmax 6", 6, 0), ("twojmax 8", 8, 0), ("twojmax 8 quadratic", 8, 1)]
RCUTFAC, RFAC0, RADELEM, WJ = 4.67637, 0.99363, 0.5, 1.0


def structure(natoms: int):
    n = round((natoms / 2) ** (1 / 3))
    assert 2 * n ** 3 == natoms, "natoms must be 2 n^3"
    return S.bcc_supercell((n, n, n), a=3.316, displacement=0.05, seed=2024)


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of fn()."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def lammps_run(s, twojmax: int, quad: int) -> tuple[float, float]:
    """(wall, CPU) seconds of `run 0` with `compute snap` in a fresh LAMMPS instance."""
    pos, types, pbc, ntypes = check_inputs(s.positions, s.types + 1, s.pbc, None)
    cutoff = 2.0 * RADELEM * RCUTFAC + 1e-6
    lcell, xl, _ = box_frame(pos, s.cell, pbc, margin=cutoff + SKIN + 2.0)
    lmp = box_and_atoms(lcell, xl, types, ntypes, pbc)
    try:
        commands(lmp, [
            "mass * 1.0", f"pair_style zero {fmt(cutoff)}", "pair_coeff * *",
            *neighbour_settings(xl, lcell, pbc, cutoff),
            f"compute S all snap {fmt(RCUTFAC)} {fmt(RFAC0)} {twojmax} {fmt(RADELEM)} {fmt(WJ)} "
            f"rmin0 0 bzeroflag 1 quadraticflag {quad} switchflag 1 bikflag 1",
            "thermo_style custom step pe c_S[1][1]", "thermo 1"])
        return timed(lambda: commands(lmp, ["run 0"]))
    finally:
        lmp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 16000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    med = statistics.median
    rows = []
    print(f"# kernel {_core.kernel_isa()}, LAMMPS {lammps_version()}, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    for natoms in args.sizes:
        s = structure(natoms)
        for label, twojmax, quad in SETTINGS:
            d = Descriptor(type=["Ta"], twojmax=twojmax, rcutfac=RCUTFAC, rfac0=RFAC0,
                           radelem=RADELEM, wj=WJ, bzeroflag=1, quadraticflag=quad)
            d.compute(**s.kwargs(), threads=2)  # warm-up (page faults, thread pool)
            lm, one, two = [], [], []
            for _ in range(args.repeats):
                lm.append(lammps_run(s, twojmax, quad))
                one.append(timed(lambda: d.compute(**s.kwargs(), threads=1)))
                two.append(timed(lambda: d.compute(**s.kwargs(), threads=2)))
            ref = compute_snap(s.positions, s.cell, s.pbc, s.types + 1, twojmax=twojmax,
                               rcutfac=RCUTFAC, rfac0=RFAC0, radelem=[RADELEM], wj=[WJ],
                               bzeroflag=1, quadraticflag=quad)
            ours = d.compute(**s.kwargs(), threads=2)
            err = np.abs(ours.force_rows - ref["force_rows"]).max() / np.abs(ref["force_rows"]).max()
            row = dict(natoms=natoms, setting=label,
                       lammps=natoms / med(w for w, _ in lm), one=natoms / med(w for w, _ in one),
                       two=natoms / med(w for w, _ in two),
                       r1=med(a[0] / b[0] for a, b in zip(lm, one)),
                       r2=med(a[0] / b[0] for a, b in zip(lm, two)),
                       r1cpu=med(a[1] / b[1] for a, b in zip(lm, one)),
                       r1best=min(a[1] for a in lm) / min(b[1] for b in one),
                       scaling=med(a[0] / b[0] for a, b in zip(one, two)), err=err)
            rows.append(row)
            print(f"{natoms:6d} {label:22s} LAMMPS {row['lammps']:8.0f} atoms/s | mpisnap 1 thread "
                  f"{row['one']:8.0f} ({row['r1']:.2f}x wall, {row['r1cpu']:.2f}x CPU, best {row['r1best']:.2f}x) "
                  f"| 2 threads "
                  f"{row['two']:8.0f} ({row['r2']:.2f}x, {row['scaling']:.2f}x over 1 thread) | "
                  f"force rows vs LAMMPS {err:.1e}", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}", flush=True)
    if args.markdown:
        print("\n| atoms | setting | LAMMPS atoms/s (1 proc) | mpisnap 1 thread | ratio (wall) | "
              "ratio (CPU) | ratio (best CPU) | mpisnap 2 threads | ratio | 2 vs 1 thread |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['natoms']} | {r['setting']} | {r['lammps']:.0f} | {r['one']:.0f} | "
                  f"{r['r1']:.2f}x | {r['r1cpu']:.2f}x | {r['r1best']:.2f}x | {r['two']:.0f} | "
                  f"{r['r2']:.2f}x | {r['scaling']:.2f}x |")


if __name__ == "__main__":
    main()
