#!/usr/bin/env python
"""Benchmarks of ``mpisnap learn`` (BENCHMARKS.md, section "Active learning").

1. **Cost of a round against a refit from scratch**, as the training set grows: folding a batch
   of 10 new labelled structures into the per-kind triangles, then the solve and the posterior
   (what a round of ``mpisnap learn`` costs besides selection and the oracle), against computing
   the rows of the whole training set again and solving (what a campaign refitting from scratch
   costs per round, as FitSNAP's example script does). Medians of repeats; the ratio is taken
   within one run (the machine is shared).
2. **Selection rules on EMT pools**: test force RMSE at a budget of 5 % of the pool, relative to
   a fit to the whole pool, for ivar, dopt, maxstd and random (3 draws), per pool and averaged
   (the study of tests/test_learn_quality.py on more pools).
3. **Labels needed on the example** (examples/Cu_EMT_learn, ivar with the random baseline): the
   validation errors by labels, and the labels each rule needs to reach the other's final force
   error.

    python scripts/bench_learn.py [--quick] [--skip-example]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT_learn" / "Cu_learn.in"


def load() -> str:
    try:
        return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:
        return ""


# -- 1. cost per round --------------------------------------------------------------------------

def round_cost(sizes, repeats: int) -> None:
    from mpisnap.comm import SerialComm
    from mpisnap.learning import campaign as C
    from mpisnap.learning.posterior import posterior_of
    from mpisnap.oracle import label as oracle_label
    from mpisnap.pipeline import compress, finalize, iter_blocks, own_all, prepare
    from mpisnap.pipeline.timing import Timer
    from mpisnap.records import ConfigRef, Configuration
    from mpisnap.testing.learn_pools import copper_pool
    from mpisnap.training_set import Entry
    from ase.calculators.emt import EMT

    comm = SerialComm()
    setup = prepare(str(EXAMPLE), verb="learn", autoload=False, threads=1)
    ls = setup.settings.section("LEARN")
    groups = [g.name for g in setup.settings.groups] + [ls.group]
    weights = C._first_weights(setup.settings, ls)
    flat = np.array([str(n).endswith(":B0") for n in setup.model.column_names()])
    calc = EMT()
    structures = copper_pool(max(sizes) + 10, seed=77)
    labelled = [(f"s{k:05d}", at, oracle_label(calc, at)) for k, at in enumerate(structures)]
    start = C._start_systems(comm, setup, Timer(), False)
    ncols = setup.model.ncols

    def configs(items):
        return ([Entry(ConfigRef(f"L/{n}", ls.group, n, 0), False, *weights) for n, _, _ in items],
                [Configuration(f"L/{n}", ls.group, at.get_positions(), np.array(at.get_cell()),
                               (True,) * 3, tuple(at.get_chemical_symbols()), lab.energy,
                               lab.forces, lab.stress) for n, at, lab in items])

    print("\n## cost of a round (10 new labels) against a refit from scratch; " + load())
    print(f"{'labelled':>9s} {'training rows':>14s} {'round (s)':>10s} {'scratch (s)':>12s} "
          f"{'scratch / round':>16s}")
    for L in sizes:
        state = start
        if L:
            sol = C.solve_compressed(comm, C._whole(state[0]), setup)
            post = posterior_of(*state, flat)
            state, _ = C._fold(comm, setup, state, labelled[:L], groups, ls.group, weights,
                               sol.coefficients, post)
        batch = labelled[L:L + 10]
        sol = C.solve_compressed(comm, C._whole(state[0]), setup)
        post = posterior_of(*state, flat)
        t_round, t_scratch = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            new, _ = C._fold(comm, setup, state, batch, groups, ls.group, weights,
                             sol.coefficients, post)
            C.solve_compressed(comm, C._whole(new[0]), setup)
            posterior_of(*new, flat)
            t_round.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            entries, cfgs = configs(labelled[:L + 10])
            blocks = iter_blocks(setup, own_all(entries, groups), timer=Timer(), configs=cfgs)
            accs = compress(blocks, ncols, key=lambda lab: lab["kind"])
            seeds = C._start_systems(comm, setup, Timer(), False)[0]  # the seeds' rows too
            whole = finalize(comm, accs, ncols)
            whole = {k: v for k, v in whole.items()}
            C.solve_compressed(comm, C.combine({**{10 + k: v for k, v in whole.items()},
                                                **seeds}, lambda c: 1.0), setup)
            t_scratch.append(time.perf_counter() - t0)
        rows = sum(s.nrows for s in new[0].values())
        a, b = statistics.median(t_round), statistics.median(t_scratch)
        print(f"{L + 10:>9d} {rows:>14d} {a:>10.3f} {b:>12.3f} {b / a:>16.1f}")


# -- 2. selection rules on pools ----------------------------------------------------------------

def selection_study(pools, npool: int, ntest: int = 100) -> None:
    from mpisnap.pipeline import prepare
    from mpisnap.testing.learn_pools import (STUDY_SETTINGS, bulk_seeds, copper_pool, force_rmse,
                                             study_campaign, study_fit, study_rows)

    model = prepare(STUDY_SETTINGS, autoload=False, threads=1).model
    budget = npool // 20
    rules = ("ivar", "dopt", "maxstd")
    print(f"\n## test force RMSE / whole pool's, {npool}-structure pools, budget {budget} "
          f"(5 %), batches of 5; " + load())
    print(f"{'pool':>5s} {'whole (eV/Å)':>13s} " + " ".join(f"{r:>7s}" for r in rules)
          + f" {'random (3 draws)':>24s} {'mean':>6s}")
    table = {r: [] for r in rules + ("random",)}
    for s in pools:
        pool = study_rows(model, copper_pool(npool, s))
        test = study_rows(model, copper_pool(ntest, s + 1000))
        seeds = study_rows(model, bulk_seeds(10, s))
        full = force_rmse(study_fit(model, seeds + pool)[0], test)
        row = {}
        for r in rules:
            row[r] = force_rmse(study_campaign(model, seeds, pool, r, budget), test) / full
            table[r].append(row[r])
        rand = [force_rmse(study_campaign(model, seeds, pool, "random", budget, 5, k), test)
                / full for k in range(3)]
        table["random"].append(float(np.mean(rand)))
        print(f"{s:>5d} {full:>13.4f} " + " ".join(f"{row[r]:>7.3f}" for r in rules)
              + f" {' '.join(f'{x:.3f}' for x in rand):>24s} {np.mean(rand):>6.3f}", flush=True)
    print(f"{'mean':>5s} {'':>13s} " + " ".join(f"{np.mean(table[r]):>7.3f}" for r in rules)
          + f" {'':>24s} {np.mean(table['random']):>6.3f}")
    print(f"{'worst':>5s} {'':>13s} " + " ".join(f"{np.max(table[r]):>7.3f}" for r in rules)
          + f" {'':>24s} {np.max(table['random']):>6.3f}")


# -- 3. the example -----------------------------------------------------------------------------

def example() -> None:
    import mpisnap

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = mpisnap.learn(str(EXAMPLE), output_dir=tmp, threads=1, autoload=False)
        wall = time.perf_counter() - t0
    print(f"\n## examples/Cu_EMT_learn: ivar and the random baseline, {wall:.0f} s; " + load())
    print(f"{'labels':>7s} {'ivar E (eV/atom)':>17s} {'ivar F (eV/Å)':>14s} "
          f"{'random E':>10s} {'random F':>10s}")
    for a, b in zip(r.rounds, r.baseline):
        print(f"{a['labels']:>7d} {a['val_energy_rmse']:>17.4f} {a['val_force_rmse']:>14.4f} "
              f"{b['val_energy_rmse']:>10.4f} {b['val_force_rmse']:>10.4f}")

    def needed(rows, target):
        for h in rows:
            if h["val_force_rmse"] <= target:
                return h["labels"]
        return None

    fi, fr = r.rounds[-1]["val_force_rmse"], r.baseline[-1]["val_force_rmse"]
    print(f"labels to reach random's final force RMSE ({fr:.4f}): ivar {needed(r.rounds, fr)}; "
          f"to reach ivar's ({fi:.4f}): random {needed(r.baseline, fi)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes, pools and repeats")
    ap.add_argument("--skip-example", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"python {sys.version.split()[0]}; {load()}")
    if args.quick:
        round_cost([0, 100], 2)
        selection_study([0, 1], 300)
    else:
        round_cost([0, 100, 200, 400, 800], 3)
        selection_study(range(8), 300)
        selection_study(range(3), 600, 150)
    if not args.skip_example:
        example()


if __name__ == "__main__":
    main()
