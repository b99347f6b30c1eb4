"""mpisnap.potential: reading .snapcoeff/.snapparam files and LAMMPS include files (the subset
published SNAP potentials and mpisnap's .mod use), and one-line errors naming file and line."""
import numpy as np
import pytest
from ase.build import bulk

from mpisnap.potential import (PotentialError, SnapStyle, ZBLStyle, read_potential,
                               read_snapcoeff, read_snapparam, snap_parameters)
from mpisnap.testing.teachers import potential_dir

HEAD = "# a comment\n\n"


def snapcoeff(elements=("Ta",), n=6, extra=""):
    lines = [f"{len(elements)} {n}"]
    for k, el in enumerate(elements):
        lines.append(f"{el} {0.5 + 0.1 * k} {1.0 - 0.1 * k}")
        lines += [f"{0.01 * (i + 1) * (k + 1)!r}  # B[{i}]" for i in range(n)]
    return HEAD + "\n".join(lines) + "\n" + extra


def write(folder, name, text):
    p = folder / name
    p.write_text(text)
    return p


def test_published_files_are_read():
    els, params, coeffs = read_snapcoeff(potential_dir() / "WBe_Wood_PRB2019.snapcoeff")
    assert els == ["W", "Be"] and params["W"] == (0.5, 1.0)
    assert coeffs["W"].shape == (56,) and coeffs["Be"].shape == (56,)
    assert coeffs["W"][1] == -0.001487061994
    els, params, coeffs = read_snapcoeff(potential_dir() / "InP_JCPA2020.snapcoeff")
    assert els == ["In", "P"] and params["In"] == (3.81205, 1.0) and coeffs["P"].shape == (241,)
    p = snap_parameters(potential_dir() / "InP_JCPA2020.snapparam")
    assert (p["twojmax"], p["chemflag"], p["bnormflag"], p["wselfallflag"]) == (6, 1, 1, 1)
    assert p["switchflag"] == 1 and p["rcutfac"] == 1.0  # LAMMPS default, given value
    p = snap_parameters(potential_dir() / "Ta06A.snapparam")
    assert p["bzeroflag"] == 0 and p["quadraticflag"] == 0 and p["rcutfac"] == 4.67637
    assert read_snapparam(potential_dir() / "Mo_Zuo_JPCA2020.quadratic.snapparam")[
        "quadraticflag"] == "1"


def test_published_include_files():
    pot = read_potential(potential_dir() / "Ta06A.snap")
    (s1, snap), (s2, zbl) = pot.terms
    assert isinstance(snap, SnapStyle) and isinstance(zbl, ZBLStyle) and s1 == s2 == 1.0
    assert pot.type_elements == ("Ta",) and snap.coefficients.shape == (1, 31)
    assert (zbl.inner, zbl.outer, zbl.charges) == (4.0, 4.8, {(0, 0): (73.0, 73.0)})
    pot = read_potential(potential_dir() / "WBe_Wood_PRB2019.snap")
    zbl = pot.terms[1][1]
    assert pot.type_elements == ("W", "Be")
    assert zbl.charges == {(0, 0): (74.0, 74.0), (0, 1): (74.0, 4.0), (1, 1): (4.0, 4.0)}
    pot = read_potential(potential_dir() / "InP_JCPA2020.snap")  # index-style variables
    assert pot.terms[1][1].outer == 4.2 and pot.terms[0][1].coefficients.shape == (2, 241)
    pot = read_potential(potential_dir() / "Mo_Zuo_JPCA2020.quadratic.snap")
    assert len(pot.terms) == 1 and pot.terms[0][1].coefficients.shape == (1, 496)


