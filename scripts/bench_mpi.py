#!/usr/bin/env python
"""MPI benchmark: 1 vs 2 ranks (one OpenMP thread each) on the bundled example and the InP data,
and peak memory of streaming mode as the training set grows (1x, 4x, 16x replicated).

Each fit runs as `mpiexec -n N python -m mpisnap fit ...` under GNU time; stage timings come from
the run log (rank 0's), peak memory per rank is the maximum resident set of the processes.

    python scripts/bench_mpi.py [--skip-inp] [--replicas 1 4 16]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"
INP = ROOT.parent / "shared" / "data" / "InP_JPCA2020" / "InP-example.in"
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def run(nranks: int, inp: Path, out: Path, extra=(), omp_env: bool = True) -> dict:
    """Wall time, peak RSS (max over ranks, MiB) and rank 0's stage timings of one fit
    (``OMP_NUM_THREADS=1`` in the environment unless ``omp_env`` is false)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp_env:
        env["OMP_NUM_THREADS"] = "1"
    cmd = [MPIEXEC, "-n", str(nranks), "/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m",
           "mpisnap", "fit", str(inp), "--output-dir", str(out), "-q", *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stderr)
    rss = max(int(x) for x in re.findall(r"MAXRSS (\d+)", p.stderr)) / 1024
    log = next(out.glob("*.log")).read_text()
    stages = {m.group(1).strip(): float(m.group(2))
              for m in re.finditer(r"^  (\S[\w ]*?)\s+([\d.]+)$", log, re.M)}
    return {"wall": wall, "rss": rss, **stages}


def replicate(src_in: Path, k: int, dest: Path) -> Path:
    """A copy of the example whose every group holds each configuration k times."""
    shutil.copytree(src_in.parent, dest)
    for f in list((dest / "JSON").rglob("*.json")):
        for r in range(1, k):
            shutil.copy(f, f.with_name(f"{f.stem}_r{r:02d}.json"))
    return dest / src_in.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-inp", action="store_true")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--repeats", type=int, default=5,
                    help="runs of the (short) example fit; medians are reported")
    ap.add_argument("--skip-streaming", action="store_true")
    ap.add_argument("--threads-only", action="store_true",
                    help="only the thread-pool check: solve time of 1 and 2 ranks with --threads 1 "
                         "and of 2 ranks with no setting at all (no OMP_NUM_THREADS either)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mpisnap-bench-"))
    try:
        if args.threads_only:
            inp = EXAMPLE if args.skip_inp else INP
            print(f"thread pools on {inp.name}\n| run | descriptors s | solve s | wall s |")
            print("|---|---:|---:|---:|")
            for label, n, extra in (("1 rank, --threads 1", 1, ["--threads", "1"]),
                                    ("2 ranks, --threads 1", 2, ["--threads", "1"]),
                                    ("2 ranks, default", 2, [])):
                runs = [run(n, inp, tmp / f"t{n}{len(extra)}_{k}", extra, omp_env=False)
                        for k in range(args.repeats if inp == EXAMPLE else 1)]
                r = {key: statistics.median(x[key] for x in runs) for key in runs[0]}
                print(f"| {label} | {r['descriptors']:.2f} | {r['solve']:.2f} | {r['wall']:.1f} |",
                      flush=True)
            return
        print("| data | ranks | wall s | descriptors s | solve s | peak RSS/rank MiB | "
              "descriptor speed-up | fit speed-up |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        cases = [("Cu EMT example", EXAMPLE)] + ([] if args.skip_inp else [("InP (1,894 configs)", INP)])
        for name, inp in cases:
            reps = args.repeats if inp == EXAMPLE else 1
            res = {}
            for n in (1, 2):
                runs = [run(n, inp, tmp / f"{name[:3]}{n}_{k}") for k in range(reps)]
                res[n] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            for n in (1, 2):
                r = res[n]
                sd = res[1]["descriptors"] / r["descriptors"]
                sf = res[1]["wall"] / r["wall"]
                print(f"| {name} | {n} | {r['wall']:.1f} | {r['descriptors']:.1f} | {r['solve']:.2f} "
                      f"| {r['rss']:.0f} | {sd:.2f}x | {sf:.2f}x |", flush=True)
        if args.skip_streaming:
            return
        print("\n| training set | streaming peak RSS MiB | in-memory peak RSS MiB | rows |")
        print("|---:|---:|---:|---:|")
        base = None
        for k in args.replicas:
            inp = replicate(EXAMPLE, k, tmp / f"rep{k}")
            s = run(1, inp, tmp / f"s{k}", ["--set", "MEMORY.stream=1"])
            m = run(1, inp, tmp / f"m{k}")
            base = base or s["rss"]
            rows = 15607 * k
            print(f"| {k}x | {s['rss']:.0f} ({100 * (s['rss'] / base - 1):+.1f}%) | {m['rss']:.0f} "
                  f"| ~{rows} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
