"""mpisnap descriptors against LAMMPS ``compute snap``: the flag sets and structures the tests and
``scripts/compare_lammps.py`` use, and the comparison itself (max-abs-normalised differences)."""
import numpy as np

from mpisnap import Descriptor
from mpisnap.testing import structures as S
from mpisnap.testing import lammps as lmp

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



STRUCTURES = {
    "2-atom cell smaller than cutoff": S.small_cell,
    "strongly triclinic": S.triclinic,
    "non-periodic cluster": S.cluster,
    "atom without neighbours": lambda ntypes: S.cluster(ntypes, isolated=True),
    "mixed boundaries": S.slab,
}


def flag_set_structure(name):
    """The structure the flag set ``name`` is compared on."""
    _, ntypes = FLAG_SETS[name]
    return S.bcc_supercell((3, 3, 3), ntypes=ntypes, displacement=0.12, seed=len(name))
