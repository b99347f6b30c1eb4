"""Known noise: random Ta cells labelled by the SNAP part of Ta06A through LAMMPS, plus Gaussian
noise of known σ_E (eV/atom) and σ_F (eV/Å). The teacher is in the model class, so the BAYES
solver must recover both noise levels (within 3 standard errors, 2,000 energy rows), its 95 %
credible intervals must contain the teacher's coefficients at the nominal rate over 20 noise
seeds, and its 90 % predictive intervals must cover fresh noisy labels at 90 % (binomial
errors). Through the whole fit: the same noise levels, posterior samples written as potentials
whose LAMMPS energies spread as ``energy_std_model`` says, and the calculator's standard
deviations equal the fit's."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mpisnap.comm import SerialComm
from mpisnap.pipeline.solving import compress_folds
from mpisnap.results import LABEL_DTYPE
from mpisnap.testing import noisy_teacher as NT
from mpisnap.uq.solver import solve_bayes

SIGMA_E, SIGMA_F = 2e-3, 5e-2   # eV/atom, eV/Å
W_E, W_F = 100.0, 1.0           # row weights (noise is estimated in label units whatever they are)
NTRAIN, NFRESH, SEEDS = 2000, 400, 20
Z90 = 1.6448536269514722


@pytest.fixture(scope="module")
def data():
    cells = NT.ta_cells(NTRAIN + NFRESH, seed=1)
    energies, forces = NT.ta06a_labels(cells)
    rows = NT.labelled_rows(cells, energies, forces)
    return cells, energies, forces, rows


def _binomial_ok(hits: np.ndarray, p: float, nsig: float = 3.0) -> bool:
    n = hits.size
    return abs(hits.mean() - p) <= nsig * math.sqrt(p * (1 - p) / n)


def test_noise_levels_coefficients_and_fresh_labels_over_20_seeds(data):
    _, _, _, L = data
    beta = NT.ta06a_coefficients()
    assert np.abs(L.A @ beta - L.truth).max() < 1e-9  # the teacher is in the model class
    train = L.config < NTRAIN
    lab = np.zeros(train.sum(), LABEL_DTYPE)
    lab["kind"], lab["config"] = L.kind[train], L.config[train]
    w = np.where(L.kind[train] == 0, W_E, W_F)
    flat = np.zeros(L.A.shape[1], bool)
    flat[0] = True
    sigma = np.where(L.kind == 0, SIGMA_E, SIGMA_F)
    fresh = ~train
    zs, inside, covered = [], [], {0: [], 1: []}
    for seed in range(SEEDS):
        rng = np.random.default_rng(100 + seed)
        b = L.truth + sigma * rng.standard_normal(L.truth.size)
        blocks = compress_folds(SerialComm(), [(L.A[train], b[train], w, lab)], L.A.shape[1],
                                np.zeros(NTRAIN, int), 1, flat)
        sol = solve_bayes(None, None, None, nrows=blocks.nrows, blocks=blocks)
        info = sol.info
        assert info["converged"]
        for name, true in (("energy", SIGMA_E), ("force", SIGMA_F)):
            se = true / math.sqrt(2 * (info["rows"][name] - info["gamma"][name]))
            zs.append((info["noise_std"][name] - true) / se)
        sd = np.sqrt(np.diagonal(sol.covariance))
        inside.append(np.abs(sol.coefficients - beta) <= 1.959964 * sd)
        new = L.truth[fresh] + sigma[fresh] * rng.standard_normal(fresh.sum())
        A = L.A[fresh]
        var = np.einsum("ij,jk,ik->i", A, sol.covariance, A)
        noise = np.where(L.kind[fresh] == 0, info["noise_std"]["energy"],
                         info["noise_std"]["force"])
        hit = np.abs(new - A @ sol.coefficients) <= Z90 * np.sqrt(var + noise ** 2)
        for k in (0, 1):
            covered[k].append(hit[L.kind[fresh] == k])
    zs = np.array(zs)
    assert info["rows"]["energy"] == NTRAIN
    assert np.abs(zs).max() < 3.0, zs          # every seed, both kinds: within 3 SE
    assert abs(zs.mean()) < 3.0 / math.sqrt(zs.size)  # and unbiased
    assert _binomial_ok(np.concatenate(inside), 0.95)
    for k in (0, 1):
        assert _binomial_ok(np.concatenate(covered[k]), 0.90)


# -- the same through the whole fit --------------------------------------------------------------

NFIT, NSAMPLES = 600, 64


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    import mpisnap

    cells, energies, forces, _ = data
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("noisy")
    frames = []
    for (pos, cell), e, f in zip(cells[:NFIT], energies, forces):
        at = Atoms("Ta" * len(pos), positions=pos, cell=cell, pbc=True)
        n = len(pos)
        at.calc = SinglePointCalculator(
            at, energy=e + n * SIGMA_E * rng.standard_normal(),
            forces=f + SIGMA_F * rng.standard_normal(f.shape))
        frames.append(at)
    ase.io.write(folder / "cells.extxyz", frames, format="extxyz")
    settings = NT.ta06a_settings()
    settings.update({"SOLVER": {"solver": "BAYES"}, "UQ": {"nsamples": NSAMPLES},
                     "SCRAPER": {"scraper": "XYZ"}, "PATH": {"dataPath": str(folder)},
                     "OUTFILE": {"metrics": "ta_metrics.md", "potential": "ta_pot"},
                     "GROUPS": {"cells": "1.0 0.0 100.0 1.0 0.0"}})
    out = folder / "out"
    return mpisnap.fit(settings, output_dir=out, autoload=False), out


def test_fit_recovers_the_noise_and_writes_its_uncertainty(fitted):
    result, out = fitted
    info = result.solve_info
    for name, true in (("energy", SIGMA_E), ("force", SIGMA_F)):
        se = true / math.sqrt(2 * (info["rows"][name] - info["gamma"][name]))
        assert abs(info["noise_std"][name] - true) < 3 * se, (name, info["noise_std"])
        # the Laplace standard error the report gives agrees with the textbook one
        assert info["noise_std_error"][name] == pytest.approx(se, rel=0.2)
    uq = result.uq
    assert uq.split == "cv"  # no test split: coverage on the held-out folds
    raw = {c["kind"]: c["raw"] for c in uq.coverage if c["group"] == "*ALL" and c["level"] == 0.9}
    assert abs(raw["Force"] - 0.9) < 0.02  # well specified: raw Bayesian intervals cover
    for kind in (0, 1):  # and calibration hardly changes them
        assert 0.85 < uq.scale[kind] < 1.15
    names = {p.name for p in out.iterdir()}
    assert {"ta_metrics_uq.md", "ta_metrics_uq.json", "ta_pot_uq.h5",
            "ta_pot_uq_reliability.png", "ta_pot_sample0.mod",
            f"ta_pot_sample{NSAMPLES - 1}.snapcoeff"} <= names
    assert f"ta_pot_sample{NSAMPLES}.mod" not in names


def _probe_cells():
    """A training-like cell, a rattled 16-atom supercell and a compressed cell (extrapolation)."""
    from ase.build import bulk

    rng = np.random.default_rng(3)
    small = NT.ta_cells(1, seed=99)[0]
    big = bulk("Ta", "bcc", a=NT.TA_A, cubic=True).repeat(2)
    big.positions += rng.normal(scale=0.1, size=big.positions.shape)
    squeezed = bulk("Ta", "bcc", a=0.9 * NT.TA_A, cubic=True)
    return [small, (big.positions, np.array(big.cell)),
            (squeezed.positions + 0.05, np.array(squeezed.cell))]


def test_samples_run_in_lammps_and_spread_like_energy_std_model(fitted):
    from ase import Atoms
    from scipy.stats import chi2

    from mpisnap import Calculator

    result, out = fitted
    calc = Calculator(out / "ta_pot.mod", threads=1)
    mods = [f"ta_pot_sample{k}.mod" for k in range(NSAMPLES)]
    lo, hi = chi2.ppf([0.0005, 0.9995], NSAMPLES - 1) / (NSAMPLES - 1)
    stds = []
    for pos, cell in _probe_cells():
        at = Atoms("Ta" * len(pos), positions=pos, cell=cell, pbc=True)
        at.calc = calc
        mean = at.get_potential_energy()
        model = calc.results["energy_std_model"]
        e = NT.include_energies(pos, cell, mods, cutoff=4.8, cwd=out)
        ratio = e.var(ddof=1) / model ** 2
        assert lo < ratio < hi, (ratio, model)        # χ² band of a sample variance
        assert abs(e.mean() - mean) < 4 * model / math.sqrt(NSAMPLES)
        stds.append(model)
    assert stds[2] > 3 * stds[0]  # extrapolation is less certain than the training region


def test_calculator_standard_deviations_equal_the_fits(fitted, data):
    from ase import Atoms

    import mpisnap
    from mpisnap import Calculator

    result, out = fitted
    cells = data[0]
    rows = result.uq.rows
    calc = Calculator(out / "ta_pot.mod", threads=1)
    direct = Calculator(mpisnap.uq.predictor(result))
    # the model part of a training-like energy row is a small difference of large terms
    # (aᵀΣa ≪ |a|² |Σ|): the two computations (file factor, fit factor) agree to ~1e-8
    tol = 1e-6
    for cfg in (0, 17):
        pos, cell = cells[cfg]
        sel = rows[rows["config"] == cfg]
        for c in (calc, direct):
            at = Atoms("Ta" * len(pos), positions=pos, cell=cell, pbc=True)
            at.calc = c
            at.get_potential_energy()
            r = c.results
            n = len(pos)
            assert r["energy_std"] == pytest.approx(n * sel["std"][sel["kind"] == 0][0], rel=tol)
            assert r["energy_std_model"] == pytest.approx(
                n * sel["std_model"][sel["kind"] == 0][0], rel=tol)
            np.testing.assert_allclose(r["forces_std"].ravel(), sel["std"][sel["kind"] == 1],
                                       rtol=tol)
            np.testing.assert_allclose(r["forces_std_model"].ravel(),
                                       sel["std_model"][sel["kind"] == 1], rtol=tol)
            assert r["forces_std"].shape == (n, 3)
            assert "stress_std" not in r  # no stress rows were fitted: no noise known
            assert r["stress_std_model"].shape == (6,)
    assert Path(out / "ta_pot_uq.h5").exists()
