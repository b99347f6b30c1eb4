"""BAYES on the bundled example (examples/Cu_EMT, EMT labels: the model is misspecified): calibrated
90 % intervals cover 87–93 % of the held-out force components (raw Bayesian coverage is reported
beside it), the report, reliability plot, ``_uq.h5`` and sample potentials are written, LAMMPS
reads the samples, the calculator fills the ``*_std`` properties only where ``_uq.h5`` exists,
FitSNAP's ANL maps onto BAYES with ``nsam`` and ``cov_nugget``, streaming gives the same
uncertainty, and ``[UQ]`` errors are one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mpisnap

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT_bayes.in"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("bayes")
    return mpisnap.fit(EXAMPLE, output_dir=out, autoload=False), out


def test_calibrated_intervals_cover_held_out_forces(fitted):
    result, _ = fitted
    uq = result.uq
    assert uq.split == "test"
    cov = {(c["kind"], c["level"]): c for c in uq.coverage if c["group"] == "*ALL"}
    force = cov[("Force", 0.9)]
    assert force["n"] == 2871
    assert 0.87 <= force["calibrated"] <= 0.93, force
    energy = cov[("Energy", 0.9)]  # 24 held-out energies: a binomial band, not 87–93 %
    assert abs(energy["calibrated"] - 0.9) <= 3 * np.sqrt(0.09 / energy["n"])
    # the scales make ±1.645 σ the conformal 90 % interval of the held-out CV scores
    for k in range(3):
        assert uq.scale[k] * 1.6448536269514722 == pytest.approx(uq.quantile[k], rel=1e-12)
    cv = {c["kind"]: c for c in uq.cv_coverage if c["group"] == "*ALL" and c["level"] == 0.9}
    assert cv["Force"]["n"] == int((~result.shard.labels["test"]
                                    & (result.shard.labels["kind"] == 1)).sum())
    assert cv["Force"]["calibrated"] >= 0.9  # conformal: at least the level on its own scores


def test_rows_configurations_and_report(fitted):
    result, out = fitted
    uq = result.uq
    rows = uq.rows
    shard = result.shard
    assert len(rows) == shard.nrows
    np.testing.assert_array_equal(rows["truth"], shard.b)
    np.testing.assert_allclose(rows["prediction"], shard.predictions, rtol=1e-12)
    assert np.all(rows["std"] > 0) and np.all(rows["std_model"] < rows["std_raw"])
    np.testing.assert_allclose(rows["std"], uq.scale[rows["kind"]] * rows["std_raw"], rtol=1e-14)
    # model variance = aᵀΣa with the fit's covariance
    A = shard.A[:50]
    np.testing.assert_allclose(rows["std_model"][:50] ** 2,
                               np.einsum("ij,jk,ik->i", A, result.covariance, A), rtol=1e-6)
    cfg = uq.configurations
    assert len(cfg) == len(uq.config_names)
    one = rows[rows["config"] == cfg["config"][3]]
    assert cfg["max_force_std"][3] == one["std"][one["kind"] == 1].max()
    assert cfg["natoms"][3] == (one["kind"] == 1).sum() // 3
    summary = json.loads((out / "Cu_EMT_bayes_metrics_uq.json").read_text())
    assert summary["solver"] == "BAYES" and summary["split"] == "test"
    assert set(summary["noise_std"]) == {"energy", "force", "stress"}
    md = (out / "Cu_EMT_bayes_metrics_uq.md").read_text()
    assert "| *ALL | Force | 2871 |" in md
    # the FitSNAP-format metrics file keeps its columns
    from mpisnap.metrics import read_metrics

    assert read_metrics(out / "Cu_EMT_bayes_metrics.md")
    png = (out / "Cu_EMT_bayes_uq_reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_samples_and_the_calculator(fitted):
    from ase.build import bulk
    from ase.calculators.calculator import PropertyNotImplementedError

    from mpisnap import Calculator
    from mpisnap.potential import read_potential, read_snapcoeff

    result, out = fitted
    samples = [out / f"Cu_EMT_bayes_sample{k}.snapcoeff" for k in range(4)]
    assert all(p.exists() for p in samples) and not (out / "Cu_EMT_bayes_sample4.mod").exists()
    coef = np.array([read_snapcoeff(p)[2]["Cu"] for p in samples])
    mean = read_snapcoeff(out / "Cu_EMT_bayes.snapcoeff")[2]["Cu"]
    assert np.all(coef.std(axis=0) > 0)
    sd = np.sqrt(np.diagonal(result.covariance))
    assert np.all(np.abs(coef - mean) < 6 * sd)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    atoms.calc = Calculator(out / "Cu_EMT_bayes.mod", threads=1)
    atoms.get_potential_energy()
    r = atoms.calc.results
    assert r["energy_std"] > r["energy_std_model"] > 0
    assert r["forces_std"].shape == (len(atoms), 3) and r["stress_std"].shape == (6,)
    assert atoms.calc.get_property("stress_std_model", atoms).shape == (6,)
    sample = read_potential(out / "Cu_EMT_bayes_sample0.mod")  # LAMMPS include files
    assert sample.terms[0][1].coefficients.shape == (1, 31)
    other = atoms.copy()
    other.calc = Calculator(out / "Cu_EMT_bayes_sample0.mod", threads=1)
    other.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError):
        other.calc.get_property("energy_std", other)


def test_anl_maps_onto_bayes_with_nsam_and_cov_nugget(fitted):
    result, _ = fitted
    anl = mpisnap.fit(_without_uq_nsamples(), overrides=["SOLVER.solver=ANL", "SOLVER.nsam=3",
                                                         "SOLVER.cov_nugget=1e-8"],
                      write=False, autoload=False)
    np.testing.assert_array_equal(anl.coefficients, result.coefficients)
    np.testing.assert_allclose(anl.covariance - result.covariance, 1e-8 * np.eye(31),
                               rtol=0, atol=1e-12 * np.abs(result.covariance).max())
    assert anl.uq.options.nsamples == 3 and anl.uq.solver == "ANL"


def _without_uq_nsamples() -> dict:
    from mpisnap.settings import load_settings

    d = load_settings(EXAMPLE).to_dict()
    del d["UQ"]["nsamples"]
    d["PATH"]["dataPath"] = str(EXAMPLE.parent / "JSON")
    return d


def test_streaming_gives_the_same_uncertainty(fitted):
    result, _ = fitted
    s = mpisnap.fit(EXAMPLE, overrides=["MEMORY.stream=1"], write=False, autoload=False)
    np.testing.assert_allclose(s.coefficients, result.coefficients, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s.uq.scale, result.uq.scale, rtol=1e-9)
    assert s.uq.rows is None
    for name in ("energy_std", "max_force_std", "max_force_std_model"):
        np.testing.assert_allclose(s.uq.configurations[name], result.uq.configurations[name],
                                   rtol=1e-7)
    key = [(c["group"], c["kind"], c["level"], c["n"]) for c in result.uq.coverage]
    assert [(c["group"], c["kind"], c["level"], c["n"]) for c in s.uq.coverage] == key
    for a, b in zip(s.uq.coverage, result.uq.coverage):
        assert (a["raw"], a["calibrated"]) == pytest.approx((b["raw"], b["calibrated"]))


def test_other_solvers_write_no_uncertainty(tmp_path):
    # the example without its [UQ] section (with SVD that section is an error:
    # test_uq_section_solver.py)
    r = mpisnap.fit(EXAMPLE.with_name("Cu_EMT.in"), output_dir=tmp_path, autoload=False)
    assert r.uq is None
    assert not list(tmp_path.glob("*_uq*")) and not list(tmp_path.glob("*sample*"))


@pytest.mark.parametrize("override, message", [
    ("UQ.folds=1", r"\[UQ\] folds: must be >= 2"),
    ("UQ.level=1.5", r"\[UQ\] level: must lie in \(0, 1\)"),
    ("UQ.calibration=isotonic", r"\[UQ\] calibration: "),
    ("UQ.nsample=3", r"\[UQ\] nsample: unknown key"),
])
def test_uq_errors_are_one_line(override, message):
    from mpisnap.pipeline import prepare

    with pytest.raises(ValueError, match=message) as exc:
        prepare(EXAMPLE, [override], autoload=False)
    assert "\n" not in str(exc.value)


def test_chemsnap_samples_are_orbit_averaged(tmp_path):
    """ChemSNAP (twojmax 2 on InP teacher labels, ZBL reference): the mean and every sample are
    orbit-averaged (LAMMPS forces stay −∇E); the calculator reads the potential's ``_uq.h5`` and
    agrees with the fit's per-row standard deviations."""
    from ase import Atoms

    from mpisnap import Calculator
    from mpisnap.potential import read_snapcoeff
    from mpisnap.testing.teachers import TEACHERS, structures, write_dataset

    teacher = TEACHERS["InP_JCPA2020"]
    inp = write_dataset(teacher, tmp_path, n=12, seed=0)
    out = tmp_path / "out"
    r = mpisnap.fit(inp, overrides=["SOLVER.solver=BAYES", "UQ.nsamples=2", "UQ.folds=4",
                                     "BISPECTRUM.twojmax=2"],
                    output_dir=out, autoload=False, threads=1)
    assert r.model.name == "chemsnap" and r.uq is not None
    np.testing.assert_array_equal(r.model.symmetrize(r.coefficients), r.coefficients)
    for k in range(2):
        blocks = read_snapcoeff(out / f"InP_JCPA2020_fit_sample{k}.snapcoeff")[2]
        coef = np.concatenate([blocks[e][1:] for e in teacher.elements])  # bzeroflag 1
        assert np.abs(coef - r.coefficients).max() > 0
        np.testing.assert_allclose(r.model.symmetrize(coef), coef, rtol=0, atol=1e-15)
    pos, cell, syms = structures(teacher, 12, 0)[3]
    atoms = Atoms(syms, positions=pos, cell=cell, pbc=True)
    atoms.calc = Calculator(out / "InP_JCPA2020_fit.mod", threads=1)
    atoms.get_potential_energy()
    rows = r.uq.rows[r.uq.rows["config"] == 3]
    res = atoms.calc.results
    assert res["energy_std"] == pytest.approx(len(atoms) * rows["std"][rows["kind"] == 0][0],
                                              rel=1e-6)
    np.testing.assert_allclose(res["forces_std"].ravel(), rows["std"][rows["kind"] == 1],
                               rtol=1e-6)
