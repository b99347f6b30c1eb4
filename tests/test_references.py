"""Reference potentials: the built-in ZBL and LAMMPS give the same subtraction and the same fit."""
import numpy as np
import pytest

import mpisnap
from mpisnap.plugin_manager import build_registry, get_plugin_manager
from mpisnap.records import Configuration
from mpisnap.settings import load_settings
from mpisnap.testing import teachers as T


def _settings(pair_style, coeffs, engine="auto"):
    ref = {"units": "metal", "atom_style": "atomic", "pair_style": pair_style, "engine": engine}
    ref.update({f"pair_coeff{k + 1}": c for k, c in enumerate(coeffs)})
    return load_settings({"BISPECTRUM": {"type": "In P", "twojmax": 4}, "REFERENCE": ref,
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
