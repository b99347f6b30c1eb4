#!/usr/bin/env python
"""Uncertainty benchmark (issue 10): calibration on real data, the cost of the predictive σ, and
the cost of the evidence optimisation against the number of rows. All in one process, one
thread (BLAS and the SNAP core), so the ratios are not disturbed by the other users of a shared
machine; every figure is a median of --repeats where it is cheap to repeat.

1. Coverage on InP (``/work/shared/data/InP_JPCA2020``, ChemSNAP, 480 columns). The input has no
   test split, so every group is split 80/20 at random (``random_sampling = 1``, seed 0): the
   BAYES fit calibrates on 5-fold CV inside the 80 %, and coverage is measured on the 20 %.
   Raw Bayesian and calibrated coverage of the 50/90/95 % intervals of held-out per-atom
   energies and force components, NLL, noise levels, scales, and the test RMSE of BAYES
   against SVD on the same rows.
2. Cost of the predictive σ at 1,596 columns: the Cu example with quadratic SNAP, twojmax 8
   (1 + 55 + 1540 columns, 15.6k rows): rows (descriptors + design matrix) and the prediction
   A·β, against σ of every row (aᵀΣa by one triangular product), and the uncertainty stage of
   the fit (σ of every row under the full posterior and under its fold's posterior). Also per
   configuration in the calculator: σ (rows + product) against the energy/forces prediction.
3. Evidence optimisation against rows: the InP blocks of a 15k-row subset, of all training rows
   and of about 1.7M rows (the training rows repeated, each repetition with fresh Gaussian noise
   of each kind's residual size on the truth): time and number of evaluations of the
   optimisation. Its cost depends on the columns and kinds only.

    python scripts/bench_uq.py [--input InP-example.in] [--repeats 3] [--skip-big]

About 10–15 minutes on a 2-core machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import numpy as np

DEFAULT_INPUT = "/work/shared/data/InP_JPCA2020/InP-example.in"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "Cu_EMT", "Cu_EMT.in")


def say(msg: str = "") -> None:
    print(msg, flush=True)


def median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def split_overrides(settings, train=0.8) -> list[str]:
    """Every group split train/1−train at random (seed 0), weights kept."""
    cols = settings.group_options.group_sections[1:]
    out = ["GROUPS.random_sampling=1", "GROUPS.random_seed=0"]
    for g in settings.groups:
        vals = {c: getattr(g, c) for c in cols}
        vals["training_size"], vals["testing_size"] = train, round(1 - train, 6)
        out.append(f"GROUPS.{g.name}=" + " ".join(repr(float(vals[c])) for c in cols))
    return out


# -- 1 -------------------------------------------------------------------------------------------
def inp_coverage(input_path: str):
    import mpisnap  # noqa: F401
    from mpisnap.comm import SerialComm
    from mpisnap.pipeline import build_shard, plan, prepare, solve_shard
    from mpisnap.pipeline.evaluation import evaluate
    from mpisnap.pipeline.timing import Timer
    from mpisnap.settings import load_settings
    from mpisnap.uq.fitting import fit_shard

    comm = SerialComm()
    base = load_settings(input_path)
    overrides = split_overrides(base) + ["SOLVER.solver=BAYES"]
    setup = prepare(input_path, overrides, threads=1)
    timer = Timer()
    t0 = time.perf_counter()
    pl = plan(comm, setup)
    shard = build_shard(comm, setup, pl=pl, timer=timer)
    t_rows = time.perf_counter() - t0
    say(f"InP: {shard.nrows} rows x {shard.A.shape[1]} columns, rows in {t_rows:.1f} s; "
        f"train {int(shard.train.sum())}, test {int((~shard.train).sum())}")
    result = fit_shard(comm, setup, shard, timer)
    svd_setup = dataclasses.replace(setup, solver=setup.registry.get("solvers", "SVD"))
    t0 = time.perf_counter()
    sol = solve_shard(comm, shard, svd_setup)
    t_svd = time.perf_counter() - t0
    coef = setup.model.symmetrize(sol.coefficients)
    svd_metrics, _ = evaluate(comm, shard, coef)
    return result, svd_metrics, timer.times, t_svd, shard


def report_coverage(result, svd_metrics, times, t_svd) -> None:
    uq = result.uq
    info = result.solve_info
    say("\n## 1. InP, 80/20 random split per group, BAYES (5-fold CV conformal at 90 %)")
    say(f"solve (blocks + evidence, {info['evaluations']} evaluations) {times['solve']:.1f} s, "
        f"uncertainty stage {times['uncertainty']:.1f} s; SVD solve {t_svd:.1f} s")
    say("noise σ: " + ", ".join(f"{k} {v:.4g} ± {info['noise_std_error'][k]:.2g}"
                                 for k, v in info["noise_std"].items()))
    say("scales: " + ", ".join(f"{k} {uq.scale[i]:.3f}" for i, k in
                               enumerate(("energy", "force", "stress"))))
    say("\n| kind | rows | 50 % raw / cal | 90 % raw / cal | 95 % raw / cal | NLL raw / cal |")
    say("|---|---:|---:|---:|---:|---:|")
    cov = {(c["kind"], c["level"]): c for c in uq.coverage if c["group"] == "*ALL"}
    nll = {c["kind"]: c for c in uq.nll if c["group"] == "*ALL"}
    for k in ("Energy", "Force", "Stress"):
        if (k, 0.5) not in cov:
            continue
        cells = [f"{cov[(k, p)]['raw']:.3f} / {cov[(k, p)]['calibrated']:.3f}"
                 for p in (0.5, 0.9, 0.95)]
        say(f"| {k} | {cov[(k, 0.5)]['n']} | " + " | ".join(cells)
            + f" | {nll[k]['raw']:.3f} / {nll[k]['calibrated']:.3f} |")
    say("\ntest RMSE (unweighted, *ALL): BAYES vs SVD")
    bm = {(m.kind): m for m in result.metrics if m.group == "*ALL" and m.split == "Testing"
          and m.weighting == "Unweighted"}
    sm = {(m.kind): m for m in svd_metrics if m.group == "*ALL" and m.split == "Testing"
          and m.weighting == "Unweighted"}
    for k in bm:
        say(f"  {k}: {bm[k].rmse:.5g} vs {sm[k].rmse:.5g}")


# -- 2 -------------------------------------------------------------------------------------------
def sigma_cost(repeats: int):
    from mpisnap.comm import SerialComm
    from mpisnap.pipeline import build_shard, plan, prepare
    from mpisnap.pipeline.compression import shard_blocks
    from mpisnap.pipeline.solving import compress_folds, config_folds, flat_columns
    from mpisnap.pipeline.timing import Timer
    from mpisnap.uq.linalg import inverse_triangle, stack_triangles
    from mpisnap.uq.posterior import Posterior

    comm = SerialComm()
    setup = prepare(EXAMPLE, ["BISPECTRUM.quadraticflag=1", "BISPECTRUM.twojmax=8",
                              "SOLVER.solver=BAYES"], threads=1)
    pl = plan(comm, setup)

    def rows():
        return build_shard(comm, setup, pl=pl, timer=Timer())

    shard = rows()
    n = shard.A.shape[1]
    t_rows = median_time(rows, repeats)
    beta = np.random.default_rng(0).normal(size=n)
    t_pred = median_time(lambda: shard.A @ beta, repeats)
    # a posterior factor of the real system (its value does not change the cost)
    folds = config_folds(comm, shard, 5, 0)
    blocks = compress_folds(comm, shard_blocks(shard, train_only=True), n, folds, 5,
                            flat_columns(setup.model))
    R = stack_triangles([(1.0, c.R) for c in blocks.systems.values()])
    R[np.diag_indices(n)] += 1e-3 * np.abs(np.diagonal(R)).max()
    post = Posterior(np.zeros(n), inverse_triangle(R), np.ones(n, bool))
    t_sigma = median_time(lambda: post.variance(shard.A), repeats)
    say(f"\n## 2. σ cost, quadratic Cu example: {shard.nrows} rows x {n} columns")
    say(f"rows (descriptors + design matrix) {t_rows:.2f} s, prediction A·β {t_pred:.3f} s, "
        f"σ of every row {t_sigma:.2f} s: σ / (rows + prediction) = "
        f"{t_sigma / (t_rows + t_pred):.2f}")
    say(f"the fit's uncertainty stage computes σ twice per training row (full and fold "
        f"posterior): ≈ {2 * t_sigma / (t_rows + t_pred):.2f} x (rows + prediction)")
    return setup, shard, blocks, t_rows, t_pred, t_sigma


def calculator_cost(setup, repeats: int):
    """Per configuration: σ through the calculator path (rows + product) against the energy and
    force prediction of the same model (the adjoint kernel of the potential file)."""
    import tempfile

    from ase.build import bulk

    from mpisnap import potential as P
    from mpisnap.potential import read_potential
    from mpisnap.uq.store import Uncertainty

    model = setup.model
    n = model.ncols
    rng = np.random.default_rng(1)
    coef = rng.normal(scale=1e-3, size=n)
    with tempfile.TemporaryDirectory() as d:
        P.write_snap_potential(os.path.join(d, "q"), model.descriptor,
                               model.coefficient_blocks(coef))
        pot = read_potential(os.path.join(d, "q.mod"))
        F = np.triu(rng.normal(size=(n, n))) * 1e-3
        unc = Uncertainty(model, F, 0.0, np.array([1e-3, 0.05, 100.0]), np.ones(3))
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
        atoms.rattle(0.05, seed=2)
        t_pred = median_time(lambda: pot.predict(atoms, threads=1), repeats)
        t_std = median_time(lambda: unc.std(atoms, threads=1), repeats)
    say(f"calculator, {len(atoms)} atoms: energy/forces/stress {t_pred * 1e3:.1f} ms, "
        f"σ (rows + aᵀΣa) {t_std * 1e3:.1f} ms ({t_std / t_pred:.1f} x)")


# -- 3 -------------------------------------------------------------------------------------------
def evidence_vs_rows(setup, shard, skip_big: bool, repeats: int):
    from mpisnap.comm import SerialComm
    from mpisnap.pipeline.compression import shard_blocks
    from mpisnap.pipeline.solving import compress_folds, config_folds, flat_columns
    from mpisnap.uq.posterior import optimise
    from mpisnap.uq.solver import problem_of

    comm = SerialComm()
    n = shard.A.shape[1]
    folds = config_folds(comm, shard, 5, 0)
    flat = flat_columns(setup.model)
    train = np.flatnonzero(shard.train)
    cases = []
    # a 15k-row subset: the first configurations' rows
    cfg = shard.labels["config"][train]
    cut = np.searchsorted(np.cumsum(np.bincount(cfg)), 15000)
    sub = train[cfg <= cut]
    cases.append(("15k-row subset", sub, 1))
    cases.append(("all rows", train, 1))
    if not skip_big:
        reps = int(np.ceil(1.7e6 / len(train)))
        cases.append((f"{reps} x all rows, fresh noise", train, reps))
    rms = {k: float(np.sqrt(np.mean((shard.b[train][shard.labels["kind"][train] == k]
                                     - shard.predictions[train][shard.labels["kind"][train]
                                                                == k]) ** 2)))
           for k in range(3) if np.any(shard.labels["kind"][train] == k)}
    say(f"\n## 3. evidence optimisation against rows ({n} columns, {len(rms)} kinds)")
    say("| rows | blocks built s | optimisation s | evaluations | s / evaluation |")
    say("|---:|---:|---:|---:|---:|")
    for name, idx, times in cases:
        rng = np.random.default_rng(5)

        def blocks_iter():
            for rep in range(times):
                for s in range(0, len(idx), 20000):
                    i = idx[s:s + 20000]
                    b = shard.b[i]
                    if rep:
                        k = shard.labels["kind"][i]
                        b = b + rng.standard_normal(len(i)) * np.array(
                            [rms.get(j, 0.0) for j in range(3)])[k]
                    yield shard.A[i], b, shard.w[i], shard.labels[i]

        t0 = time.perf_counter()
        blocks = compress_folds(comm, blocks_iter(), n, folds, 5, flat)
        t_blocks = time.perf_counter() - t0
        problem = problem_of(blocks)
        result = {}

        def run():
            result["d"] = optimise(problem)[2]

        t_opt = median_time(run, repeats)
        ev = result["d"]["evaluations"]
        say(f"| {blocks.nrows:,} ({name}) | {t_blocks:.1f} | {t_opt:.2f} | {ev} | "
            f"{t_opt / ev:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-big", action="store_true", help="leave out the 1.7M-row case")
    ap.add_argument("--skip-inp", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    say(f"# bench_uq: python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} "
        "at start; one thread (BLAS, core)")
    with threadpool_limits(1):
        setup_q, shard_q, _, _, _, _ = sigma_cost(args.repeats)
        calculator_cost(setup_q, args.repeats)
        del shard_q
        if not args.skip_inp:
            result, svd_metrics, times, t_svd, shard = inp_coverage(args.input)
            report_coverage(result, svd_metrics, times, t_svd)
            from mpisnap.pipeline import prepare

            setup = prepare(args.input, ["SOLVER.solver=BAYES"], threads=1)
            evidence_vs_rows(setup, shard, args.skip_big, max(1, args.repeats // 2))
    say(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
