"""Bad input raises a clear ValueError (never a crash, a hang or a silent wrong number)."""
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
    cell = np.diag([0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="neighbours within the cutoff"):
        d.compute(positions=np.zeros((1, 3)), cell=cell, pbc=True, types=[0])


def test_atoms_on_top_of_each_other(d, s):
    pos = s.positions.copy()
    pos[5] = pos[2]
    with pytest.raises(ValueError, match="atom 2 sits on atom 5"):
        d.compute(**{**s.kwargs(), "positions": pos})
