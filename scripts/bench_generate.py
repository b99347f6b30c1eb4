#!/usr/bin/env python
"""Benchmark of ``mpisnap generate`` (EMT copper).

1. Speed: configurations generated per second, 1 and 2 MPI ranks (one thread each), on the
   same input (no oracle), timed in the same run; repeated, medians.
2. Transferability at equal label budget N: a linear SNAP (twojmax 8, same weights and solver)
   fitted to N configurations of each training set — generated (``iterations`` outer
   iterations), the random initial structures alone (``iterations = 0``), N MD snapshots and N
   randomly displaced crystals — scored on the EMT test suite of
   :mod:`mpisnap.testing.emt_suite` (per-group test RMSE; the worst group counts). Several seeds,
   medians.

    python scripts/bench_generate.py [--n 20 40] [--seeds 3] [--repeat 3] [--skip-speed]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mpisnap
from mpisnap.testing import emt_suite

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
BISPECTRUM = {"type": "Cu", "twojmax": 6, "rcutfac": 4.8, "radelem": 0.5}


def generate_section(n: int, iterations: int, seed: int, oracle: bool = True) -> dict:
    g = {"natoms": "4 16", "volume_per_atom": "8 16", "max_strain": 0.1, "nconfigs": n,
         "min_distance": 2.1, "iterations": iterations, "seed": seed}
    if oracle:
        g["oracle"] = "ase.calculators.emt:EMT"
    return g


def speed(nconfigs: int, iterations: int, repeat: int) -> None:
    """Wall time of the whole command and CPU time (user + sys, summed over ranks, from GNU
    time): CPU time hardly depends on what else the machine runs, wall time does."""
    import re

    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "gen.in"
        text = "[BISPECTRUM]\n" + "".join(f"{k} = {v}\n" for k, v in BISPECTRUM.items())
        text += "\n[GENERATE]\n" + "".join(
            f"{k} = {v}\n" for k, v in generate_section(nconfigs, iterations, 1, False).items())
        inp.write_text(text)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for _ in range(repeat):
            for nranks in (1, 2):
                cmd = [MPIEXEC, "-n", str(nranks), "/usr/bin/time", "-f", "CPU %U %S",
                       sys.executable, "-m", "mpisnap", "generate", str(inp), "--output-dir",
                       str(Path(tmp) / f"out{nranks}"), "--threads", "1", "-q"]
                t0 = time.perf_counter()
                p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
                if p.returncode:
                    raise SystemExit(p.stderr)
                cpu = sum(float(u) + float(s_) for u, s_ in
                          re.findall(r"CPU ([\d.]+) ([\d.]+)", p.stderr))
                times[nranks].append((time.perf_counter() - t0, cpu))
    print(f"\n## speed: {nconfigs} configurations, {iterations} outer iterations, no oracle "
          f"(whole command; median of {repeat})")
    print("| ranks | wall (s) | configurations/s | CPU (s, all ranks) | configurations per "
          "CPU-second | configuration-iterations per CPU-second |")
    print("|---|---|---|---|---|---|")
    for nranks, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        cpu = statistics.median(t[1] for t in ts)
        print(f"| {nranks} | {wall:.1f} | {nconfigs / wall:.2f} | {cpu:.1f} | "
              f"{nconfigs / cpu:.2f} | {nconfigs * iterations / cpu:.2f} |")
    w1 = statistics.median(t[0] for t in times[1])
    w2 = statistics.median(t[0] for t in times[2])
    print(f"2-rank wall-time speed-up: {w1 / w2:.2f}")


def transfer(ns, seeds: int, iterations: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "JSON"
        t0 = time.perf_counter()
        for group, structures in emt_suite.suite(per_group=3, seed=0).items():
            emt_suite.write_group(data / group, structures)
        print(f"\n(suite: {time.perf_counter() - t0:.1f} s)")
        rows: dict = {}
        per_group: dict = {}
        count = 0
        for n in ns:
            for seed in range(1, seeds + 1):
                sets = {}
                t0 = time.perf_counter()
                gen = mpisnap.generate({"BISPECTRUM": BISPECTRUM,
                                        "GENERATE": generate_section(n, iterations, seed)},
                                       threads=1)
                t_gen = time.perf_counter() - t0
                sets["generated"] = (gen.structures, gen.labels)
                rnd = mpisnap.generate({"BISPECTRUM": BISPECTRUM,
                                        "GENERATE": generate_section(n, 0, seed)}, threads=1)
                sets["random (iterations = 0)"] = (rnd.structures, rnd.labels)
                sets["MD snapshots"] = (emt_suite.md_snapshots(n, (4, 16), seed=seed), None)
                sets["displaced crystals"] = (emt_suite.displaced(n, (4, 16), seed=seed), None)
                for name, (structures, labels) in sets.items():
                    count += 1
                    folder = f"Train{count:03d}"
                    emt_suite.write_group(data / folder, structures, labels)
                    sc = emt_suite.fit_and_score(data, folder, twojmax=8)
                    we = max(v["Energy"] for v in sc.values())
                    wf = max(v["Force"] for v in sc.values())
                    rows.setdefault((n, name), []).append((we, wf))
                    per_group.setdefault((n, name), []).append(sc)
                print(f"N={n} seed={seed}: generated in {t_gen:.1f} s, KL "
                      f"{gen.history[0]['kl']:.2f} -> {gen.history[-1]['kl']:.2f}")
        print(f"\n## transferability: worst-group test RMSE on the EMT suite, median of {seeds} "
              "seeds (linear SNAP, twojmax 8, SVD, eweight 10, fweight 1)")
        print("| N | training set | worst energy (meV/atom) | worst force (eV/Å) |")
        print("|---|---|---|---|")
        for (n, name), vals in rows.items():
            e = statistics.median(v[0] for v in vals) * 1000
            f = statistics.median(v[1] for v in vals)
            print(f"| {n} | {name} | {e:.0f} | {f:.3f} |")
        groups = emt_suite.SUITE_GROUPS
        print("\nper group, force RMSE (eV/Å), median over seeds:")
        print("| N | training set | " + " | ".join(groups) + " |")
        print("|---|---|" + "---|" * len(groups))
        for (n, name), scs in per_group.items():
            cells = [f"{statistics.median(s[g]['Force'] for s in scs):.3f}" for g in groups]
            print(f"| {n} | {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20, 40])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--speed-configs", type=int, default=40)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-transfer", action="store_true")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.skip_speed:
        speed(args.speed_configs, args.iterations, args.repeat)
    if not args.skip_transfer:
        transfer(args.n, args.seeds, args.iterations)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
