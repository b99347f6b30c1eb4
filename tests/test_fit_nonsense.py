"""Inputs that used to give silent nonsense (an all-zero potential, a fit of absurd numbers, a
misleading message or a raw Python error) end in one clear line naming what is wrong: through
``mpisnap.fit``, the command line, :class:`~mpisnap.records.Configuration` and
``FitResult.predict``."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import mpisnap
from mpisnap.records import Configuration

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT"
GROUPS = ("Strain", "Shear", "Displaced", "Vacancy", "Surface", "MD")


def small_example(tmp_path: Path, lines: dict[str, str] | None = None) -> Path:
    """The Cu_EMT example with its group lines replaced (default: 2 Strain configurations)."""
    dst = tmp_path / "Cu_EMT"
    shutil.copytree(EXAMPLE, dst)
    inp = dst / "Cu_EMT.in"
    lines = lines or {"Strain": "2 0 100.0 1.0 1.0e-4"}
    text = re.sub(r"^(%s)\s*=.*\n" % "|".join(GROUPS), "", inp.read_text(), flags=re.M)
    inp.write_text(text + "".join(f"{g} = {v}\n" for g, v in lines.items()))
    return inp


def edit_first_json(inp: Path, group: str, change) -> Path:
    path = sorted((inp.parent / "JSON" / group).glob("*.json"))[0]
    comment, _, body = path.read_text().partition("\n")
    doc = json.loads(body)
    change(doc["Dataset"]["Data"][0])
    path.write_text(comment + "\n" + json.dumps(doc))
    return path


# -- weights -------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["SVD", "RIDGE", "LASSO", "ARD"])
def test_all_zero_weights_fail_instead_of_writing_a_zero_potential(tmp_path, solver):
    inp = small_example(tmp_path, {"Strain": "2 0 0 0 0", "Shear": "0.5 0.5 0 0 0"})
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"Cu_EMT\.in: \[GROUPS\]: every training row has "
                                         r"weight 0 \(groups: Strain, Shear;"):
        mpisnap.fit(inp, overrides=[f"SOLVER.solver={solver}"], output_dir=out)
    assert not out.exists()


def test_only_test_rows_weighted_fails_from_the_command_line(tmp_path):
    inp = small_example(tmp_path, {"Strain": "2 0 0 0 0", "Shear": "0 2 100 1 1e-4"})
    proc = subprocess.run([sys.executable, "-m", "mpisnap", "fit", str(inp), "--output-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "mpisnap: error: Cu_EMT.in: [GROUPS]: every training row has weight 0 (groups: Strain; "
        "fitted rows: energy, force, stress): nothing would be fitted; set a non-zero "
        "eweight/fweight/vweight in [GROUPS]"]
    assert not (tmp_path / "out").exists()


def test_weights_that_are_zero_for_the_fitted_kinds(tmp_path):
    """fweight is set but forces are not fitted: still nothing to fit."""
    inp = small_example(tmp_path, {"Strain": "2 0 0 1 0"})
    with pytest.raises(ValueError, match=r"fitted rows: energy, stress\): .*set a non-zero "
                                         r"eweight/vweight"):
        mpisnap.fit(inp, overrides=["CALCULATOR.force=0"], write=False)


def test_huge_weight_fails_naming_the_group(tmp_path):
    inp = small_example(tmp_path, {"Strain": "2 0 1e300 1 1e-4"})
    with pytest.raises(ValueError, match=r"Cu_EMT\.in: \[GROUPS\] Strain: eweight: 1e\+300 is "
                                         r"too large \(at most 1e100\)"):
        mpisnap.fit(inp, write=False)


# -- data -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, fragment", [
    (lambda c: c["Positions"][1].__setitem__(0, 1e300), "Positions: atom 1 x is 1e+300 Å"),
    (lambda c: c["Lattice"][0].__setitem__(0, 1e300), "Lattice: cell vector 0 x is 1e+300 Å"),
    (lambda c: c.__setitem__("Energy", 1e300), "Energy: 1e+300 eV"),
    (lambda c: c["Forces"][2].__setitem__(1, -1e300), "Forces: atom 2 y is -1e+300 eV/Å"),
], ids=["Positions", "Lattice", "Energy", "Forces"])
def test_absurd_data_fails_naming_the_file(tmp_path, change, fragment):
    """These used to fit (positions, energies, forces) or overflow (lattice) silently."""
    inp = small_example(tmp_path)
    bad = edit_first_json(inp, "Strain", change)
    with pytest.raises(ValueError) as info:
        mpisnap.fit(inp, write=False)
    msg = str(info.value)
    assert str(bad) in msg and fragment in msg and "not physical" in msg, msg


def test_configuration_from_any_reader_is_checked():
    """A third-party reader's records get the same checks, naming the configuration."""
    pos = np.zeros((2, 3))
    cell = 4.0 * np.eye(3)
    with pytest.raises(ValueError, match=r"^G/c7: positions: atom 1 z is 1e\+300 Å"):
        Configuration("G/c7", "G", np.array([[0, 0, 0], [0, 0, 1e300]]), cell, (True,) * 3,
                      ("Cu", "Cu"))
    with pytest.raises(ValueError, match=r"^G/c7: forces: expected shape \(2, 3\), got \(3, 3\)"):
        Configuration("G/c7", "G", pos, cell, (True,) * 3, ("Cu", "Cu"), -1.0, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"^G/c7: stress: component xx is not finite"):
        Configuration("G/c7", "G", pos, cell, (True,) * 3, ("Cu", "Cu"), -1.0, None,
                      np.diag([np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"^G/c7: energy: -3e\+08 eV for 2 atoms"):
        Configuration("G/c7", "G", pos, cell, (True,) * 3, ("Cu", "Cu"), -3e8)
    c = Configuration("G/c7", "G", pos, cell, (True,) * 3, ("Cu", "Cu"), -1.9e8, np.ones((2, 3)),
                      1e11 * np.eye(3))
    assert c.natoms == 2


def test_cutoff_far_too_large_is_explained(tmp_path):
    inp = small_example(tmp_path, {"Strain": "1 0 100.0 1.0 1.0e-4"})
    with pytest.raises(ValueError, match=r"^Strain/strain_\d+\.json: atom \d+ has \d+ neighbour "
                                         r"images within the cutoff 50 Å \(rcutfac 50 × 2 × "
                                         r"radelem 0\.5\); .*at most 20000: is rcutfac too "
                                         r"large\?") as info:
        mpisnap.fit(inp, overrides=["BISPECTRUM.rcutfac=50"], write=False)
    assert "on top of each other" not in str(info.value)


# -- predict --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def result(tmp_path_factory):
    inp = small_example(tmp_path_factory.mktemp("fit"), {"Strain": "3 0 100.0 1.0 1.0e-4"})
    return mpisnap.fit(inp, overrides=["BISPECTRUM.twojmax=2"], write=False)


@pytest.mark.parametrize("args, kwargs, error, fragment", [
    ((Atoms(),), {}, ValueError, "predict: the structure has no atoms"),   # ZeroDivisionError
    (("Cu",), {}, TypeError, "predict: atoms must be an ase.Atoms"),       # AttributeError
    ((), {"positions": np.zeros((1, 3))}, ValueError, "predict: give an ase.Atoms, or positions"),
    ((), {"positions": np.zeros((2, 3)), "symbols": "CuCu"}, TypeError,
     "predict: symbols must be a list of element names"),
    ((), {"positions": np.zeros((2, 3)), "symbols": ["Cu"] * 3}, ValueError,
     "predict: positions: expected shape (3, 3), got (2, 3)"),
    ((), {"positions": [[0, 0, 0], [1.8, 1.8, 0]], "symbols": ["Cu", "Cu"],
          "cell": 3.6 * np.eye(3), "pbc": (1, 1)}, ValueError,                # numpy broadcast
     "predict: pbc must be one flag or 3 flags"),
    ((), {"positions": [[0, 0, 0], [1e300, 0, 0]], "symbols": ["Cu", "Cu"], "pbc": False},
     ValueError, "predict: positions: atom 1 x is 1e+300 Å"),
])
def test_predict_rejects_bad_structures_clearly(result, args, kwargs, error, fragment):
    with pytest.raises(error, match="^" + re.escape(fragment)):
        result.predict(*args, **kwargs)


def test_predict_spellings_agree(result):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    ref = result.predict(atoms)
    same = result.predict(positions=atoms.positions, symbols=["Cu"] * 4, cell=atoms.cell[:],
                          pbc=1)
    assert same["energy"] == ref["energy"]
    np.testing.assert_array_equal(same["forces"], ref["forces"])
