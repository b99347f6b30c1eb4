"""The built-in readers (``mpisnap.plugins.readers``): FitSNAP JSON (the InP data set, comment
lines, unit conversion, every error), FitSNAP extended XYZ (raw energy/stress, no sign flips) and
the ASE reader (ASE's stress convention converted to bar, pressure convention)."""
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.constants as sc
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import write as ase_write

from mpisnap.plugins import readers as rmod
from mpisnap.testing.shared import shared_data
from mpisnap.records import ConfigRef, Configuration, Reader

INP_JSON = shared_data("InP_JPCA2020", "JSON")

INP_COUNTS = {"Bulk": 1, "EOS": 268, "Shear": 346, "Strain": 163, "aIn": 54, "aP": 21, "aa": 20,
              "iIn": 41, "iP": 100, "s_aIn": 121, "s_aP": 72, "s_aa": 18, "s_iIn": 144,
              "s_iP": 337, "s_vIn": 17, "s_vP": 77, "s_vv": 65, "vP": 10, "vv": 19}

BAR_PER_EV_A3 = sc.e * 1e30 / 1e5  # 1 eV/Å³ in bar, from SI


@pytest.fixture(scope="module")
def R():
    recs = rmod.mpisnap_readers()
    return {r.name: r for r in recs}


def test_hook_returns_three_reader_records(R):
    assert set(R) == {"JSON", "XYZ", "ASE"}
    assert all(isinstance(r, Reader) and r.description for r in R.values())


# -- JSON: the real InP data ----------------------------------------------------------------------

def test_inp_counts_and_order(R):
    total = 0
    for group, count in INP_COUNTS.items():
        refs = R["JSON"].list_configs(str(INP_JSON), group)
        assert len(refs) == count
        files = sorted(f for f in os.listdir(INP_JSON / group) if f.endswith(".json"))
        assert [r.name for r in refs] == [f"{group}/{f}" for f in files]
        assert all(r.group == group and r.index == 0 and Path(r.source).parent == INP_JSON / group
                   for r in refs)
        total += count
    assert total == 1894
    assert sorted(p.name for p in INP_JSON.iterdir()) == sorted(INP_COUNTS)


def test_inp_one_file_against_json_load(R):
    path = INP_JSON / "Shear" / "InP_shear_101.json"
    with open(path) as fh:
        assert not fh.readline().startswith("{")  # the data set's files start with a comment
        raw = json.load(fh)["Dataset"]
    d = raw["Data"][0]
    assert raw["StressStyle"] == "kB"  # VASP kilobar
    c = R["JSON"].load(ConfigRef("Shear/InP_shear_101.json", "Shear", str(path)))
    assert isinstance(c, Configuration)
    assert (c.name, c.group, c.pbc) == ("Shear/InP_shear_101.json", "Shear", (True, True, True))
    assert c.symbols == tuple(d["AtomTypes"]) and c.natoms == d["NumAtoms"] == 8
    assert c.energy == d["Energy"]
    np.testing.assert_array_equal(c.positions, d["Positions"])
    np.testing.assert_array_equal(c.cell, d["Lattice"])  # rows are the cell vectors
    np.testing.assert_array_equal(c.forces, d["Forces"])
    np.testing.assert_array_equal(c.stress, 1000.0 * np.array(d["Stress"]))  # kB -> bar, same sign
    assert c.stress[0, 0] == pytest.approx(567829.53)
    for a in (c.positions, c.cell, c.forces, c.stress):
        assert a.dtype == np.float64


def test_inp_every_file_loads(R):
    natoms = 0
    for group in INP_COUNTS:
        for ref in R["JSON"].list_configs(str(INP_JSON), group):
            c = R["JSON"].load(ref)
            assert c.energy is not None and c.forces.shape == (c.natoms, 3)
            assert c.stress.shape == (3, 3) and set(c.symbols) <= {"In", "P"}
            natoms += c.natoms
    assert 3 * natoms == 354642  # force rows of FitSNAP's InP metrics


# -- JSON: synthetic files -----------------------------------------------------------------------

POS = [[0.0, 0.0, 0.0], [1.1, 1.2, 1.3], [2.0, 0.5, 1.5]]
CELL = [[4.0, 0.0, 0.0], [0.5, 4.5, 0.0], [0.2, 0.3, 5.0]]
FRC = [[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6], [0.3, -0.3, 0.3]]
STR = [[1.0, 0.2, 0.3], [0.2, -2.0, 0.4], [0.3, 0.4, 3.0]]


def config(**over):
    d = {"Positions": POS, "Lattice": CELL, "AtomTypes": ["Ta", "Ta", "W"], "NumAtoms": 3,
         "Energy": -12.5, "Forces": FRC, "Stress": STR}
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def dataset(cfgs=None, **styles):
    ds = {"Data": [config()] if cfgs is None else cfgs, "AtomTypeStyle": "chemicalsymbol",
          "Label": "test"}
    ds.update(styles)
    return {"Dataset": ds}


