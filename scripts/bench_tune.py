#!/usr/bin/env python
"""Benchmark of ``mpisnap tune``: trials per second against the number of columns (1 and 2
ranks), time per trial against the size of the training set (the example replicated 1x and 16x),
and the end-to-end tune of the InP data (CV objective and test-split errors, input weights against
tuned weights).

    python scripts/bench_tune.py [--parts trials replicas inp] [--trials 40] [--inp-trials 150]
                                 [--balance pooled groups]

The blocks of each data set are built once (``mpisnap.tuning.driver.cross_validator``: rows and
compression, timed separately) and saved; each trial rate then comes from ``mpiexec -n N python
scripts/bench_tune.py --worker ...``, which loads them (``cross_validator(..., blocks=...)``) and
times a fixed number of trials at random points (a factor per group and kind within a decade of
the input's; and one factor per kind), spread over the ranks as the search spreads them (one
BLAS/OpenMP thread per rank).
The data sets: the Cu example (31 columns, 6 groups), the InP data without ChemSNAP at twojmax 8
(112 columns, 19 groups) and the InP data as published (ChemSNAP, 482 columns, 19 groups); InP is
given a seeded 80/20 train/test split in every group and the objective energy + force (its stress
weights are 1e-12).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"
INP = ROOT.parent / "shared" / "data" / "InP_JPCA2020" / "InP-example.in"
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def inp_overrides(chem: bool = True) -> list[str]:
    """The InP input with an 80/20 seeded split in every group (the published input fits every
    configuration) and, with ``chem`` false, plain SNAP at twojmax 8."""
    from mpisnap.pipeline import prepare

    s = prepare(str(INP), autoload=False).settings
    ov = [f"GROUPS.{g.name}=0.8 0.2 {g.eweight!r} {g.fweight!r} {g.vweight!r}" for g in s.groups]
    ov += ["GROUPS.random_sampling=1", "GROUPS.random_seed=1", "TUNE.objective=energy force"]
    if not chem:
        ov += ["BISPECTRUM.chemflag=0", "BISPECTRUM.bnormflag=0", "BISPECTRUM.twojmax=8 8",
               "BISPECTRUM.wselfallflag=0"]
    return ov


def replicate(k: int, dest: Path) -> Path:
    """The example with every configuration present k times (symbolic links)."""
    data = dest / "JSON"
    for g in sorted((EXAMPLE.parent / "JSON").iterdir()):
        (data / g.name).mkdir(parents=True)
        for f in sorted(g.iterdir()):
            for r in range(k):
                (data / g.name / f"{f.stem}_r{r:02d}{f.suffix}").symlink_to(f)
    inp = dest / "Cu_EMT.in"
    inp.write_text(EXAMPLE.read_text())
    return inp


def build(inp: Path, overrides: list[str], path: Path) -> dict:
    """The blocks of one input, built once on this process and saved for the rate workers."""
    import pickle

    from mpisnap.tuning.driver import cross_validator

    t0 = time.perf_counter()
    cv = cross_validator(str(inp), overrides=overrides, autoload=False)
    t = time.perf_counter() - t0
    with open(path, "wb") as fh:
        pickle.dump(cv.blocks, fh)
    return {"build_s": t, "ncols": cv.blocks.ncols, "tuned": cv.space.size,
            "rows": sum(c.nrows for c in cv.blocks.blocks.values()),
            "blocks": len(cv.blocks.blocks) + len(cv.blocks.unit),
            "mib": cv.blocks.nbytes() / 2**20}


def worker(args) -> None:
    """One rate measurement (run under mpiexec): load the blocks, then time trials at points
    with a factor per group and kind (the second stage of the search) and at points with one
    factor per kind (the first stage), spread over the ranks as the search spreads them."""
    import pickle

    import numpy as np

    from mpisnap.comm import world
    from mpisnap.tuning.driver import cross_validator
    from mpisnap.tuning.search import rank_map

    comm = world()
    with open(args.blocks, "rb") as fh:
        blocks = pickle.load(fh)
    cv = cross_validator(args.worker, overrides=json.loads(args.overrides), comm=comm,
                         autoload=False, threads=1, blocks=blocks)
    rng = np.random.default_rng(0)
    sp = cv.space
    per_group = [np.clip(sp.x0 + rng.uniform(-1, 1, sp.size), sp.lower, sp.upper)
                 for _ in range(args.trials)]
    coarse = cv.coarse_stage()
    per_kind = [coarse[1](coarse[0].x0 + rng.uniform(-1, 1, coarse[0].size))
                for _ in range(args.trials)] if coarse else []
    out = {}
    for name, points in (("per_trial_s", per_group), ("per_trial_kind_s", per_kind)):
        if not points:
            continue
        run = rank_map(comm, cv.trial, [])
        comm.Barrier()
        t0 = time.perf_counter()
        run(None, points)
        out[name] = (time.perf_counter() - t0) / len(points)
    if comm.rank == 0:
        print(json.dumps(dict(out, trials=args.trials)))


def measure(nranks: int, inp: Path, overrides: list[str], blocks: Path, trials: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [MPIEXEC, "-n", str(nranks), sys.executable, __file__, "--worker", str(inp),
           "--overrides", json.dumps(overrides), "--blocks", str(blocks), "--trials", str(trials)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=7200)
    if p.returncode:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def part_trials(trials: int, tmp: Path) -> None:
    print(f"\nSeconds per trial (load average {load()}); in brackets: trials at one factor per "
          f"kind (the first stage of the search)\n")
    print("| data | columns | tuned values | blocks (MiB) | ranks | trials | s per trial | "
          "trials/s | speed-up |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    cases = [("Cu example", EXAMPLE, [], trials * 4),
             ("InP, SNAP 2J=8", INP, inp_overrides(chem=False), trials),
             ("InP, ChemSNAP 2J=6", INP, inp_overrides(chem=True), max(8, trials // 4))]
    for k, (name, inp, ov, t) in enumerate(cases):
        path = tmp / f"blocks{k}.pkl"
        b = build(inp, ov, path)
        one = None
        for n in (1, 2):
            r = measure(n, inp, ov, path, t)
            one = one or r["per_trial_s"]
            kind = f" ({r['per_trial_kind_s']:.3g})" if "per_trial_kind_s" in r else ""
            print(f"| {name} | {b['ncols']} | {b['tuned']} | {b['blocks']} ({b['mib']:.0f}) | "
                  f"{n} | {r['trials']} | {r['per_trial_s']:.3g}{kind} | "
                  f"{1 / r['per_trial_s']:.3g} | {one / r['per_trial_s']:.2f}x |", flush=True)


def part_replicas(trials: int, tmp: Path, repeats: int = 3) -> None:
    """The example and the example with every configuration 16 times: the blocks are the same
    size, so a trial costs the same. Measured alternately, ``repeats`` times; medians."""
    import statistics

    print(f"\nTime per trial against training-set size (load average {load()}; median of "
          f"{repeats}, measured alternately)\n")
    print("| training set | configurations | training rows | blocks built in | s per trial |\n"
          "|---|---:|---:|---:|---:|")
    built = {}
    for k in (1, 16):
        inp = replicate(k, tmp / f"x{k}")
        path = tmp / f"x{k}.pkl"
        built[k] = (inp, path, build(inp, [], path))
    times: dict[int, list] = {1: [], 16: []}
    for _ in range(repeats):
        for k, (inp, path, _) in built.items():
            times[k].append(measure(1, inp, [], path, trials * 4)["per_trial_s"])
    for k, (inp, path, b) in built.items():
        print(f"| example x{k} | {135 * k} | {b['rows']} | {b['build_s']:.1f} s | "
              f"{statistics.median(times[k]):.4g} |", flush=True)


def part_inp(trials: int, out: Path, balance: str) -> None:
    import mpisnap

    print(f"\nEnd-to-end tune of the InP data ({trials} trials, balance = {balance}, load "
          f"average {load()})\n")
    t0 = time.perf_counter()
    r = mpisnap.tune(str(INP), overrides=inp_overrides(), output_dir=out, trials=trials,
                     threads=1, autoload=False, balance=balance)
    wall = time.perf_counter() - t0
    print("| stage | s |\n|---|---:|")
    for k, v in r.timings.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| wall | {wall:.1f} |")
    b, t = r.baseline, r.best
    print(f"\nCV objective {b.objective:.4g} (published weights) -> {t.objective:.4g} "
          f"(trial {t.index})\n")
    print("| | published weights | tuned weights |\n|---|---:|---:|")
    for k in ("energy", "force"):
        print(f"| CV RMSE {k} | {b.errors.rmse[k]:.4g} | {t.errors.rmse[k]:.4g} |")
    before = {(m.split, m.kind): m for m in r.input_metrics
              if m.group == "*ALL" and m.weighting == "Unweighted"}
    for m in r.fit.metrics:
        if m.group == "*ALL" and m.weighting == "Unweighted" and m.kind != "Stress":
            p = before[(m.split, m.kind)]
            print(f"| {m.split} {m.kind} RMSE (MAE) | {p.rmse:.4g} ({p.mae:.4g}) | "
                  f"{m.rmse:.4g} ({m.mae:.4g}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["trials", "replicas", "inp"],
                    choices=["trials", "replicas", "inp"])
    ap.add_argument("--trials", type=int, default=40, help="trials timed per rate measurement")
    ap.add_argument("--inp-trials", type=int, default=150, help="trials of the InP tune")
    ap.add_argument("--out", default=None, help="output folder of the InP tunes (one "
                    "subfolder per balance)")
    ap.add_argument("--balance", nargs="+", default=["pooled", "groups"],
                    choices=["pooled", "groups"], help="[TUNE] balance of the InP tunes")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="[]", help=argparse.SUPPRESS)
    ap.add_argument("--blocks", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="mpisnap-bench-tune-") as tmp:
        if "trials" in args.parts:
            part_trials(args.trials, Path(tmp))
        if "replicas" in args.parts:
            part_replicas(args.trials, Path(tmp))
    if "inp" in args.parts:
        for balance in args.balance:
            out = (Path(args.out) / balance if args.out
                   else Path(tempfile.mkdtemp(prefix=f"mpisnap-tune-inp-{balance}-")))
            part_inp(args.inp_trials, out, balance)
            print(f"\n(outputs in {out})")


if __name__ == "__main__":
    main()
