"""Structures of ``mpisnap generate``: their parametrisation, random initial structures and the
``min_distance`` wall.

A structure of N atoms is described by the vector ``x = [u (3N), L0·ε (6), L0·log v (1)]``:

* the cell ``h = (N v)^{1/3} · (I + E) / det(I + E)^{1/3}`` (rows are the cell vectors): ``v`` the
  volume per atom, bounded by ``volume_per_atom``; ``E`` the symmetric distortion with the six
  components ``ε = (E_xx, E_yy, E_zz, E_yz, E_xz, E_xy)``, each bounded by ``max_strain``. The
  distortion does not change the volume; no rotation is represented;
* the atoms at fractional coordinates ``s = u / L0``, so Cartesian positions are ``r = s h``.

``L0`` (the edge of the initial cube) only scales the variables so that a unit step in any of them
moves atoms by about an ångström.

The wall: ``E_wall = κ Σ_pairs (max(0, d_w − r)/δ)²`` over neighbour pairs (periodic images
included) closer than ``d_w = WALL_MARGIN · min_distance``, with ``κ = WALL_STRENGTH`` and
``δ = 0.1`` Å. It keeps the optimiser away from short distances; the guarantee that no output
structure has two atoms closer than ``min_distance`` comes from :func:`min_pair_distance` checks
(see :mod:`mpisnap.generation.optimise`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Param", "random_structure", "wall", "wall_terms", "pairs", "min_pair_distance",
           "relax_wall", "WALL_MARGIN", "WALL_STRENGTH"]

WALL_MARGIN = 1.05
WALL_STRENGTH = 10.0
WALL_WIDTH = 0.1  # Å
#: Random placements tried per atom before the best one is taken and the wall relaxes the rest.
RSA_TRIES = 100


def _E(eps: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = eps
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


_UNIT = [_E(np.eye(6)[k]) for k in range(6)]


@dataclass(frozen=True)
class Param:
    """The map between the optimisation vector and a structure (module docstring)."""

    symbols: tuple[str, ...]
    L0: float

    @property
    def natoms(self) -> int:
        return len(self.symbols)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        n = self.natoms
        return x[:3 * n].reshape(n, 3), x[3 * n:3 * n + 6] / self.L0, x[3 * n + 6] / self.L0

    def pack(self, u: np.ndarray, eps: np.ndarray, logv: float) -> np.ndarray:
        return np.concatenate([np.asarray(u, float).ravel(), np.asarray(eps, float) * self.L0,
                               [float(logv) * self.L0]])

    def cell(self, eps: np.ndarray, logv: float) -> np.ndarray:
        F = np.eye(3) + _E(eps)
        a = (self.natoms * math.exp(logv)) ** (1.0 / 3.0)
        return a * F / np.linalg.det(F) ** (1.0 / 3.0)

    def structure(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions (N, 3) Å, cell (3, 3)) of ``x``."""
        u, eps, logv = self.split(x)
        h = self.cell(eps, logv)
        return (u / self.L0) @ h, h

    def atoms(self, x: np.ndarray):
        from ase import Atoms

        r, h = self.structure(x)
        return Atoms(symbols=list(self.symbols), positions=r, cell=h, pbc=True)

    def chain(self, x: np.ndarray, dr: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Gradient with respect to ``x`` from the gradient ``dr`` (N, 3) with respect to the
        Cartesian positions and ``V_ab = Σ_pairs g_a r_b`` (the derivative with respect to a
        homogeneous deformation F at F = I, positions and images moving together)."""
        u, eps, logv = self.split(x)
        h = self.cell(eps, logv)
        # positions: r = s h, s = u / L0  ->  df/ds = dr hᵀ
        gu = dr @ h.T / self.L0
        # the cell at fixed s: df/dh = (V h^-1)ᵀ
        dh = (V @ np.linalg.inv(h)).T
        glogv = float(np.sum(dh * h)) / 3.0
        F = np.eye(3) + _E(eps)
        det = np.linalg.det(F)
        Finv = np.linalg.inv(F)
        a = (self.natoms * math.exp(logv)) ** (1.0 / 3.0)
        geps = np.empty(6)
        for k in range(6):
            dE = _UNIT[k]
            dM = det ** (-1.0 / 3.0) * (dE - F * (np.trace(Finv @ dE) / 3.0))
            geps[k] = a * float(np.sum(dh * dM))
        return np.concatenate([gu.ravel(), geps / self.L0, [glogv / self.L0]])


def pairs(positions: np.ndarray, cell: np.ndarray, cutoff: float):
    """Neighbour pairs closer than ``cutoff`` in a periodic cell (images included; each pair
    twice, i→j and j→i): ``i, j, d, D`` with ``D = r_j + shift − r_i`` (the convention of ASE's
    neighbour list). Periodic images within ``cutoff`` of the cell are searched with a
    :class:`scipy.spatial.cKDTree`."""
    from scipy.spatial import cKDTree

    r = np.asarray(positions, dtype=float)
    h = np.asarray(cell, dtype=float)
    n = len(r)
    s = np.linalg.solve(h.T, r.T).T
    s -= np.floor(s)
    vol = abs(float(np.linalg.det(h)))
    heights = np.array([vol / np.linalg.norm(np.cross(h[(k + 1) % 3], h[(k + 2) % 3]))
                        for k in range(3)])
    reach = cutoff / heights                       # the margin, in fractional units, per axis
    m = np.ceil(reach).astype(int)
    shifts = np.stack(np.meshgrid(*[np.arange(-mk, mk + 1) for mk in m], indexing="ij"),
                      -1).reshape(-1, 3)
    img = (s[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    keep = np.all((img > -reach) & (img < 1.0 + reach), axis=1)
    atom = np.tile(np.arange(n), len(shifts))[keep]
    img = img[keep]
    xyz = img @ h
    tree = cKDTree(xyz)
    base = s @ h
    dmat = cKDTree(base).sparse_distance_matrix(tree, cutoff, output_type="coo_matrix")
    i, k, d = dmat.row, dmat.col, dmat.data
    ok = d > 0.0
    ok |= atom[k] != i                             # a zero distance between distinct atoms
    i, k, d = i[ok], k[ok], d[ok]
    D = xyz[k] - base[i]
    # r_j + shift − r_i in the caller's (unwrapped) coordinates equals the wrapped difference
    return i.astype(np.intp), atom[k].astype(np.intp), np.linalg.norm(D, axis=1), D


def min_pair_distance(positions: np.ndarray, cell: np.ndarray, cutoff: float) -> float:
    """The shortest interatomic distance (periodic images included) if it is below ``cutoff``,
    else ``inf``."""
    _, _, d, _ = pairs(positions, cell, cutoff)
    return float(d.min()) if len(d) else math.inf


def wall_terms(i: np.ndarray, j: np.ndarray, D: np.ndarray, natoms: int, d_wall: float
               ) -> tuple[float, np.ndarray, np.ndarray]:
    """The wall energy (module docstring) of the pairs ``i → j`` with vectors ``D`` (each pair
    listed both ways; pairs at or beyond ``d_wall`` add nothing) and its derivatives: with
    respect to the positions (N, 3) and ``V_ab = Σ_p (∂E/∂D_p)_a D_p,b``."""
    grad = np.zeros((natoms, 3))
    d = np.linalg.norm(D, axis=1) if len(D) else np.zeros(0)
    near = d < d_wall
    if not near.any():
        return 0.0, grad, np.zeros((3, 3))
    i, j, d, D = i[near], j[near], d[near], D[near]
    x = (d_wall - d) / WALL_WIDTH
    energy = WALL_STRENGTH * float(np.sum(x * x))
    dEdd = -2.0 * WALL_STRENGTH * x / WALL_WIDTH
    g = (dEdd / np.maximum(d, 1e-12))[:, None] * D     # ∂E/∂D_p
    np.add.at(grad, j, g)
    np.add.at(grad, i, -g)
    return energy, grad, g.T @ D


def wall(positions: np.ndarray, cell: np.ndarray, d_wall: float
         ) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`wall_terms` of every pair of a periodic structure."""
    i, j, _, D = pairs(positions, cell, d_wall)
    return wall_terms(i, j, D, len(positions), d_wall)


def relax_wall(param: Param, x: np.ndarray, d_wall: float, maxiter: int = 300) -> np.ndarray:
    """Minimise the wall energy alone over the atomic coordinates (cell fixed): pushes atoms
    apart until no pair is closer than ``d_wall`` (when possible)."""
    from scipy.optimize import minimize

    n = param.natoms
    tail = x[3 * n:].copy()

    def f(u):
        xx = np.concatenate([u, tail])
        r, h = param.structure(xx)
        e, dr, V = wall(r, h, d_wall)
        return e, param.chain(xx, dr, V)[:3 * n]

    res = minimize(f, x[:3 * n], jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "gtol": 1e-12, "ftol": 1e-15})
    return np.concatenate([res.x, tail])


