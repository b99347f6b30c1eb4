"""mpisnap.oracle: loading an oracle (an ASE calculator class or a LAMMPS pair style), labelling,
and the FitSNAP JSON writer read back by the JSON reader plugin (units and sign conventions)."""
import json
import os

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mpisnap.oracle import (LabelError, Labels, LammpsOracle, OracleError, label, load_oracle,
                            read_labelled_json, write_labelled_json)
from mpisnap.plugin_manager import build_registry, get_plugin_manager
from mpisnap.records import ConfigRef
from mpisnap.units import EV_PER_A3_IN_BAR


def _json_reader():
    return build_registry(get_plugin_manager(autoload=False), ("readers",)).get("readers", "JSON")


def _triclinic_cu(seed=0, scale=1.0):
    at = bulk("Cu", "fcc", a=3.61 * scale).repeat((2, 2, 2))  # primitive cell: triclinic
    at.rattle(0.05, seed=seed)
    return at


def test_labelled_json_round_trip_through_the_reader(tmp_path):
    at = _triclinic_cu()
    lab = label(EMT(), at)
    path = write_labelled_json(tmp_path / "c.json", at, *lab, comment="a test\nstructure")
    c = _json_reader().load(ConfigRef("G/c.json", "G", os.fspath(path), 0))
    assert c.symbols == tuple(at.get_chemical_symbols())
    np.testing.assert_array_equal(c.positions, at.get_positions())   # exact floats
    np.testing.assert_array_equal(c.cell, np.asarray(at.get_cell()))
    assert c.energy == lab.energy
    np.testing.assert_array_equal(c.forces, lab.forces)
    np.testing.assert_array_equal(c.stress, lab.stress)
    # the labels are EMT's, the stress in bar with the pressure sign (ASE: eV/Å³, tensile +)
    ref = at.copy()
    ref.calc = EMT()
    assert lab.energy == pytest.approx(ref.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(lab.stress, -EV_PER_A3_IN_BAR * ref.get_stress(voigt=False),
                               rtol=1e-12, atol=1e-9)
    with open(path, encoding="utf-8") as fh:
        assert fh.readline() == "# a test structure\n"
    atoms2, lab2 = read_labelled_json(path)
    np.testing.assert_array_equal(atoms2.positions, at.positions)
    np.testing.assert_array_equal(lab2.forces, lab.forces)


def test_compressed_crystal_has_positive_pressure_in_bar():
    lab = label(EMT(), bulk("Cu", "fcc", a=3.61 * 0.9, cubic=True))
    p = np.trace(lab.stress) / 3
    assert p > 1e4  # about 10 GPa or more, compressive = positive (LAMMPS pxx, FitSNAP JSON)
    lab = label(EMT(), bulk("Cu", "fcc", a=3.61 * 1.1, cubic=True))
    assert np.trace(lab.stress) / 3 < 0


def test_unlabelled_json_and_no_stress_without_periodicity(tmp_path):
    at = _triclinic_cu()
    path = write_labelled_json(tmp_path / "u.json", at)
    c = _json_reader().load(ConfigRef("G/u.json", "G", os.fspath(path), 0))
    assert c.energy is None and c.forces is None and c.stress is None
    assert read_labelled_json(path)[1] is None
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["Dataset"]["StressStyle"] == "bar"
    cluster = at.copy()
    cluster.pbc = False
    assert label(EMT(), cluster).stress is None


def test_load_oracle_from_module_and_file(tmp_path):
    calc = load_oracle("ase.calculators.emt:EMT", "{}", tmp_path)
    assert isinstance(calc, EMT)
    (tmp_path / "my_calc.py").write_text(
        "from ase.calculators.emt import EMT\n"
        "class Scaled(EMT):\n"
        "    def __init__(self, factor=1.0):\n"
        "        super().__init__()\n"
        "        self.factor = factor\n"
        "    def calculate(self, *a, **k):\n"
        "        super().calculate(*a, **k)\n"
        "        for key in ('energy', 'forces'):\n"
        "            self.results[key] = self.results[key] * self.factor\n")
    calc = load_oracle("my_calc.py:Scaled", '{"factor": 2.0}', tmp_path)
    at = _triclinic_cu()
    assert label(calc, at).energy == pytest.approx(2 * label(EMT(), at).energy, rel=1e-12)


@pytest.mark.parametrize("spec, args, message", [
    ("no_such_module_xyz:Calc", "{}", "cannot import 'no_such_module_xyz'"),
    ("ase.calculators.emt:Nope", "{}", "has no 'Nope'"),
    ("fractions:Fraction", '{"bogus": 1}', "Fraction(**oracle_args) failed: TypeError"),
    ("collections:OrderedDict", "{}", "OrderedDict is not an ASE calculator"),
    ("ase.calculators.emt:EMT", "[1, 2]", "expected a JSON object"),
    ("ase.calculators.emt:EMT", "{oops", "not valid JSON"),
    ("EMT", "{}", "expected module:Class"),
    ("missing.py:Calc", "{}", "no file"),
    ("lammps", "{}", 'needs "pair_style"'),
    ("lammps", '{"pair_style": "lj/cut 5"}', 'needs "pair_coeff"'),
    ("lammps", '{"pair_style": "lj/cut 5", "pair_coeff": ["* * 1 2"], "cut": 3}',
     "unknown oracle_args key 'cut'"),
])
def test_bad_oracles_are_one_line_user_errors(tmp_path, spec, args, message):
    with pytest.raises(OracleError) as info:
        load_oracle(spec, args, tmp_path, elements=["Cu"])
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


class _Broken(EMT):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def calculate(self, *a, **k):
        super().calculate(*a, **k)
        if self.mode == "raise":
            raise RuntimeError("SCF did not converge\nafter 100 steps")
        self.results["forces"] = self.results["forces"] * np.nan


@pytest.mark.parametrize("mode, message", [("raise", "the oracle failed: RuntimeError: SCF did "
                                                     "not converge after 100 steps"),
                                           ("nan", "forces: not finite")])
def test_a_failing_label_is_a_label_error(mode, message):
    with pytest.raises(LabelError) as info:
        label(_Broken(mode), _triclinic_cu(), where="configuration 7")
    assert str(info.value).startswith("configuration 7: ") and message in str(info.value)


def _lj_brute_force(at, eps, sigma, rc):
    """Energy, forces, virial (xx yy zz yz xz xy) of lj/cut (no shift), all images by hand."""
    from ase.neighborlist import neighbor_list

    i, j, d, D = neighbor_list("ijdD", at, rc)
    sr6 = (sigma / d) ** 6
    e = 0.5 * np.sum(4 * eps * (sr6 * sr6 - sr6))
    dedr = 4 * eps * (-12 * sr6 * sr6 + 6 * sr6) / d
    g = (dedr / d)[:, None] * D      # ∂E_pair/∂D, each pair counted twice with half weight
    f = np.zeros((len(at), 3))
    np.add.at(f, i, 0.5 * g)
    np.add.at(f, j, -0.5 * g)
    W = -0.5 * (g.T @ D)
    return e, f, np.array([W[0, 0], W[1, 1], W[2, 2], W[1, 2], W[0, 2], W[0, 1]])


def test_lammps_oracle_against_brute_force_lennard_jones(tmp_path):
    at = _triclinic_cu(seed=3, scale=0.95)
    calc = load_oracle("lammps", {"pair_style": "lj/cut 5.0",
                                  "pair_coeff": ["* * 0.4 2.3"], "cutoff": 5.0},
                       tmp_path, elements=["Cu"])
    assert isinstance(calc, LammpsOracle)
    lab = label(calc, at)
    e, f, w = _lj_brute_force(at, 0.4, 2.3, 5.0)
    assert lab.energy == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(lab.forces, f, atol=1e-9)
    vol = at.get_volume()
    W = np.array([[w[0], w[5], w[4]], [w[5], w[1], w[3]], [w[4], w[3], w[2]]])
    np.testing.assert_allclose(lab.stress, EV_PER_A3_IN_BAR * W / vol, rtol=1e-9, atol=1e-6)
    assert isinstance(lab, Labels)