def write_json(folder, name, doc, comment="# a comment line", text=None):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    body = text if text is not None else json.dumps(doc, indent=1)
    path = folder / name
    path.write_text((comment + "\n" if comment is not None else "") + body)
    return path


def load_json(R, path):
    return R["JSON"].load(ConfigRef(f"g/{Path(path).name}", "g", str(path)))


@pytest.mark.parametrize("comment", [None, "# Header", "Header without hash", "", "   "])
def test_json_optional_comment_line(R, tmp_path, comment):
    path = write_json(tmp_path / "g", "a.json", dataset(), comment=comment)
    c = load_json(R, path)
    assert c.energy == -12.5 and c.symbols == ("Ta", "Ta", "W")
    np.testing.assert_array_equal(c.stress, STR)


def test_json_single_line_document_is_not_a_comment(R, tmp_path):
    path = write_json(tmp_path / "g", "a.json", None, comment=None, text=json.dumps(dataset()))
    assert load_json(R, path).energy == -12.5


def test_json_metal_units_unchanged_and_bitwise(R, tmp_path):
    path = write_json(tmp_path / "g", "a.json", dataset(
        PositionsStyle="angstrom", LatticeStyle="angstrom", EnergyStyle="electronvolt",
        ForcesStyle="electronvoltperangstrom", StressStyle="bar"))
    c = load_json(R, path)
    np.testing.assert_array_equal(c.positions, POS)
    np.testing.assert_array_equal(c.cell, CELL)
    np.testing.assert_array_equal(c.forces, FRC)
    np.testing.assert_array_equal(c.stress, STR)
    assert c.energy == -12.5


def test_json_defaults_are_metal_units(R, tmp_path):
    doc = {"Dataset": {"Data": [config()]}}  # no style keys at all
    c = load_json(R, write_json(tmp_path / "g", "a.json", doc))
    np.testing.assert_array_equal(c.forces, FRC)
    np.testing.assert_array_equal(c.stress, STR)


BOHR = sc.physical_constants["Bohr radius"][0] * 1e10              # Å
HARTREE = sc.physical_constants["Hartree energy in eV"][0]         # eV
RYDBERG = sc.physical_constants["Rydberg constant times hc in eV"][0]
KCAL_MOL = 4184.0 / (sc.N_A * sc.e)                                 # eV


@pytest.mark.parametrize("styles, length, energy, force, pressure", [
    (dict(PositionsStyle="bohr", LatticeStyle="bohr", EnergyStyle="hartree",
          ForcesStyle="hartreeperbohr", StressStyle="kbar"), BOHR, HARTREE, HARTREE / BOHR, 1e3),
    (dict(PositionsStyle="nm", LatticeStyle="nanometer", EnergyStyle="rydberg",
          ForcesStyle="rydbergperbohr", StressStyle="GPa"), 10.0, RYDBERG, RYDBERG / BOHR, 1e4),
    (dict(PositionsStyle="Angstrom", LatticeStyle="angstrom", EnergyStyle="kcal/mol",
          ForcesStyle="kcal/mol/Angstrom", StressStyle="atm"), 1.0, KCAL_MOL, KCAL_MOL, 1.01325),
    (dict(EnergyStyle="eV", ForcesStyle="eV/A", StressStyle="kB"), 1.0, 1.0, 1.0, 1e3),
    (dict(EnergyStyle="Hartree", ForcesStyle="electronvolt_per_bohr", StressStyle="Pa"),
     1.0, HARTREE, 1.0 / BOHR, 1e-5),
    (dict(ForcesStyle="hartree/angstrom", StressStyle="MPa", EnergyStyle="kJ/mol"),
     1.0, 1000.0 / (sc.N_A * sc.e), HARTREE, 10.0),
])
def test_json_unit_conversions(R, tmp_path, styles, length, energy, force, pressure):
    c = load_json(R, write_json(tmp_path / "g", "a.json", dataset(**styles)))
    rel = 2e-9  # CODATA 2018 (the reader) against scipy's release (2022: a0 moved by 7e-10)
    np.testing.assert_allclose(c.positions, np.array(POS) * length, rtol=rel)
    np.testing.assert_allclose(c.cell, np.array(CELL) * length, rtol=rel)
    assert c.energy == pytest.approx(-12.5 * energy, rel=rel)
    np.testing.assert_allclose(c.forces, np.array(FRC) * force, rtol=rel)
    np.testing.assert_allclose(c.stress, np.array(STR) * pressure, rtol=1e-15)  # exact factors