def random_structure(rng: np.random.Generator, elements, composition, natoms, volume_per_atom,
                     max_strain: float, min_distance: float) -> tuple[Param, np.ndarray] | None:
    """A random periodic structure: N atoms (``natoms``: a count, or min max drawn uniformly),
    the volume per atom uniform in
    ``volume_per_atom``, each distortion component uniform in ±``max_strain``, each atom's element
    drawn with the ``composition`` fractions, atoms placed by random sequential addition at least
    ``WALL_MARGIN · min_distance`` apart (the wall relaxes what could not be placed). Returns
    ``(param, x)``, or None when no two atoms could be kept ``min_distance`` apart."""
    n = int(rng.integers(natoms[0], natoms[1] + 1)) if np.ndim(natoms) else int(natoms)
    v = float(rng.uniform(volume_per_atom[0], volume_per_atom[1]))
    eps = rng.uniform(-max_strain, max_strain, 6) if max_strain > 0 else np.zeros(6)
    idx = rng.choice(len(elements), size=n, p=np.asarray(composition, float))
    symbols = tuple(elements[k] for k in idx)
    L0 = (n * v) ** (1.0 / 3.0)
    param = Param(symbols, L0)
    h = param.cell(eps, math.log(v))
    d_wall = WALL_MARGIN * min_distance
    vol = abs(float(np.linalg.det(h)))
    heights = np.array([vol / np.linalg.norm(np.cross(h[(k + 1) % 3], h[(k + 2) % 3]))
                        for k in range(3)])
    m = np.ceil(d_wall / heights).astype(int)
    shifts = np.stack(np.meshgrid(*[np.arange(-mk, mk + 1) for mk in m], indexing="ij"),
                      -1).reshape(-1, 3).astype(float)
    placed = np.zeros((0, 3))
    for _ in range(n):
        trials = rng.random((RSA_TRIES, 3))
        # distance of each trial to every image of the placed atoms (and, through the nonzero
        # shifts, to its own images)
        images = (placed[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
        own = shifts[np.any(shifts != 0, axis=1)] @ h
        best = np.full(RSA_TRIES, np.linalg.norm(own, axis=1).min() if len(own) else np.inf)
        if len(images):
            diff = (trials[:, None, :] - images[None, :, :]) @ h
            best = np.minimum(best, np.sqrt(np.min(np.einsum("tpa,tpa->tp", diff, diff),
                                                   axis=1)))
        ok = np.flatnonzero(best >= d_wall)
        k = int(ok[0]) if len(ok) else int(np.argmax(best))
        placed = np.vstack([placed, trials[k]])
    x = param.pack(placed * L0, eps, math.log(v))
    r, h = param.structure(x)
    if min_pair_distance(r, h, d_wall) < d_wall:
        x = relax_wall(param, x, d_wall)
        r, h = param.structure(x)
    if min_pair_distance(r, h, min_distance) < min_distance:
        return None
    return param, x