def test_include_syntax(tmp_path):
    """Comments, continuations, equal/index/string variables with formulas, ${NAME} and $x,
    quotes, nested include files, hybrid/scaled factors and ignored harmless commands."""
    write(tmp_path, "a.snapcoeff", snapcoeff(("Ta", "W"), n=6))
    write(tmp_path, "a.snapparam", "rcutfac 4.7  # cutoff\ntwojmax 2\n\nbzeroflag 0\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "zbl.mod", "pair_coeff 1 1 zbl ${z1} ${z1}\npair_coeff 2 2 zbl $w $w\n"
                          "pair_coeff 2 1 zbl $w ${z1}  # reversed order\n")
    text = """# potential
units metal
variable inner equal 2.0*2   # a formula
variable outer equal v_inner+0.5^2*4
variable z1 index 73
variable z1 index 99          # an index variable keeps its first value
variable w string 74
mass 1 180.9
pair_style hybrid/scaled 0.5 zbl ${inner} &
    ${outer} 1.0 snap
pair_coeff * * snap "a.snapcoeff" a.snapparam Ta W
include sub/zbl.mod
neighbor 1.0 bin
"""
    pot = read_potential(write(tmp_path, "pot.mod", text))
    (sz, zbl), (ss, snap) = sorted(pot.terms, key=lambda t: t[1].name != "zbl")
    assert (sz, ss) == (0.5, 1.0)
    assert (zbl.inner, zbl.outer) == (4.0, 5.0)
    assert zbl.charges == {(0, 0): (73.0, 73.0), (1, 1): (74.0, 74.0), (0, 1): (73.0, 74.0)}
    assert snap.elements == ("Ta", "W") and snap.parameters["twojmax"] == 2
    assert snap.radelem == (0.5, 0.6) and snap.coefficients.shape == (2, 6)
    assert pot.cutoff == pytest.approx(2 * 0.6 * 4.7) and pot.elements == ["Ta", "W"]


def test_null_types_take_their_element_from_zbl(tmp_path):
    """``NULL`` in the snap line: that type's atoms are neither SNAP centres nor neighbours, its
    element comes from the zbl charges."""
    write(tmp_path, "a.snapcoeff", snapcoeff(("Ta",), n=6))
    write(tmp_path, "a.snapparam", "rcutfac 4.7\ntwojmax 2\n")
    pot = read_potential(write(tmp_path, "n.mod", "pair_style hybrid/overlay zbl 2.0 3.0 snap\n"
                                                  "pair_coeff * * snap a.snapcoeff a.snapparam "
                                                  "NULL Ta\npair_coeff 1 1 zbl 4 4\n"))
    assert pot.type_elements == ("Be", "Ta")
    atoms = bulk("Ta", "bcc", a=3.3, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=1)
    sym = atoms.get_chemical_symbols()
    sym[3] = "Be"
    atoms.set_chemical_symbols(sym)
    snap = pot.terms[0][1]
    e, f, _ = snap.evaluate(atoms.positions, np.array(atoms.cell), atoms.pbc,
                            pot.types_of(sym), 1)
    ta = [i for i, s in enumerate(sym) if s == "Ta"]
    e2, f2, _ = snap.evaluate(atoms.positions[ta], np.array(atoms.cell), atoms.pbc,
                              pot.types_of(["Ta"] * len(ta)), 1)
    assert e[3] == 0 and np.all(f[3] == 0)
    assert np.allclose(e[ta], e2, rtol=0, atol=1e-14) and np.allclose(f[ta], f2, atol=1e-14)


def test_snapcoeff_path_reads_its_snapparam(tmp_path):
    write(tmp_path, "x.snapcoeff", snapcoeff(("Ta", "W"), n=6))
    write(tmp_path, "x.snapparam", "rcutfac 4.7\ntwojmax 2\n")
    pot = read_potential(tmp_path / "x.snapcoeff")
    assert pot.type_elements == ("Ta", "W") and len(pot.terms) == 1


@pytest.mark.parametrize("text, match", [
    ("1 6\nTa 0.5 1\n0.1\n\n0.2\n0.3\n0.4\n0.5\n",
     r"x\.snapcoeff line 4: expected one coefficient of element Ta, got ''"),
    ("1 6\nTa 0.5\n", r"x\.snapcoeff line 2: expected 'element radelem wj'"),
    ("1 6\nTa 0.5 1\n0.1\n0.2\n", r"x\.snapcoeff: file ends early"),
    ("one 6\n", r"x\.snapcoeff line 1: expected 'nelem ncoeffall'"),
    ("1 2\nTa 0.5 1\n0.1\nabc\n", r"x\.snapcoeff line 4: a coefficient must be a number, "
                                  r"got 'abc'"),
    ("# only comments\n\n", r"empty SNAP coefficient file"),
])
def test_snapcoeff_format_errors(tmp_path, text, match):
    write(tmp_path, "x.snapcoeff", text)
    with pytest.raises(PotentialError, match=match):
        read_snapcoeff(tmp_path / "x.snapcoeff")


