"""Reference potentials: the built-in ZBL and LAMMPS give the same subtraction and the same fit."""
import numpy as np
import pytest

import mpisnap
from mpisnap.plugin_manager import build_registry, get_plugin_manager
from mpisnap.records import Configuration
from mpisnap.settings import load_settings
from mpisnap.testing import teachers as T
from mpisnap.testing.dense import wbe_c15
from mpisnap.zbl import ZBL


def _settings(pair_style, coeffs, engine="auto", types="In P"):
    ref = {"units": "metal", "atom_style": "atomic", "pair_style": pair_style, "engine": engine}
    ref.update({f"pair_coeff{k + 1}": c for k, c in enumerate(coeffs)})
    return load_settings({"BISPECTRUM": {"type": types, "twojmax": 4}, "REFERENCE": ref,
                          "GROUPS": {"g": "1.0 0.0 1 1 1"}})


STYLES = {
    "hybrid/overlay zero zbl": ("hybrid/overlay zero 10.0 zbl 4.0 4.2",
                                ["* * zero", "1 1 zbl 49 49", "1 2 zbl 49 15", "2 2 zbl 15 15"]),
    "plain zbl": ("zbl 2.0 4.5", ["1 1 49 49", "1 2 49 15", "2 2 15 15"]),
}


@pytest.mark.parametrize("name", list(STYLES))
def test_builtin_zbl_equals_lammps_evaluation(name):
    from ase.build import bulk

    reg = build_registry(get_plugin_manager(autoload=False))

    at = bulk("InP", "zincblende", a=5.87, cubic=True).repeat(2)
    at.rattle(0.2, seed=3)
    cfg = Configuration("c", "g", at.positions, np.array(at.cell), (True,) * 3,
                        tuple(at.get_chemical_symbols()))
    out = {}
    for engine in ("zbl", "lammps"):
        s = _settings(*STYLES[name], engine=engine)
        rec = reg.get("reference_potentials", engine)
        assert rec.accepts(s.reference)
        out[engine] = rec.factory(s).compute(cfg)
    a, b = out["zbl"], out["lammps"]
    assert abs(a.energy - b.energy) <= 1e-10 * abs(b.energy)
    assert np.abs(a.forces - b.forces).max() <= 1e-10 * np.abs(b.forces).max()
    assert np.abs(a.virial - b.virial).max() <= 1e-10 * np.abs(b.virial).max()


def test_auto_prefers_builtin_zbl_and_falls_back_to_lammps():
    from mpisnap.pipeline import _choose_reference

    reg = build_registry(get_plugin_manager(autoload=False))
    assert _choose_reference(reg, _settings(*STYLES["hybrid/overlay zero zbl"])).name == "zbl"
    s = _settings("lj/cut 5.0", ["* * 0.01 2.5"])
    assert _choose_reference(reg, s).name == "lammps"


def test_engine_that_cannot_evaluate_the_style_is_an_error():
    from mpisnap.pipeline import FitError, _choose_reference

    reg = build_registry(get_plugin_manager(autoload=False))
    with pytest.raises(FitError, match=r"\[REFERENCE\] engine: 'zbl' cannot evaluate"):
        _choose_reference(reg, _settings("lj/cut 5.0", ["* * 0.01 2.5"], engine="zbl"))


def test_fit_with_either_engine_gives_the_same_potential(tmp_path):
    inp = T.write_dataset(T.TEACHERS["Ta06A"], tmp_path, n=6, seed=5)
    ours = mpisnap.fit(inp, output_dir=tmp_path / "zbl", overrides=["REFERENCE.engine=zbl"])
    lmp = mpisnap.fit(inp, output_dir=tmp_path / "lammps", overrides=["REFERENCE.engine=lammps"])
    assert np.abs(ours.coefficients - lmp.coefficients).max() <= 1e-10 * np.abs(lmp.coefficients).max()


WBE = ("hybrid/overlay zero 10.0 zbl 4.0 4.8",
       ["* * zero", "1 1 zbl 74 74", "1 2 zbl 74 4", "2 2 zbl 4 4"])


def _wbe_configs():
    """FitSNAP's WBe C15 EOS cell at 11.8 Å³ (self-image pairs once each: 738 pairs), and
    compressed to 6.75 Å³ and rattled: ≈ 4900 neighbours per atom within LAMMPS's 10 + 1 Å,
    ≈ 2450 in its half list, beyond LAMMPS's default ``neigh_modify one 2000``."""
    s = wbe_c15()
    f = s.positions @ np.linalg.inv(s.cell)
    small = s.cell * (1.5 / 1.80764999509)
    rattled = f @ small + np.random.default_rng(4).normal(scale=0.03, size=(6, 3))
    sym = tuple(("W", "Be")[t] for t in s.types)
    return [Configuration("eos/c15_11.8", "g", s.positions, s.cell, (True,) * 3, sym),
            Configuration("eos/c15_6.75", "g", rattled, small, (True,) * 3, sym)]


@pytest.mark.parametrize("k", [0, 1])
def test_lammps_engine_on_dense_cells_equals_builtin_zbl(k):
    reg = build_registry(get_plugin_manager(autoload=False))
    cfg = _wbe_configs()[k]
    out = {e: reg.get("reference_potentials", e).factory(_settings(*WBE, e, "W Be")).compute(cfg)
           for e in ("zbl", "lammps")}
    a, b = out["zbl"], out["lammps"]
    assert abs(a.energy - b.energy) <= 1e-10 * abs(b.energy)
    assert np.abs(a.virial - b.virial).max() <= 1e-10 * np.abs(b.virial).max()
    # forces relative to the largest sum of pair-force magnitudes on an atom (the ideal C15
    # cell's forces nearly cancel by symmetry)
    zbl = ZBL(4.0, 4.8, [74.0, 4.0])
    types = np.array([0 if s == "W" else 1 for s in cfg.symbols])
    i, j, D = zbl.pairs(cfg.positions, cfg.cell, cfg.pbc)
    r = np.linalg.norm(D, axis=1)
    g = np.abs(zbl.pair(r, types[i], types[j])[1])
    scale = np.bincount(np.r_[i, j], np.r_[g, g]).max()
    assert np.abs(a.forces - b.forces).max() <= 1e-10 * scale
    if k == 0:
        assert len(i) == 738 and abs(b.energy - 574.44638875) < 1e-8


def test_lammps_error_is_one_line_naming_the_configuration():
    reg = build_registry(get_plugin_manager(autoload=False))
    ref = reg.get("reference_potentials", "lammps").factory(
        _settings("nosuchstyle 1.0", ["* *"], "lammps", "W Be"))
    with pytest.raises(ValueError) as err:
        ref.compute(_wbe_configs()[0])
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert msg.startswith("eos/c15_11.8: LAMMPS: ") and "nosuchstyle" in msg


def test_fit_with_a_lammps_error_stops_with_one_line(tmp_path):
    from mpisnap.pipeline import FitError

    inp = T.write_dataset(T.TEACHERS["Ta06A"], tmp_path, n=2, seed=5)
    with pytest.raises(FitError) as err:
        mpisnap.fit(inp, output_dir=tmp_path / "out",
                    overrides=["REFERENCE.engine=lammps", "REFERENCE.pair_style=nosuchstyle"])
    msg = str(err.value)
    assert "\n" not in msg
    assert "train/cfg_00" in msg and "Unrecognized pair style 'nosuchstyle'" in msg, msg
