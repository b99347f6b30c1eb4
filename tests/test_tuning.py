"""``mpisnap tune``: cross-validated errors from compressed blocks equal explicit refits of the raw
rows (any weights, smartweights, RIDGE alpha, coarse blocks, streaming); tuning the bundled
example's naive weights lowers the CV objective and the test-split errors; the tuned input, run
by ``mpisnap fit``, gives the tune's potential; the [TUNE] section's errors are one line."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap.comm import SerialComm
from mpisnap.pipeline import build_shard, plan, prepare
from mpisnap.tuning.driver import cross_validator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"
TUNE_EXAMPLE = ROOT / "examples" / "Cu_EMT_tune" / "Cu_EMT_naive.in"
KINDS = ("energy", "force", "stress")
GROUPS = ("Strain", "Shear", "Displaced", "Vacancy", "Surface", "MD")


def group_overrides(weights, sizes=("0.8", "0.2")):
    return [f"GROUPS.{g}={sizes[0]} {sizes[1]} {w[0]!r} {w[1]!r} {w[2]!r}"
            for g, w in weights.items()]


def mixed_example(tmp_path) -> Path:
    """The example with a group "Mixed" of configurations of 20 and 107 atoms (Surface and
    Vacancy files), so that force weights with smartweights vary inside a group."""
    data = tmp_path / "JSON"
    (data / "Mixed").mkdir(parents=True)
    src = EXAMPLE.parent / "JSON"
    for g in ("Displaced", "MD"):
        (data / g).symlink_to(src / g)
    for g in ("Surface", "Vacancy"):
        for f in sorted((src / g).iterdir()):
            (data / "Mixed" / f"{g}_{f.name}").symlink_to(f)
    text = EXAMPLE.read_text().replace("dataPath = JSON", f"dataPath = {data}")
    head, _, _ = text.partition("Strain    =")
    inp = tmp_path / "mixed.in"
    inp.write_text(head + "Displaced = 0.8 0.2 100.0 1.0 1.0e-4\nMD = 0.8 0.2 100.0 1.0 1.0e-4\n"
                   "Mixed = 0.8 0.2 100.0 1.0 1.0e-4\n")
    return inp


def raw_cv_errors(inp, overrides, folds, *, alpha=None):
    """K-fold CV RMSE by explicit refits of the raw rows: the fit's own rows and weights for
    ``overrides`` (the trial's weights), one least-squares fit per fold (numpy SVD of the
    weighted rows: minimum norm with rcond 1e-13 as the SVD solver, or ridge with ``alpha``),
    unweighted held-out residuals."""
    comm = SerialComm()
    setup = prepare(str(inp), overrides, autoload=False)
    pl = plan(comm, setup)
    shard = build_shard(comm, setup, pl=pl)
    groups = pl.group_names
    lab = shard.labels
    rf = folds[lab["config"]]
    ss = np.zeros((len(groups), 3))
    n = np.zeros((len(groups), 3))
    for f in range(int(folds.max()) + 1):
        keep = shard.train & (rf != f)
        wA = shard.A[keep] * shard.w[keep, None]
        wb = shard.b[keep] * shard.w[keep]
        U, s, Vt = np.linalg.svd(wA, full_matrices=False)
        uq = U.T @ wb
        if alpha is None:
            k = s > 1e-13 * s[0]
            beta = Vt[k].T @ (uq[k] / s[k])
        else:
            beta = Vt.T @ (s / (s * s + alpha) * uq)
        out = shard.train & (rf == f)
        r = shard.A[out] @ beta - shard.b[out]
        np.add.at(ss, (lab["group"][out], lab["kind"][out]), r * r)
        np.add.at(n, (lab["group"][out], lab["kind"][out]), 1)
    weights = {g.name: (g.eweight, g.fweight, g.vweight) for g in setup.settings.groups}
    group = {(groups[g], KINDS[k]): math.sqrt(ss[g, k] / n[g, k])
             for g in range(len(groups)) for k in range(3) if n[g, k]}
    kind = {}
    for k in range(3):
        sel = [g for g in range(len(groups)) if n[g, k] and weights[groups[g]][k] > 0]
        kind[KINDS[k]] = math.sqrt(ss[sel, k].sum() / n[sel, k].sum())
    return kind, group


def close(a, b, rtol=1e-10):
    assert a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) <= rtol * abs(b[k]), (k, a[k], b[k])


@pytest.mark.parametrize("case", ["svd", "smartweights-ridge", "coarse-kinds"])
def test_cv_errors_from_blocks_equal_raw_refits(case, tmp_path):
    """Random weights, at the input's point and at a random point of the search space."""
    rng = np.random.default_rng(11)
    inp = mixed_example(tmp_path) if case == "smartweights-ridge" else EXAMPLE
    groups = [g.name for g in prepare(str(inp), autoload=False).settings.groups]
    weights = {g: tuple(float(x) for x in 10.0 ** rng.uniform(-1, 1, 3) * [100, 1, 1e-4])
               for g in groups}
    extra = ["GROUPS.smartweights=1", "SOLVER.solver=RIDGE"] if case == "smartweights-ridge" \
        else []
    options = dict(folds=4, seed=3)
    if case == "coarse-kinds":
        options.update(memory=0.5, weights="kinds")  # 0.5 MiB: blocks per (fold, kind)
    cv = cross_validator(str(inp), overrides=group_overrides(weights) + extra, autoload=False,
                         **options)
    folds = cv.blocks.index.folds
    assert cv.blocks.coarse == (case == "coarse-kinds")
    if case != "svd":  # weights that vary inside a block: unit-weight blocks kept
        assert cv.blocks.unit
    for x in (cv.space.x0, cv.space.x0 + rng.uniform(-1, 1, cv.space.size)):
        errs = cv.errors(x)
        kind, group = raw_cv_errors(inp, group_overrides(cv.weights(x)) + extra, folds,
                                    alpha=cv.alpha(x))
        close(errs.rmse, kind)
        if not cv.blocks.coarse:
            close(errs.group_rmse, group)


