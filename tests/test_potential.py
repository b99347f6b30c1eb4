"""mpisnap.potential: reading .snapcoeff/.snapparam files and LAMMPS include files (the subset
published SNAP potentials and mpisnap's .mod use), and one-line errors naming file and line;
writing them: what is written reads back bit for bit, and a fitted potential's .mod runs in
LAMMPS with the energies and forces the fit result predicts."""
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

import mpisnap
import mpisnap.potential as P
from mpisnap import Descriptor
from mpisnap.potential import (SNAPPARAM_DEFAULTS, PotentialError, SnapStyle, ZBLStyle,
                               coefficient_labels, descriptor_parameters, read_potential,
                               read_snapcoeff, read_snapparam, snap_parameters, snapcoeff_text,
                               snapparam_text, write_mod, write_snap_potential, write_snapcoeff,
                               write_snapparam)
from mpisnap.testing.lammps_potential import evaluate_include
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
     r"p\.mod line 1: file 'a\.model' not found"),
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


# -- writing ------------------------------------------------------------------------------------

ROUND_TRIP = {  # elements, descriptor flags
    "linear": (["Ta", "W", "Be"], dict(twojmax=4, bzeroflag=0)),
    "linear, inner switching": (["A", "B"], dict(twojmax=2, switchflag=0, switchinnerflag=1,
                                                 sinner=[1.3, 1.5], dinner=[0.25, 0.35],
                                                 rmin0=0.3, wselfallflag=1)),
    "quadratic": (["Mo"], dict(twojmax=4, quadraticflag=1)),
    "chem": (["In", "P"], dict(twojmax=2, chemflag=1, bnormflag=1)),
}


@pytest.mark.parametrize("case", list(ROUND_TRIP))
def test_written_files_read_back_exactly(tmp_path, case):
    """write_snap_potential -> read_snapcoeff / snap_parameters / read_potential give back the
    same elements, per-element radelem and wj, coefficients (bit for bit, over 24 decades) and
    parameters; writing what was read gives the same text again."""
    elements, flags = ROUND_TRIP[case]
    nel = len(elements)
    rng = np.random.default_rng(len(case))
    radelem = [0.5 - 0.03 * k for k in range(nel)]
    wj = [1.0 - 0.1234567 * k for k in range(nel)]
    d = Descriptor(type=elements, rcutfac=4.1, rfac0=0.97, radelem=radelem, wj=wj, threads=1,
                   **flags)
    coeff = rng.normal(size=(nel, 1 + d.nvalues)) * 10.0 ** rng.uniform(-12, 12, 1 + d.nvalues)
    blocks = dict(zip(elements, coeff))
    ref = ("hybrid/overlay zero 10.0 zbl 2.0 3.0", ["* * zero"] + [
        f"{i + 1} {j + 1} zbl {3 + i} {3 + j}" for i in range(nel) for j in range(i, nel)])
    files = write_snap_potential(tmp_path / "pot" / "x", d, blocks, names_as="pot/x",
                                 reference_style=ref[0], reference_coeffs=ref[1])
    assert files == [str(tmp_path / "pot" / f"x.{s}") for s in ("snapcoeff", "snapparam", "mod")]
    els, rw, back = read_snapcoeff(files[0])
    assert els == elements
    assert rw == {el: (d.radelem[k], d.wj[k]) for k, el in enumerate(elements)}
    for el in elements:
        assert np.array_equal(back[el], blocks[el])
    params = snap_parameters(files[1])
    assert params == {**SNAPPARAM_DEFAULTS, **descriptor_parameters(d)}
    assert (params["twojmax"], params["rcutfac"], params["rfac0"]) == (d.twojmax, 4.1, 0.97)
    pot = read_potential(files[2])
    (_, snap), (_, zbl) = pot.terms
    assert isinstance(snap, SnapStyle) and isinstance(zbl, ZBLStyle)
    assert snap.elements == tuple(elements) and pot.type_elements == tuple(elements)
    assert np.array_equal(snap.coefficients, coeff)
    assert (snap.radelem, snap.wj) == (tuple(d.radelem), tuple(d.wj))
    assert descriptor_parameters(snap.descriptor) == descriptor_parameters(d)
    assert (zbl.inner, zbl.outer) == (2.0, 3.0) and zbl.charges[(0, nel - 1)] == (3, 2 + nel)
    # the plain-data writers: what the readers return writes the same text again
    ctext, ptext = (Path(f).read_text() for f in files[:2])
    c2, p2 = tmp_path / "y.snapcoeff", tmp_path / "y.snapparam"
    write_snapcoeff(c2, els, [rw[e][0] for e in els], [rw[e][1] for e in els], back,
                    labels=coefficient_labels(d), comment=ctext.splitlines()[0][2:])
    write_snapparam(p2, params, comment=ptext.splitlines()[0][2:])
    assert c2.read_text() == ctext and p2.read_text() == ptext