def test_json_stated_constants():
    assert rmod.LENGTH_UNITS["bohr"] == 0.529177210903          # CODATA 2018
    assert rmod.ENERGY_UNITS["hartree"] == 27.211386245988       # CODATA 2018
    assert rmod.ENERGY_UNITS["rydberg"] == pytest.approx(13.605693122994, rel=1e-15)
    assert rmod.ENERGY_UNITS["kcalpermol"] == pytest.approx(0.0433641042418, rel=1e-12)
    assert rmod.EV_PER_A3_IN_BAR == 1.602176634e6 == pytest.approx(BAR_PER_EV_A3, rel=1e-15)
    assert rmod.force_unit("electronvoltperangstrom") == 1.0
    assert rmod.force_unit("furlongperfortnight") is None


def test_json_styles_in_the_configuration(R, tmp_path):
    cfg = config(EnergyStyle="hartree")
    c = load_json(R, write_json(tmp_path / "g", "a.json", dataset([cfg])))
    assert c.energy == pytest.approx(-12.5 * HARTREE, rel=1e-11)


@pytest.mark.parametrize("missing", ["Energy", "Forces", "Stress"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_json_missing_labels_are_none(R, tmp_path, missing, how):
    cfg = config(**{missing: ... if how == "absent" else None})
    c = load_json(R, write_json(tmp_path / "g", "a.json", dataset([cfg])))
    assert getattr(c, missing.lower()) is None
    others = {"Energy", "Forces", "Stress"} - {missing}
    assert all(getattr(c, k.lower()) is not None for k in others)


def test_json_numatoms_optional(R, tmp_path):
    c = load_json(R, write_json(tmp_path / "g", "a.json", dataset([config(NumAtoms=...)])))
    assert c.natoms == 3


def test_json_list_configs_sorted_and_ignores_other_files(R, tmp_path):
    g = tmp_path / "data" / "G"
    for name in ["b.json", "a10.json", "a2.json", "A.json"]:
        write_json(g, name, dataset())
    (g / "notes.txt").write_text("not data")
    (g / ".hidden.json").write_text("{}")
    (g / "sub.json").mkdir()
    refs = R["JSON"].list_configs(str(tmp_path / "data"), "G")
    assert [r.name for r in refs] == ["G/A.json", "G/a10.json", "G/a2.json", "G/b.json"]
    assert [r.source for r in refs] == [str(g / n) for n in ["A.json", "a10.json", "a2.json", "b.json"]]


# -- JSON errors: one line, naming the file and the key --------------------------------------------

def json_error(R, tmp_path, doc=None, text=None, comment="# c"):
    path = write_json(tmp_path / "g", "bad.json", doc, comment=comment, text=text)
    with pytest.raises(ValueError) as info:
        load_json(R, path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_json_error_malformed(R, tmp_path):
    msg = json_error(R, tmp_path, text='{"Dataset": {"Data": [\n  {"Energy": 1.0,,}]}}')
    assert "invalid JSON at line 3" in msg  # line numbers count the comment line


def test_json_error_empty_file(R, tmp_path):
    assert "invalid JSON" in json_error(R, tmp_path, text="", comment=None)


@pytest.mark.parametrize("key, value", [
    ("Forces", [[float("nan"), 0, 0], [0, 0, 0], [0, 0, 0]]),
    ("Positions", [[0, 0, 0], [1, 1, float("inf")], [2, 2, 2]]),
    ("Stress", [[1, 0, 0], [0, float("-inf"), 0], [0, 0, 1]]),
    ("Lattice", [[4, 0, 0], [0, 4, None], [0, 0, 4]]),
])
def test_json_error_non_finite(R, tmp_path, key, value):
    msg = json_error(R, tmp_path, dataset([config(**{key: value})]))  # json writes NaN/Infinity
    assert f"{key}: contains non-finite values" in msg


def test_json_error_nan_energy(R, tmp_path):
    assert "Energy: not finite" in json_error(R, tmp_path, dataset([config(Energy=float("nan"))]))


@pytest.mark.parametrize("key, value, fragment", [
    ("Positions", [[0, 0, 0], [1, 1e300, 1], [2, 2, 2]], "Positions: atom 1 y is 1e+300 Å; "
                                                         "beyond ±1e8 Å it is not physical"),
    ("Positions", [[0, 0, 0], [1, 1, 1], [2, 2, -2e8]], "Positions: atom 2 z is -2e+08 Å"),
    # a huge cell used to overflow in the zero-volume check (OverflowError, not a user error)
    ("Lattice", [[1e300, 0, 0], [0, 4, 0], [0, 0, 4]], "Lattice: cell vector 0 x is 1e+300 Å"),
    ("Energy", 1e300, "Energy: 1e+300 eV for 3 atoms; beyond ±1e8 eV per atom"),
    ("Energy", -4e8, "Energy: -4e+08 eV for 3 atoms"),
    ("Forces", [[0, 0, 0], [0, 0, 0], [0, 1e300, 0]], "Forces: atom 2 y is 1e+300 eV/Å"),
    ("Stress", [[1, 0, 0], [0, 1, 1e300], [0, 1e300, 1]], "Stress: component yz is 1e+300 bar"),
])
def test_json_error_nonsense_magnitude(R, tmp_path, key, value, fragment):
    """Finite but absurd numbers (corrupt data, a wrong unit) are refused naming file and key,
    instead of fitting silently or overflowing later."""
    assert fragment in json_error(R, tmp_path, dataset([config(**{key: value})]))


def test_json_bounds_are_not_hit_by_real_extremes(R, tmp_path):
    """Just inside the bounds: loads (an all-electron-size energy, a 1 GPa-scale stress ...)."""
    cfg = config(Positions=[[0, 0, 0], [1, 1, 1], [2, 2, 9.9e7]], Energy=-3 * 5e5,
                 Forces=[[1e4, 0, 0], [0, 0, 0], [0, 0, 0]], Stress=np.diag([1e7] * 3).tolist())
    c = load_json(R, write_json(tmp_path / "g", "ok.json", dataset([cfg])))
    assert c.energy == -1.5e6 and c.positions[2, 2] == 9.9e7


@pytest.mark.parametrize("key, value, fragment", [
    ("Forces", [[0, 0], [0, 0], [0, 0]], "Forces: expected shape (3, 3), got (3, 2)"),
    ("Forces", FRC[:2], "Forces: expected shape (3, 3), got (2, 3)"),
    ("Positions", [[0, 0, 0], [1, 1], [2, 2, 2]], "Positions: expected an array"),
    ("Lattice", CELL[:2], "Lattice: expected shape (3, 3), got (2, 3)"),
    ("Stress", [1, 2, 3, 4, 5, 6], "Stress: expected shape (3, 3), got (6,)"),
    ("Energy", "-12.5", "Energy: expected a number"),
    ("Energy", [1.0], "Energy: expected a number"),
    ("AtomTypes", "TaTaW", "AtomTypes: expected a list"),
    ("AtomTypes", ["Ta", 1, "W"], "AtomTypes: expected a list"),
    ("Lattice", [[1, 0, 0], [2, 0, 0], [0, 0, 1]], "Lattice: the cell vectors are linearly dependent"),
    ("Positions", ..., "Positions: missing"),
    ("Lattice", None, "Lattice: missing"),
])
def test_json_error_wrong_shape_or_type(R, tmp_path, key, value, fragment):
    assert fragment in json_error(R, tmp_path, dataset([config(**{key: value})]))


@pytest.mark.parametrize("numatoms, fragment", [
    (4, "NumAtoms: 4 but AtomTypes lists 3 atoms"),
    (2.5, "NumAtoms: expected a whole number"),
    ("3", "NumAtoms: expected a whole number"),
])
def test_json_error_numatoms(R, tmp_path, numatoms, fragment):
    assert fragment in json_error(R, tmp_path, dataset([config(NumAtoms=numatoms)]))


def test_json_error_positions_disagree_with_atom_types(R, tmp_path):
    msg = json_error(R, tmp_path, dataset([config(AtomTypes=["Ta", "W"], NumAtoms=2)]))
    assert "Positions: expected shape (2, 3), got (3, 3)" in msg


def test_json_error_two_configurations(R, tmp_path):
    msg = json_error(R, tmp_path, dataset([config(), config()]))
    assert "Dataset.Data: expected exactly one configuration per file, found 2" in msg


def test_json_error_no_configuration(R, tmp_path):
    assert "found 0" in json_error(R, tmp_path, dataset([]))


@pytest.mark.parametrize("doc, fragment", [
    ({"dataset": {}}, "expected one top-level object"),
    ({"Dataset": {"Data": [config()]}, "Extra": 1}, "expected one top-level object"),
    ([1, 2], "expected one top-level object"),
    ({"Dataset": []}, "Dataset: expected an object"),
    ({"Dataset": {"Data": config()}}, "Dataset.Data: missing or not a list"),
    ({"Dataset": {"Data": [[1]]}}, "Dataset.Data[0]: expected an object"),
    ({"Dataset": {"Data": [config(EnergyStyle="hartree")], "EnergyStyle": "hartree"}},
     "'EnergyStyle' is given both"),
])
def test_json_error_structure(R, tmp_path, doc, fragment):
    assert fragment in json_error(R, tmp_path, doc)


@pytest.mark.parametrize("key, value", [
    ("PositionsStyle", "furlong"), ("LatticeStyle", "meter"), ("EnergyStyle", "joule"),
    ("ForcesStyle", "newton"), ("StressStyle", "psi"), ("StressStyle", 1.0),
    ("ForcesStyle", "electronvolt"),
])
def test_json_error_unknown_style(R, tmp_path, key, value):
    msg = json_error(R, tmp_path, dataset(**{key: value}))
    assert msg.endswith(f"{key}: unknown unit {value!r}") or f"{key}: expected a unit name" in msg


def test_json_error_unknown_style_even_without_that_label(R, tmp_path):
    msg = json_error(R, tmp_path, dataset([config(Stress=...)], StressStyle="psi"))
    assert "StressStyle: unknown unit 'psi'" in msg


def test_json_error_atom_type_style(R, tmp_path):
    msg = json_error(R, tmp_path, dataset(AtomTypeStyle="atomicnumber"))
    assert "AtomTypeStyle: unknown style 'atomicnumber'" in msg


def test_json_error_unreadable(R, tmp_path):
    path = tmp_path / "g" / "bin.json"
    path.parent.mkdir()
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8") as info:
        load_json(R, path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["JSON", "ASE"])
def test_error_missing_group_folder(R, tmp_path, name):
    with pytest.raises(ValueError) as info:
        R[name].list_configs(str(tmp_path), "Nope")
    assert str(info.value) == f"group 'Nope': no folder {tmp_path / 'Nope'}"


@pytest.mark.parametrize("name, fragment", [("JSON", "no *.json files in"), ("ASE", "no files in")])
def test_error_empty_group_folder(R, tmp_path, name, fragment):
    (tmp_path / "Empty").mkdir()
    (tmp_path / "Empty" / ".hidden").write_text("")
    with pytest.raises(ValueError, match=re.escape(f"group 'Empty': {fragment}")):
        R[name].list_configs(str(tmp_path), "Empty")


# -- extended XYZ (FitSNAP convention) ---------------------------------------------------------------

def xyz_frame(symbols, pos, forces, lattice, energy=None, stress=None, extra=""):
    head = f'Lattice="{" ".join(repr(float(x)) for x in np.ravel(lattice))}" '
    head += "Properties=species:S:1:pos:R:3:forces:R:3"
    if energy is not None:
        head += f" energy={energy!r}"
    if stress is not None:
        head += f' stress="{" ".join(repr(float(x)) for x in np.ravel(stress, order="F"))}"'
    lines = [str(len(symbols)), head + extra]
    for s, p, f in zip(symbols, pos, forces):
        lines.append(f"{s} " + " ".join(repr(float(x)) for x in (*p, *f)))
    return "\n".join(lines) + "\n"


def make_frames(nframes, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(nframes):
        n = 11 + k % 3  # more than 9 atoms: two-digit atom counts
        cell = np.diag([8.0, 8.5, 9.0]) + rng.uniform(-0.5, 0.5, (3, 3)) * [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
        pos = rng.uniform(0, 8, (n, 3))
        f = rng.normal(size=(n, 3))
        s = rng.normal(scale=1e4, size=(3, 3))
        s = s + s.T  # symmetric, with positive and negative entries
        e = -float(rng.uniform(10, 100))
        syms = [("In", "P")[i % 2] for i in range(n)]
        frames.append((syms, pos, f, cell, e, s))
    return frames


def test_xyz_round_trip_raw_values(R, tmp_path):
    frames = make_frames(12)
    text = "".join(xyz_frame(*fr) for fr in frames)
    (tmp_path / "G.xyz").write_text(text)
    refs = R["XYZ"].list_configs(str(tmp_path), "G")
    assert [r.name for r in refs] == [f"G/G.xyz#{i:02d}" for i in range(12)]
    assert [r.index for r in refs] == list(range(12))
    assert sorted(refs, key=lambda r: r.name) == list(refs)
    assert all(r.group == "G" and r.source == str(tmp_path / "G.xyz") for r in refs)
    for ref, (syms, pos, f, cell, e, s) in zip(refs, frames):
        c = R["XYZ"].load(ref)
        assert c.name == ref.name and c.group == "G" and c.symbols == tuple(syms)
        assert c.pbc == (True, True, True)
        assert c.energy == e  # no unit or sign change, bit for bit
        np.testing.assert_array_equal(c.positions, pos)
        np.testing.assert_array_equal(c.cell, cell)  # Lattice rows = cell vectors
        np.testing.assert_array_equal(c.forces, f)
        np.testing.assert_array_equal(c.stress, s)  # bar, pressure convention: no flip
        assert (c.stress > 0).any() and (c.stress < 0).any()


def test_xyz_stress_order_is_extxyz_fortran_order(R, tmp_path):
    syms, pos, f, cell, e, _ = make_frames(1)[0]
    text = xyz_frame(syms, pos, f, cell, e).rstrip("\n").split("\n")
    text[1] += ' stress="1 2 3 4 5 6 7 8 9"'
    (tmp_path / "G.extxyz").write_text("\n".join(text) + "\n")
    c = R["XYZ"].load(R["XYZ"].list_configs(str(tmp_path), "G")[0])
    np.testing.assert_array_equal(c.stress, [[1, 4, 7], [2, 5, 8], [3, 6, 9]])


def test_xyz_missing_labels_and_extra_keys(R, tmp_path):
    syms, pos, f, cell, *_ = make_frames(1)[0]
    (tmp_path / "G.xyz").write_text(xyz_frame(syms, pos, f, cell, extra=' config_type=bulk virial="1 0 0 0 1 0 0 0 1"'))
    c = R["XYZ"].load(R["XYZ"].list_configs(str(tmp_path), "G")[0])
    assert c.energy is None and c.stress is None
    np.testing.assert_array_equal(c.forces, f)
    lines = [f"{s} {p[0]} {p[1]} {p[2]}" for s, p in zip(syms, pos)]
    (tmp_path / "H.xyz").write_text(f'{len(syms)}\nLattice="8 0 0 0 8 0 0 0 8" energy=-1.5\n'
                                    + "\n".join(lines) + "\n")
    c = R["XYZ"].load(R["XYZ"].list_configs(str(tmp_path), "H")[0])
    assert c.energy == -1.5 and c.forces is None and c.stress is None


def test_xyz_prefers_extxyz(R, tmp_path):
    fr = make_frames(2)
    (tmp_path / "G.xyz").write_text(xyz_frame(*fr[0]))
    (tmp_path / "G.extxyz").write_text(xyz_frame(*fr[0]) + xyz_frame(*fr[1]))
    refs = R["XYZ"].list_configs(str(tmp_path), "G")
    assert [r.name for r in refs] == ["G/G.extxyz#0", "G/G.extxyz#1"]


def test_xyz_error_missing_file(R, tmp_path):
    with pytest.raises(ValueError) as info:
        R["XYZ"].list_configs(str(tmp_path), "Nope")
    base = tmp_path / "Nope"
    assert str(info.value) == f"group 'Nope': no file {base}.extxyz or {base}.xyz"


@pytest.mark.parametrize("mangle, fragment", [
    (lambda t: t.replace("11\n", "eleven\n", 1), "line 1: expected the number of atoms"),
    (lambda t: t.rsplit("\n", 4)[0] + "\n", "file ends before"),
    (lambda t: t.replace("\n12\n", "\n\n12\n", 1), "blank line between frames"),
])
def test_xyz_error_listing(R, tmp_path, mangle, fragment):
    path = tmp_path / "G.xyz"
    path.write_text(mangle("".join(xyz_frame(*fr) for fr in make_frames(3))))
    with pytest.raises(ValueError, match=fragment) as info:
        R["XYZ"].list_configs(str(tmp_path), "G")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("mangle, fragment", [
    (lambda t: t.replace("energy=", "energy=nan#", 1).replace("nan#", "nan "), "energy: not finite"),
    (lambda t: t.replace('stress="', 'stress="1 2 3 ', 1), "stress"),
    (lambda t: t.replace("energy=", "energy=abc energy2=", 1), "energy: expected a number"),
])
def test_xyz_error_bad_values(R, tmp_path, mangle, fragment):
    syms, pos, f, cell, e, s = make_frames(1)[0]
    path = tmp_path / "G.xyz"
    path.write_text(mangle(xyz_frame(syms, pos, f, cell, e, s)))
    ref = R["XYZ"].list_configs(str(tmp_path), "G")[0]
    with pytest.raises(ValueError, match=fragment) as info:
        R["XYZ"].load(ref)
    assert str(path) in str(info.value) and "frame 0" in str(info.value)


def test_xyz_error_nan_force(R, tmp_path):
    syms, pos, f, cell, e, s = make_frames(1)[0]
    f = f.copy()
    f[3, 1] = np.nan
    (tmp_path / "G.xyz").write_text(xyz_frame(syms, pos, f, cell, e, s))
    with pytest.raises(ValueError, match="forces: contains non-finite"):
        R["XYZ"].load(R["XYZ"].list_configs(str(tmp_path), "G")[0])


def test_xyz_error_nonsense_position(R, tmp_path):
    syms, pos, f, cell, e, s = make_frames(1)[0]
    pos = pos.copy()
    pos[4, 0] = 1e300
    (tmp_path / "G.xyz").write_text(xyz_frame(syms, pos, f, cell, e, s))
    with pytest.raises(ValueError, match=r"G\.xyz: frame 0: positions: atom 4 x is 1e\+300 Å"):
        R["XYZ"].load(R["XYZ"].list_configs(str(tmp_path), "G")[0])


# -- ASE reader (ASE's conventions) -------------------------------------------------------------------

def ase_frames(n=3, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = Atoms("Ta4W", positions=rng.uniform(0, 5, (5, 3)),
                      cell=[[5, 0, 0], [0.3, 5, 0], [0.2, 0.1, 5]], pbc=True)
        e = -float(rng.uniform(10, 20))
        f = rng.normal(size=(5, 3))
        s = rng.normal(scale=0.01, size=6)  # eV/Å³, Voigt xx yy zz yz xz xy, tensile positive
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        out.append((atoms, e, f, s))
    return out


def voigt_to_full(s):
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


@pytest.mark.parametrize("ext", ["traj", "extxyz"])
def test_ase_reader_converts_stress_to_bar_pressure(R, tmp_path, ext):
    g = tmp_path / "G"
    g.mkdir()
    frames = ase_frames(3)
    ase_write(g / f"b.{ext}", [a for a, *_ in frames[:2]])
    ase_write(g / f"a.{ext}", frames[2][0])
    refs = R["ASE"].list_configs(str(tmp_path), "G")
    assert [(r.name, r.index) for r in refs] == [(f"G/a.{ext}#0", 0), (f"G/b.{ext}#0", 0),
                                                 (f"G/b.{ext}#1", 1)]
    for ref, (atoms, e, f, s) in zip(refs, [frames[2], frames[0], frames[1]]):
        c = R["ASE"].load(ref)
        assert c.symbols == ("Ta", "Ta", "Ta", "Ta", "W") and c.pbc == (True, True, True)
        tol = dict(rtol=1e-14, atol=0) if ext == "traj" else dict(rtol=1e-7, atol=1e-8)  # %16.8f
        assert c.energy == pytest.approx(e, rel=1e-14)
        np.testing.assert_allclose(c.positions, atoms.positions, **tol)
        np.testing.assert_allclose(c.cell, atoms.cell.array, **tol)
        np.testing.assert_allclose(c.forces, f, **tol)
        expected = -1.602176634e6 * voigt_to_full(s)
        np.testing.assert_allclose(c.stress, expected, rtol=1e-14, atol=0)
        # a tensile (positive ASE) diagonal stress is a negative pressure in bar
        assert np.all(np.sign(np.diag(c.stress)) == -np.sign(s[:3]))


def test_ase_stress_helper():
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(rmod.ase_stress_to_bar(s),
                                  -1.602176634e6 * np.array([[1, 6, 5], [6, 2, 4], [5, 4, 3]]))
    np.testing.assert_array_equal(rmod.ase_stress_to_bar(np.eye(3)), -1.602176634e6 * np.eye(3))
    with pytest.raises(ValueError):
        rmod.ase_stress_to_bar(np.zeros(4))


def test_ase_reader_raw_forces_despite_constraints_and_missing_labels(R, tmp_path):
    g = tmp_path / "G"
    g.mkdir()
    atoms, e, f, s = ase_frames(1)[0]
    atoms.set_constraint(FixAtoms(indices=[0]))
    bare = Atoms("Ta2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=[3, 3, 3], pbc=True)
    ase_write(g / "x.traj", [atoms, bare])
    refs = R["ASE"].list_configs(str(tmp_path), "G")
    c = R["ASE"].load(refs[0])
    np.testing.assert_allclose(c.forces, f, rtol=1e-14)  # atom 0 not zeroed by FixAtoms
    assert np.abs(c.forces[0]).sum() > 0
    c = R["ASE"].load(refs[1])
    assert c.energy is None and c.forces is None and c.stress is None and c.natoms == 2


def test_ase_reader_error_unreadable_file(R, tmp_path):
    g = tmp_path / "G"
    g.mkdir()
    (g / "junk.dat").write_text("this is not a structure\n")
    with pytest.raises(ValueError, match="ASE cannot read it") as info:
        R["ASE"].list_configs(str(tmp_path), "G")
    assert str(g / "junk.dat") in str(info.value) and "\n" not in str(info.value)


def same_configuration(a, b):
    """Every number of two configurations bitwise equal (names aside)."""
    assert (a.symbols, a.pbc, a.energy) == (b.symbols, b.pbc, b.energy)
    for key in ("positions", "cell", "forces", "stress"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


@pytest.mark.parametrize("fmt, comp, module", [("extxyz", "gz", "gzip"), ("extxyz", "bz2", "bz2"),
                                               ("extxyz", "xz", "lzma"), ("traj", "gz", "gzip")])
def test_ase_reader_decompresses_a_compressed_file_once(R, tmp_path, monkeypatch, fmt, comp,
                                                        module):
    """Loading the frames of a compressed file one by one opens it no more after listing (ASE
    itself would decompress it again for every frame), and gives the uncompressed file's
    configurations bit for bit."""
    import importlib

    frames = [a for a, *_ in ase_frames(6, seed=3)]
    for g in ("Plain", "Packed"):
        (tmp_path / g).mkdir()
    ase_write(tmp_path / "Plain" / f"a.{fmt}", frames)
    mod = importlib.import_module(module)
    with open(tmp_path / "Plain" / f"a.{fmt}", "rb") as src, \
            mod.open(tmp_path / "Packed" / f"a.{fmt}.{comp}", "wb") as dst:
        dst.write(src.read())
    opens = []
    real_open = mod.open
    monkeypatch.setattr(mod, "open", lambda *a, **k: opens.append(a) or real_open(*a, **k))
    refs = R["ASE"].list_configs(str(tmp_path), "Packed")
    listed = len(opens)
    assert 1 <= listed <= 2  # the format's magic bytes, the content
    packed = [R["ASE"].load(ref) for ref in refs]
    assert len(opens) == listed
    plain = [R["ASE"].load(ref) for ref in R["ASE"].list_configs(str(tmp_path), "Plain")]
    assert len(packed) == len(plain) == 6
    assert [c.name for c in packed] == [f"Packed/a.{fmt}.{comp}#{i}" for i in range(6)]
    for a, b in zip(packed, plain):
        same_configuration(a, b)


def test_ase_reader_compressed_file_rewritten_is_read_again(R, tmp_path):
    import gzip

    g = tmp_path / "G"
    g.mkdir()
    frames = ase_frames(5, seed=7)
    buf = io.StringIO()
    ase_write(buf, [a for a, *_ in frames[:3]], format="extxyz")
    (g / "a.xyz.gz").write_bytes(gzip.compress(buf.getvalue().encode()))
    assert R["ASE"].load(R["ASE"].list_configs(str(tmp_path), "G")[2]).energy == frames[2][1]
    buf = io.StringIO()
    ase_write(buf, [a for a, *_ in frames[3:]], format="extxyz")
    (g / "a.xyz.gz").write_bytes(gzip.compress(buf.getvalue().encode()))
    os.utime(g / "a.xyz.gz", ns=(1, 1))
    refs = R["ASE"].list_configs(str(tmp_path), "G")
    assert [R["ASE"].load(r).energy for r in refs] == [frames[3][1], frames[4][1]]


def test_learning_validation_set_is_read_as_the_ase_reader_reads(R, tmp_path):
    """Active learning's labelled files go through the reader's conversion: the same numbers
    (compressed or not) and the same checks (a frame without atoms is refused)."""
    import gzip

    from mpisnap.errors import FitError
    from mpisnap.learning.structures import read_labelled
    from mpisnap.plugin_manager import build_registry, get_plugin_manager

    reg = build_registry(get_plugin_manager(autoload=False))
    g = tmp_path / "G"
    g.mkdir()
    ase_write(g / "v.extxyz", [a for a, *_ in ase_frames(4, seed=11)])
    val = tmp_path / "val"
    val.mkdir()
    (val / "v.extxyz.gz").write_bytes(gzip.compress((g / "v.extxyz").read_bytes()))
    got = read_labelled(str(val), "learn.in: [LEARN] validation", reg)
    assert [c.name for c in got] == [f"v.extxyz.gz#{i}" for i in range(4)]
    for a, ref in zip(got, R["ASE"].list_configs(str(tmp_path), "G")):
        same_configuration(a, R["ASE"].load(ref))
    empty = Atoms(cell=[3, 3, 3], pbc=True)
    empty.calc = SinglePointCalculator(empty, energy=-1.0)
    ase_write(val / "w.extxyz", [empty])
    with pytest.raises(FitError, match=r"^learn.in: \[LEARN\] validation: w.extxyz: no atoms$"):
        read_labelled(str(val), "learn.in: [LEARN] validation", reg)


def test_xyz_force_column_alias_and_file_rewrite(R, tmp_path):
    syms, pos, f, cell, e, s = make_frames(1)[0]
    path = tmp_path / "G.xyz"
    path.write_text(xyz_frame(syms, pos, f, cell, e, s).replace("forces:R:3", "force:R:3"))
    refs = R["XYZ"].list_configs(str(tmp_path), "G")
    np.testing.assert_array_equal(R["XYZ"].load(refs[0]).forces, f)
    frames = make_frames(3, seed=5)  # rewrite the file: the frame index must follow it
    path.write_text("".join(xyz_frame(*fr) for fr in frames))
    os.utime(path, ns=(1, 1))  # a different modification time even on coarse clocks
    refs = R["XYZ"].list_configs(str(tmp_path), "G")
    assert len(refs) == 3
    assert R["XYZ"].load(refs[2]).energy == frames[2][4]
    with pytest.raises(ValueError, match="frame 7: no such frame"):
        R["XYZ"].load(ConfigRef("G/G.xyz#7", "G", str(path), 7))


def test_readers_through_the_plugin_registry():
    from mpisnap.plugin_manager import build_registry, get_plugin_manager
    reg = build_registry(get_plugin_manager(autoload=False))
    assert reg.get("readers", "json").name == "JSON"
    assert {"JSON", "XYZ", "ASE"} <= set(reg.names("readers"))