def test_streaming_blocks_equal_in_memory_blocks_and_balanced_objective():
    a = cross_validator(str(EXAMPLE), autoload=False, folds=3, balance="groups")
    b = cross_validator(str(EXAMPLE), overrides=["MEMORY.stream=1"], autoload=False, folds=3)
    x = np.linspace(-0.5, 0.5, a.space.size)
    e = a.errors(x)
    close(e.group_rmse, b.errors(x).group_rmse)
    # balance = groups: per kind, the geometric mean of the groups' CV RMSE ratios, leaving out
    # groups whose input error is round-off (Strain forces: zero by symmetry)
    base = a.errors(a.space.x0)
    want = 0.0
    for k in KINDS:
        keys = [key for key in e.group_rmse if key[1] == k
                and base.group_rmse[key] > 1e-6 * base.rmse[k]]
        if k == "force":
            assert ("Strain", "force") not in keys and ("Shear", "force") in keys
        want += math.exp(np.mean([math.log(e.group_rmse[key] / base.group_rmse[key])
                                  for key in keys]))
    assert a.score(e) == pytest.approx(want, rel=1e-12)
    assert a.score(base) == pytest.approx(3.0) and b.score(e) != pytest.approx(want)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    p = subprocess.run([sys.executable, "-m", "mpisnap", "tune", str(TUNE_EXAMPLE), "--output-dir",
                        str(out), "--set", "TUNE.trials=100"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return out, p.stdout


def _test_rmse(metrics_file):
    from mpisnap.metrics import read_metrics

    return {m.kind: m.rmse for m in read_metrics(metrics_file)
            if m.group == "*ALL" and m.weighting == "Unweighted" and m.split == "Testing"}


def test_tune_lowers_cv_objective_and_test_errors(tuned, tmp_path):
    out, stdout = tuned
    trials = np.genfromtxt(out / "Cu_EMT_naive_tune_trials.csv", delimiter=",", names=True)
    assert len(trials) == 100
    assert trials["objective"][0] == pytest.approx(3.0)  # Σ_kind RMSE/RMSE(input) at the input
    assert trials["objective"].min() < 0.8 * 3.0
    # the test split, never seen by the tune: the input's fit against the tuned fit
    base = mpisnap.fit(str(TUNE_EXAMPLE), output_dir=tmp_path, autoload=False)
    before = {m.kind: m.rmse for m in base.metrics
              if m.group == "*ALL" and m.weighting == "Unweighted" and m.split == "Testing"}
    after = _test_rmse(out / "Cu_EMT_metrics.md")
    assert after["Energy"] < before["Energy"] and after["Force"] < before["Force"]
    assert sum(after[k] / before[k] for k in before) < 0.8 * len(before)
    assert "objective 3 (input weights) ->" in stdout


def test_tuned_input_runs_with_fit_and_gives_the_tuned_potential(tuned, tmp_path):
    from mpisnap.settings import load_settings
    from mpisnap.testing.teachers import read_snapcoeff

    out, _ = tuned
    for name in ("Cu_EMT_naive_tuned.in", "Cu_EMT_naive_tune.md", "Cu_EMT_pot.snapcoeff",
                 "Cu_EMT_pot.snapparam", "Cu_EMT_metrics.md", "Cu_EMT_pot.log"):
        assert (out / name).is_file(), name
    for png in ("Cu_EMT_naive_tune_objective.png", "Cu_EMT_naive_tune_cv_errors.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # runnable from anywhere (absolute data path), and the same potential to the last bit
    s = load_settings(out / "Cu_EMT_naive_tuned.in", verb="fit")
    assert Path(s.path.dataPath).is_absolute()
    res = mpisnap.fit(str(out / "Cu_EMT_naive_tuned.in"), output_dir=tmp_path, autoload=False)
    _, _, a = read_snapcoeff(out / "Cu_EMT_pot.snapcoeff")
    _, _, b = read_snapcoeff(tmp_path / "Cu_EMT_pot.snapcoeff")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert (out / "Cu_EMT_metrics.md").read_text() == \
        (tmp_path / "Cu_EMT_metrics.md").read_text()
    assert res.metric("*ALL", "Unweighted", "Testing", "Force").mae > 0


def test_python_api_with_a_callable_objective():
    seen = []

    def force_only(errors):
        seen.append(errors)
        return errors.rmse["force"]

    r = mpisnap.tune(str(TUNE_EXAMPLE), write=False, autoload=False, objective=force_only,
                     trials=24, weights="kinds", folds=3)
    assert len(r.trials) == 24  # the input's point, repeated first in the population, once
    assert len({t.x for t in r.trials}) <= len(seen) < len(r.trials)
    assert r.best.objective == min(t.errors.rmse["force"] for t in r.trials)
    assert r.best.objective < r.baseline.objective
    assert seen[0].baseline == r.baseline.errors.rmse  # the input's CV errors, for ratios
    assert r.fit.coefficients.shape == (31,)
    assert r.space.names == ("energy", "stress") and r.space.fixed == "Strain:force"


def test_three_ranks_blocks_equal_raw_refits_and_search_equals_serial(tmp_path):
    """On 3 ranks (smartweights, RIDGE): every rank holds the same blocks and trials; the CV
    errors equal explicit raw-row refits; the search takes the same steps as on one process."""
    import json
    import os
    import shutil

    from mpisnap.tuning.search import search

    inp = mixed_example(tmp_path)
    extra = ["GROUPS.smartweights=1", "SOLVER.solver=RIDGE"]
    exe = Path(sys.executable).parent / "mpiexec"
    cmd = [str(exe) if exe.exists() else shutil.which("mpiexec"), "-n", "3", sys.executable,
           str(ROOT / "tests" / "mpi_scripts" / "tune_check.py"), str(inp), "7", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["identical"]
    folds = np.array(got["folds"])
    for point in got["points"]:
        kind, group = raw_cv_errors(inp, group_overrides(point["weights"]) + extra, folds,
                                    alpha=point["alpha"])
        close(point["rmse"], kind)
        close({(g, k): v for g, k, v in point["group_rmse"]}, group)
    cv = cross_validator(str(inp), overrides=extra, autoload=False, folds=4, seed=3, threads=1)
    serial = search(SerialComm(), cv.space, cv.trial, trials=12, seed=7)
    assert [list(t.x) for t in serial] == got["x"]  # the same steps: the same numbers, not
    np.testing.assert_allclose([t.objective for t in serial], got["objectives"], rtol=1e-9,
                               atol=0)  # necessarily the same last bits (other R per rank)


def test_ridge_alpha_and_streaming_end_to_end(tmp_path):
    """RIDGE: alpha is tuned (trial 0 is the input's alpha to the last bit) and written to the
    tuned input; in streaming mode the final fit streams, and fitting the tuned input gives the
    same potential."""
    from mpisnap.settings import load_settings

    r = mpisnap.tune(str(TUNE_EXAMPLE), overrides=["SOLVER.solver=RIDGE", "MEMORY.stream=1"],
                     output_dir=tmp_path / "out", autoload=False, trials=8, weights="kinds",
                     folds=3)
    assert r.space.names == ("energy", "stress", "alpha")
    assert r.trials[0].alpha == 1e-8 and r.input_metrics is None and r.fit.shard is None
    s = load_settings(tmp_path / "out" / "Cu_EMT_naive_tuned.in", verb="fit")
    assert s.ridge.alpha == r.best.alpha == r.alpha
    assert {g.name: (g.eweight, g.fweight, g.vweight) for g in s.groups} == r.weights
    again = mpisnap.fit(str(tmp_path / "out" / "Cu_EMT_naive_tuned.in"), write=False,
                        autoload=False)
    np.testing.assert_array_equal(again.coefficients, r.fit.coefficients)


def test_cli_on_two_ranks_gives_the_serial_tune(tmp_path):
    """``mpiexec -n 2 mpisnap tune``: the same trials, tuned weights and potential as one
    process (trials split over the ranks, outputs written once by rank 0)."""
    import os
    import shutil

    from mpisnap.testing.teachers import read_snapcoeff

    opts = ["--set", "TUNE.trials=12", "--set", "TUNE.folds=3", "--threads", "1"]
    exe = Path(sys.executable).parent / "mpiexec"
    cmd = [str(exe) if exe.exists() else shutil.which("mpiexec"), "-n", "2", sys.executable,
           "-m", "mpisnap", "tune", str(TUNE_EXAMPLE), "--output-dir", str(tmp_path / "mpi"),
           "-q", *opts]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr
    r = mpisnap.tune(str(TUNE_EXAMPLE), output_dir=tmp_path / "serial", autoload=False,
                     threads=1, trials=12, folds=3)
    trials = np.genfromtxt(tmp_path / "mpi" / "Cu_EMT_naive_tune_trials.csv", delimiter=",",
                           names=True)
    np.testing.assert_allclose(trials["objective"], [t.objective for t in r.trials], rtol=1e-9)
    lines = [ln for ln in (tmp_path / "mpi" / "Cu_EMT_naive_tuned.in").read_text().splitlines()
             if not ln.startswith("#")]
    assert lines == [ln for ln in (tmp_path / "serial" / "Cu_EMT_naive_tuned.in").read_text()
                     .splitlines() if not ln.startswith("#")]
    _, _, a = read_snapcoeff(tmp_path / "mpi" / "Cu_EMT_pot.snapcoeff")
    _, _, b = read_snapcoeff(tmp_path / "serial" / "Cu_EMT_pot.snapcoeff")
    assert np.abs(a["Cu"] - b["Cu"]).max() <= 1e-10 * np.abs(b["Cu"]).max()


@pytest.mark.parametrize("setting, message", [
    ("TUNE.folds=1", r"\[TUNE\] folds: must be >= 2, got 1"),
    ("TUNE.weights=atoms", r"\[TUNE\] weights: expected one of groups, kinds, none"),
    ("TUNE.objective=energy virial", r"\[TUNE\] objective: expected row kinds"),
    ("TUNE.regularisation=1", r"\[TUNE\] regularisation: solver SVD has no alpha"),
    ("TUNE.colour=red", r"\[TUNE\] colour: unknown key"),
    ("TUNE.folds=200", r"\[TUNE\] folds: 200 folds need at least 200 training configurations"),
    ("CALCULATOR.stress=0", None),  # fine: stress is then neither fitted nor tuned
])
def test_tune_section_errors_are_one_line(tmp_path, setting, message):
    import re

    if message is None:  # objective kinds follow [CALCULATOR]; the energy constraint
        r = mpisnap.tune(str(TUNE_EXAMPLE), overrides=[setting], write=False, autoload=False,
                         trials=3, weights="kinds", max_energy_rmse=10.0)
        assert r.space.names == ("energy",) and "stress" not in r.best.errors.rmse
        e = r.baseline.errors.rmse["energy"]
        assert e > 0.010  # eV/atom: above the 10 meV/atom limit, so penalised
        assert r.baseline.objective == pytest.approx(2.0 + 100.0 * (e / 0.010 - 1.0))
        return
    with pytest.raises(ValueError) as err:
        mpisnap.tune(str(TUNE_EXAMPLE), overrides=[setting], output_dir=tmp_path / "out",
                     autoload=False)
    assert re.search(r"^Cu_EMT_naive.in: " + message, str(err.value)), str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_error_exits_2_with_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mpisnap", "tune", str(TUNE_EXAMPLE),
                        "--output-dir", str(tmp_path / "out"), "--set", "TUNE.trials=0"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr == ("mpisnap: error: Cu_EMT_naive.in: [TUNE] trials: must be >= 1, got 0 "
                        "(from override 'TUNE.trials=0')\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stream", [0, 1])
def test_bayes_final_fit_shows_the_evidence_bar_only_with_progress(stream, capfd):
    """The tuned input's final fit with BAYES (in memory and streaming) shows the evidence
    optimisation exactly when the run shows progress, as ``mpisnap fit`` does."""
    for progress in (True, False):
        r = mpisnap.tune(str(TUNE_EXAMPLE), overrides=["SOLVER.solver=BAYES",
                                                       f"MEMORY.stream={stream}"],
                         write=False, autoload=False, trials=4, weights="kinds", folds=3,
                         progress=progress)
        assert r.fit.solve_info  # the final fit ran
        err = capfd.readouterr().err
        assert ("evidence" in err) == progress, err[-2000:]
