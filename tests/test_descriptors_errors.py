"""Bad input raises a clear ValueError (never a crash, a hang or a silent wrong number)."""
import re

import numpy as np
import pytest

from mpisnap import Descriptor
from mpisnap.testing import structures as S


@pytest.fixture
def d():
    return Descriptor(type=["Ta", "W"], twojmax=4, threads=1)


@pytest.fixture
def s():
    return S.bcc_supercell((2, 2, 2), ntypes=2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_positions(d, s, bad):
    pos = s.positions.copy()
    pos[3, 1] = bad
    with pytest.raises(ValueError, match="atom 3 has a non-finite position"):
        d.compute(**{**s.kwargs(), "positions": pos})


@pytest.mark.parametrize("cell", [np.zeros((3, 3)), np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3]]),
                                  np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]])])
def test_zero_volume_cell(d, s, cell):
    with pytest.raises(ValueError, match="degenerate"):
        d.compute(**{**s.kwargs(), "cell": cell})


def test_non_finite_cell(d, s):
    cell = s.cell.copy()
    cell[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        d.compute(**{**s.kwargs(), "cell": cell})


def test_unknown_element(d, s):
    with pytest.raises(ValueError, match="element 'Mo' is not one of"):
        d.compute(positions=s.positions[:2], cell=s.cell, pbc=True, symbols=["Ta", "Mo"])


def test_type_index_out_of_range(d, s):
    with pytest.raises(ValueError, match="types must lie in 0..1"):
        d.compute(**{**s.kwargs(), "types": s.types + 1})


@pytest.mark.parametrize("kw, msg", [
    (dict(rcutfac=-1.0), "rcutfac must be a positive"),
    (dict(rcutfac=float("nan")), "rcutfac must be a positive"),
    (dict(twojmax=-2), "twojmax must be >= 0"),
    (dict(rfac0=1.5), "rfac0 must lie in"),
    (dict(radelem=[0.5, -0.1]), "radelem must be positive"),
    (dict(radelem=[0.5, 0.5, 0.5]), "radelem needs 1 or 2 values"),
    (dict(switchflag=2), "switchflag must be 0 or 1"),
    (dict(switchinnerflag=1, dinner=0.0), "dinner must be > 0"),
    (dict(numTypes=3), "numTypes = 3"),
    (dict(type=["Ta", "Ta"]), "twice"),
])
def test_bad_parameters(kw, msg):
    args = dict(type=["Ta", "W"], twojmax=4)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        Descriptor(**args)


@pytest.mark.parametrize("field, value, msg", [
    ("positions", np.zeros((16, 2)), "positions must have shape"),
    ("types", np.zeros(5, dtype=int), r"types must have shape \(16,\)"),
    ("types", np.zeros(16), "types must be integers"),
    ("cell", np.eye(2), "cell must have shape"),
])
def test_mismatched_shapes(d, s, field, value, msg):
    with pytest.raises(ValueError, match=msg):
        d.compute(**{**s.kwargs(), field: value})


def test_batch_names_the_bad_configuration(d, s):
    pos = s.positions.copy()
    pos[0, 0] = np.nan
    good = s.kwargs()
    bad = {**good, "positions": pos}
    with pytest.raises(ValueError, match="configuration 2: atom 0 has a non-finite position"):
        d.compute_batch([good, good, bad, good], threads=2)


def test_cell_far_too_thin_for_cutoff(d, s):
    cell = np.diag([1e-6, 10.0, 10.0])
    with pytest.raises(ValueError, match="too thin"):
        d.compute(positions=s.positions[:2] * 0, cell=cell, pbc=True, types=[0, 1])


def test_atoms_on_top_of_each_other_in_a_tiny_cell(d):
    """The core's neighbour limit, explained: the atom, its count, the cutoff, the cause."""
    cell = np.diag([0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match=r"atom 0 has \d+ neighbour images within the cutoff "
                       r"4\.676 Å .*at most 20000: that is 125 atoms/Å³.*cell far too small"):
        d.compute(positions=np.zeros((1, 3)), cell=cell, pbc=True, types=[0])


def test_atoms_on_top_of_each_other(d, s):
    pos = s.positions.copy()
    pos[5] = pos[2]
    with pytest.raises(ValueError, match="atom 2 sits on atom 5"):
        d.compute(**{**s.kwargs(), "positions": pos})


# -- parameters are checked at the API boundary, never silently converted ----------------------

@pytest.mark.parametrize("kw, error, msg", [
    (dict(twojmax=6.5), TypeError, "twojmax must be an integer, got float 6.5"),  # was 6
    (dict(twojmax=True), TypeError, "twojmax must be an integer, got bool True"),  # was 1
    (dict(twojmax=[4, 6.0]), TypeError, "twojmax must be an integer, got float 6.0"),
    (dict(twojmax=10**12), ValueError, "twojmax must be <= 24, got 1000000000000"),
    (dict(twojmax=26), ValueError, "twojmax must be <= 24"),
    (dict(switchflag=0.5), TypeError, "switchflag must be 0 or 1, got float 0.5"),  # was 0
    (dict(quadraticflag="1"), TypeError, "quadraticflag must be 0 or 1, got str '1'"),
    (dict(chemflag=2), ValueError, "chemflag must be 0 or 1, got 2"),
    (dict(rcutfac=True), TypeError, "rcutfac must be a number, got bool True"),
    (dict(rcutfac=float("inf")), ValueError, "rcutfac must be a positive finite number"),
    (dict(rfac0=None), TypeError, "rfac0 must be a number, got NoneType"),
    (dict(wj=[1.0, float("nan")]), ValueError, "wj must be a finite number, got nan"),
    (dict(radelem="0.5 half"), ValueError, "radelem must be a number, got 'half'"),
    (dict(threads=2.5), TypeError, "threads must be an integer, got float 2.5"),  # was 2
    (dict(threads=0), ValueError, "threads must be >= 1, got 0"),
    (dict(numTypes=2.0), TypeError, "numTypes must be an integer"),
    (dict(type=5), TypeError, "type must be element names"),
])
def test_parameters_are_not_silently_converted(kw, error, msg):
    args = dict(type=["Ta", "W"], twojmax=4)
    args.update(kw)
    with pytest.raises(error, match=re.escape(msg)):
        Descriptor(**args)


def test_accepted_parameter_spellings_give_the_same_descriptor(s):
    """Flags as bools or 0/1 (numpy integers too), numbers as text, twojmax per type."""
    a = Descriptor(type=["Ta", "W"], twojmax=4, rcutfac=4.5, switchflag=1, bzeroflag=0, threads=1)
    b = Descriptor(type="Ta W", twojmax=[np.int64(4), 4], rcutfac="4.5", switchflag=True,
                   bzeroflag=np.int32(0), threads=np.int64(1))
    assert (b.twojmax, b.rcutfac, b.switchflag, b.bzeroflag) == (4, 4.5, True, False)
    np.testing.assert_array_equal(a.compute(**s.kwargs()).B, b.compute(**s.kwargs()).B)


@pytest.mark.parametrize("pbc", [(1, 1), (1, 1, 2), "yes", (True, False, True, True),
                                 [[1, 1, 1]], 0.5])
def test_bad_pbc(d, s, pbc):
    with pytest.raises(ValueError, match=r"^pbc must be one flag or 3 flags \(x, y, z\)"):
        d.compute(**{**s.kwargs(), "pbc": pbc})


def test_pbc_spellings_agree(d, s):
    kw = s.kwargs()
    ref = d.compute(**{**kw, "pbc": (True, True, True)}).B
    for pbc in (True, 1, (1, 1, 1), np.ones(3, bool), [np.int64(1)] * 3):
        np.testing.assert_array_equal(d.compute(**{**kw, "pbc": pbc}).B, ref)
    assert not np.array_equal(d.compute(**{**kw, "pbc": (1, 0, 1)}).B, ref)


def test_atoms_must_be_atoms(d):
    with pytest.raises(TypeError, match="atoms must be an ase.Atoms .*got str 'Ta'"):
        d.compute("Ta")


@pytest.mark.parametrize("value", [1e300, -2e8])
def test_nonsense_position(d, s, value):
    """Finite but absurd coordinates (a unit error, corrupt data) are named, not computed."""
    pos = s.positions.copy()
    pos[3, 1] = value
    with pytest.raises(ValueError, match=re.escape(f"atom 3 has position component {value:.6g} "
                                                   "Å; coordinates beyond ±1e8 Å")):
        d.compute(**{**s.kwargs(), "positions": pos})


def test_nonsense_cell(d, s):
    cell = s.cell.copy()
    cell[2, 2] = 1e300
    with pytest.raises(ValueError, match=r"cell vector 2 has a component 1e\+300 Å"):
        d.compute(**{**s.kwargs(), "cell": cell})


# -- the core's neighbour limit, explained with the numbers -------------------------------------

def _cu(a=3.6):
    from ase.build import bulk

    return bulk("Cu", "fcc", a=a, cubic=True)


def test_cutoff_far_too_large_names_atom_count_cutoff_and_limit():
    """rcutfac = 50: the message gives the atom, its exact number of neighbour images (checked
    against ASE's neighbour list), the cutoff and how it is made, the core's limit and the
    likely cause — not "atoms on top of each other"."""
    from ase.neighborlist import neighbor_list

    atoms = _cu()
    d = Descriptor(type=["Cu"], twojmax=2, rcutfac=50, radelem=0.5, threads=1)
    with pytest.raises(ValueError) as info:
        d.compute(atoms)
    msg = str(info.value)
    m = re.fullmatch(r"atom (\d) has (\d+) neighbour images within the cutoff 50 Å "
                     r"\(rcutfac 50 × 2 × radelem 0\.5\); the descriptor core allows at most "
                     r"20000: is rcutfac too large\? .*", msg)
    assert m, msg
    i = neighbor_list("i", atoms, 50.0)
    assert int(m.group(2)) == np.bincount(i)[int(m.group(1))] > 20000
    assert "on top of each other" not in msg


def test_cutoff_limit_in_a_batch_names_the_configuration():
    d = Descriptor(type=["Cu"], twojmax=2, rcutfac=30, radelem=0.5, threads=2)
    small = _cu()
    dense = _cu(a=2.0)  # 0.5 atoms/Å³: about 57000 images within 30 Å; 3.6 Å: 9700
    with pytest.raises(ValueError, match=r"^configuration 1: atom \d has \d+ neighbour images "
                                         r"within the cutoff 30 Å"):
        d.compute_batch([small.copy(), dense, small.copy()])