@pytest.mark.parametrize("name", ["Ta06A", "WBe_Wood_PRB2019", "Mo_Zuo_JPCA2020.quadratic",
                                  "InP_JCPA2020"])
def test_published_potentials_rewritten(tmp_path, name):
    """A published potential read, written with the plain-data writers and read again: the same
    numbers, and the same Potential (.mod with the published ZBL part)."""
    pot = read_potential(potential_dir() / f"{name}.snap")
    snap = pot.terms[0][1]
    write_snapcoeff(tmp_path / "p.snapcoeff", snap.elements, snap.radelem, snap.wj,
                    snap.coefficients)
    write_snapparam(tmp_path / "p.snapparam", snap.parameters)
    zbl = [s for _, s in pot.terms if isinstance(s, ZBLStyle)]
    kw = {}
    if zbl:
        z = zbl[0]
        kw = dict(reference_style=f"zbl {z.inner!r} {z.outer!r}",
                  reference_coeffs=[f"{i + 1} {j + 1} {zi!r} {zj!r}"
                                    for (i, j), (zi, zj) in sorted(z.charges.items())])
    write_mod(tmp_path / "p.mod", "p.snapcoeff", "p.snapparam", snap.elements, **kw)
    again = read_potential(tmp_path / "p.mod")
    s2 = again.terms[0][1]
    assert np.array_equal(s2.coefficients, snap.coefficients)
    assert (s2.elements, s2.radelem, s2.wj) == (snap.elements, snap.radelem, snap.wj)
    assert s2.parameters == snap.parameters
    if zbl:
        z2 = again.terms[1][1]
        assert (z2.inner, z2.outer, z2.charges) == (z.inner, z.outer, z.charges)
    else:
        assert len(again.terms) == 1