@pytest.mark.parametrize("text, match", [
    ("rcutfac 4.7\ntwojmax 2\nbogus 1\n", r"x\.snapparam line 3: unknown keyword 'bogus'"),
    ("twojmax 2\n", r"x\.snapparam: required keyword 'rcutfac' is missing"),
    ("rcutfac 4.7\ntwojmax 2.5\n", r"x\.snapparam: twojmax must be an integer"),
    ("rcutfac 4.7\ntwojmax 2\nchemflag 2\n", r"chemflag must be 0 or 1"),
    ("rcutfac 4.7\ntwojmax 2\nswitchinnerflag 1\n", r"switchinnerflag 1 needs sinner and dinner"),
    ("rcutfac\n", r"x\.snapparam line 1: keyword 'rcutfac' needs a value"),
])
def test_snapparam_errors(tmp_path, text, match):
    write(tmp_path, "x.snapparam", text)
    with pytest.raises(PotentialError, match=match):
        snap_parameters(tmp_path / "x.snapparam")


SNAP = "pair_coeff * * a.snapcoeff a.snapparam Ta\n"


@pytest.mark.parametrize("text, match", [
    ("pair_style table linear 100\npair_coeff * * t.table X\n",
     r"^pair_style table is not supported \(.*p\.mod\); supported: snap, zbl"),
    ("pair_style hybrid/overlay snap lj/cut 5.0\n",
     r"^pair_style lj/cut is not supported \(.*p\.mod\)"),
    ("pair_style mliap model linear a.model descriptor sna a.desc\n",
     r"p\.mod line 1: pair_style mliap is not supported yet"),
    ("pair_style hybrid snap zbl 1 2\n", r"pair_style hybrid is not supported .*hybrid/overlay"),
    ("pair_style snap\npair_coeff * * b.snapcoeff a.snapparam Ta\n",
     r"p\.mod line 2: file 'b\.snapcoeff' not found \(looked in "),
    ("pair_style snap\npair_coeff * * a.snapcoeff a.snapparam W\n",
     r"a\.snapcoeff: no coefficients for element\(s\) W \(the file has Ta\)"),
    ("pair_style snap\npair_coeff 1 1 a.snapcoeff a.snapparam Ta\n",
     r"p\.mod line 2: snap needs 'pair_coeff \* \* "),
    ("variable x equal 2*\npair_style zbl ${x} 3\n", r"p\.mod line 2: cannot evaluate"),
    ("pair_style zbl ${nope} 3\n", r"p\.mod line 1: variable 'nope' is not defined"),
    ("variable x loop 3\n", r"p\.mod line 1: variable style 'loop' is not supported"),
    ("units real\n", r"p\.mod line 1: units real — only metal"),
    ("pair_modify shift yes\n", r"p\.mod line 1: command 'pair_modify' is not supported"),
    ("# nothing\n", r"p\.mod: no pair_style line"),
    ("pair_coeff * * a.snapcoeff a.snapparam Ta\n", r"p\.mod line 1: pair_coeff before"),
    ("pair_style hybrid/overlay zbl 1.0 2.0 snap\npair_coeff 1 1 eam 1 1\n" + "pair_coeff * * snap "
     "a.snapcoeff a.snapparam Ta\n", r"p\.mod line 2: pair_coeff in hybrid/overlay needs"),
    ("pair_style zbl 3.0 2.0\npair_coeff 1 1 73 73\n", r"p\.mod line 1: zbl: need 0 < inner"),
    ("pair_style hybrid/overlay snap snap\n", r"snap appears twice"),
])
def test_include_errors_name_file_and_line(tmp_path, text, match):
    write(tmp_path, "a.snapcoeff", snapcoeff(("Ta",), n=6))
    write(tmp_path, "a.snapparam", "rcutfac 4.7\ntwojmax 2\n")
    with pytest.raises(PotentialError, match=match) as info:
        read_potential(write(tmp_path, "p.mod", text))
    assert "\n" not in str(info.value)


def test_coefficient_count_must_fit_the_parameters(tmp_path):
    write(tmp_path, "a.snapcoeff", snapcoeff(("Ta",), n=7))
    write(tmp_path, "a.snapparam", "rcutfac 4.7\ntwojmax 2\nquadraticflag 1\n")
    with pytest.raises(PotentialError, match=r"a\.snapcoeff: 7 coefficients per element, but a "
                                             r"quadratic SNAP with twojmax 2 .* 1 \+ 20 = 21"):
        read_potential(tmp_path / "a.snapcoeff")