@pytest.mark.parametrize("style,coeffs,expected", [
    (None, (), ["pair_style snap", "pair_coeff * * X.snapcoeff X.snapparam In P"]),
    ("zbl 4.0 4.8", ["* * 73 73"],
     ["pair_style hybrid/overlay zbl 4.0 4.8 snap", "pair_coeff * * zbl 73 73",
      "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
    ("hybrid/overlay zero 10.0 zbl 4.0 4.2", ["* * zero", "1 1 zbl 49 49"],
     ["pair_style hybrid/overlay zbl 4.0 4.2 snap", "pair_coeff 1 1 zbl 49 49",
      "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
    ("hybrid/overlay zbl 4.0 4.2 zero 10.0 nocoeff", ["pair_coeff 1 1 zbl 49 49"],
     ["pair_style hybrid/overlay zbl 4.0 4.2 snap", "pair_coeff 1 1 zbl 49 49",
      "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
    ("hybrid zbl 4.0 4.2 table linear 100", ["1 1 zbl 49 49", "2 2 table t.tab PP"],
     ["pair_style hybrid/overlay zbl 4.0 4.2 table linear 100 snap", "pair_coeff 1 1 zbl 49 49",
      "pair_coeff 2 2 table t.tab PP", "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
    ("hybrid/scaled 0.5 zbl 4.0 4.2", ["* * zbl 49 49"],
     ["pair_style hybrid/scaled 0.5 zbl 4.0 4.2 1.0 snap", "pair_coeff * * zbl 49 49",
      "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
    ("hybrid/overlay zero 10.0", ["* * zero"],
     ["pair_style snap", "pair_coeff * * X.snapcoeff X.snapparam In P"]),
    ("zero 8.0", ["* *"], ["pair_style snap", "pair_coeff * * X.snapcoeff X.snapparam In P"]),
    # a single style's cross pairs that LAMMPS mixes alone but not inside hybrid/overlay
    ("zbl 4.0 4.8", ["1 1 49 49", "pair_coeff 2 2 15 15"],
     ["pair_style hybrid/overlay zbl 4.0 4.8 snap", "pair_coeff 1 1 zbl 49 49",
      "pair_coeff 2 2 zbl 15 15", "pair_coeff 1 2 zbl 49 15",
      "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
    ("zbl 4.0 4.8", ["* * 49 49", "2 2 15 15"],
     ["pair_style hybrid/overlay zbl 4.0 4.8 snap", "pair_coeff * * zbl 49 49",
      "pair_coeff 2 2 zbl 15 15", "pair_coeff * * snap X.snapcoeff X.snapparam In P"]),
])
def test_pair_commands(style, coeffs, expected):
    assert P.snap_pair_commands("X.snapcoeff", "X.snapparam", ["In", "P"], reference_style=style,
                                reference_coeffs=coeffs) == expected


@pytest.mark.parametrize("style,coeffs,match", [
    ("lj/cut 5.0", ["1 1 1.0 2.0", "2 2 1.5 2.5"], r"\[REFERENCE\] pair_style lj/cut leaves type "
                                                   r"pair\(s\) 1 2 to LAMMPS's mixing"),
    ("zbl 4.0 4.8", ["1 1 49 49"], r"zbl leaves type pair\(s\) 1 2 to"),
    ("zbl 4.0 4.8", ["1 3 49 49"], r"\[REFERENCE\] pair_coeff 1 3 49 49: atom type spec '3'"),
])
def test_pair_commands_refuse_unmixed_pairs(style, coeffs, match):
    with pytest.raises(ValueError, match=match):
        P.snap_pair_commands("X.snapcoeff", "X.snapparam", ["In", "P"], reference_style=style,
                             reference_coeffs=coeffs)


@pytest.mark.parametrize("args, match", [
    ((["Ta"], [0.5], [1.0], {"Ta": [0.0, np.nan]}), "coefficient block of Ta has non-finite"),
    ((["Ta", "W"], [0.5], [1.0, 1.0], {"Ta": [0.0], "W": [0.0]}), "2 elements need 2 radelem"),
    ((["Ta", "W"], [0.5, 0.5], [1.0, 1.0], {"Ta": [0.0, 1.0], "W": [0.0]}),
     "coefficient block of W has 1 values, expected 2"),
    ((["Ta"], [0.5], [1.0], {"W": [0.0]}), "no coefficient block for element"),
    ((["Ta W"], [0.5], [1.0], [[0.0]]), "cannot be written"),
])
def test_snapcoeff_writer_errors(args, match):
    with pytest.raises(ValueError, match=match):
        snapcoeff_text(*args)


@pytest.mark.parametrize("params, match", [
    ({"twojmax": 2}, "'rcutfac' is required"),
    ({"rcutfac": 4.0, "twojmax": 2, "bogus": 1}, "unknown .snapparam keyword"),
    ({"rcutfac": 4.0, "twojmax": 2.5}, "twojmax must be an integer"),
    ({"rcutfac": 4.0, "twojmax": 2, "chemflag": 2}, "chemflag must be 0 or 1"),
    ({"rcutfac": 4.0, "twojmax": 2, "switchinnerflag": 1}, "switchinnerflag 1 needs sinner"),
])
def test_snapparam_writer_errors(params, match):
    with pytest.raises(ValueError, match=match):
        snapparam_text(params)


def emt_dataset(folder, bisp: str, reference: str = "", n: int = 5):
    """Cu/Ni alloys labelled by ASE's EMT as FitSNAP JSON, with a FitSNAP input file."""
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(7)
    (folder / "JSON" / "all").mkdir(parents=True)
    for k in range(n):
        at = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
        at.set_chemical_symbols(["Cu" if rng.random() < 0.6 else "Ni" for _ in range(len(at))])
        at.set_cell(np.array(at.cell) @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))).T,
                    scale_atoms=True)
        at.positions += rng.normal(scale=0.1, size=at.positions.shape)
        at.calc = EMT()
        data = {"Positions": at.positions.tolist(), "Lattice": np.array(at.cell).tolist(),
                "AtomTypes": at.get_chemical_symbols(), "NumAtoms": len(at),
                "Energy": at.get_potential_energy(), "Forces": at.get_forces().tolist(),
                "Stress": np.zeros((3, 3)).tolist()}
        (folder / "JSON" / "all" / f"c{k}.json").write_text(json.dumps({"Dataset": {
            "Data": [data], "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
            "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
            "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol"}}))
    path = folder / "fit.in"
    path.write_text(f"""[BISPECTRUM]
numTypes = 2
type = Cu Ni
rcutfac = 4.2
radelem = 0.5 0.47
wj = 1.0 0.93
{bisp}
[CALCULATOR]
calculator = LAMMPSSNAP
energy = 1
force = 1
stress = 0
[SOLVER]
solver = SVD
[SCRAPER]
scraper = JSON
[PATH]
dataPath = JSON
[OUTFILE]
potential = pot/CuNi
{reference}
[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
all = 1.0 0.0 10.0 1.0 0.0
""")
    return path


FITS = {
    "linear, zbl reference": ("twojmax = 4\nbzeroflag = 0", "[REFERENCE]\nunits = metal\n"
                              "atom_style = atomic\npair_style = zbl 2.0 2.6\n"
                              "pair_coeff1 = 1 1 29 29\npair_coeff2 = 2 2 28 28"),
    "quadratic": ("twojmax = 2\nquadraticflag = 1\nbzeroflag = 1", ""),
    "chem, hybrid reference": ("twojmax = 2\nchemflag = 1\nbnormflag = 1\nbzeroflag = 1",
                               "[REFERENCE]\nunits = metal\natom_style = atomic\npair_style = "
                               "hybrid/overlay zero 10.0 zbl 2.0 2.6\npair_coeff1 = * * zero\n"
                               "pair_coeff2 = 1 1 zbl 29 29\npair_coeff3 = 1 2 zbl 29 28\n"
                               "pair_coeff4 = 2 2 zbl 28 28"),
}


@pytest.mark.parametrize("case", list(FITS))
def test_fitted_mod_runs_in_lammps_as_predicted(tmp_path, case):
    """The .mod of a fit (SNAP + the reference potential) included in LAMMPS gives the energy
    and forces FitResult.predict gives, to 1e-9; read_potential gives them too."""
    inp = emt_dataset(tmp_path, *FITS[case])
    result = mpisnap.fit(inp, output_dir=tmp_path / "out", threads=1)
    mod = tmp_path / "out" / "pot" / "CuNi.mod"
    assert str(mod) in result.files
    at = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 2, 2))
    rng = np.random.default_rng(11)
    at.set_chemical_symbols(["Ni" if rng.random() < 0.4 else "Cu" for _ in range(len(at))])
    at.positions += rng.normal(scale=0.12, size=at.positions.shape)
    pred = result.predict(at)
    assert abs(pred["energy"]) > 1.0 and np.abs(pred["forces"]).max() > 0.1
    types = [1 if s == "Cu" else 2 for s in at.get_chemical_symbols()]
    # LAMMPS runs from the output folder, as the .mod names its files relative to it
    lmp = evaluate_include(at.positions, np.array(at.cell), (True,) * 3, types, mod,
                           cutoff=2 * 0.5 * 4.2, ntypes=2, cwd=tmp_path / "out")
    assert abs(lmp["energy"] - pred["energy"]) <= 1e-9 * abs(pred["energy"])
    scale = np.abs(pred["forces"]).max()
    assert np.abs(lmp["forces"] - pred["forces"]).max() <= 1e-9 * scale
    ours = read_potential(mod).predict(at, threads=1)
    assert abs(ours.energy - pred["energy"]) <= 1e-9 * abs(pred["energy"])
    assert np.abs(ours.forces - pred["forces"]).max() <= 1e-9 * scale
