"""Dense, tiny and strongly skewed periodic cells: many periodic images of every atom (itself
included) lie within a typical cutoff, the case where neighbour lists must tell images apart
exactly. Positions are deliberately left unwrapped (atoms sit a few cells away from the home
cell)."""
from __future__ import annotations

import numpy as np

from .structures import Structure

__all__ = ["wbe_c15", "dense_cells", "FAMILIES"]


def wbe_c15(a: float = 1.80764999509) -> Structure:
    """W2Be4 C15 (primitive fcc cell, 6 atoms) compressed to 11.8 Å³ (FitSNAP's WBe EOS data):
    types 0 = W, 1 = Be. The cell vectors have exact zero components, so the periodic images of
    an atom's own self sit at lattice vectors with exact zeros too."""
    cell = np.array([[0.0, a, a], [a, 0.0, a], [a, a, 0.0]])
    pos = np.array([[0.45191] * 3, [3.16339] * 3, [1.80765] * 3, [1.80765, 0.90382, 0.90382],
                    [0.90382, 1.80765, 0.90382], [0.90382, 0.90382, 1.80765]])
    return Structure("W2Be4 C15 at 11.8 A^3", pos, cell, (True, True, True),
                     np.array([0, 0, 1, 1, 1, 1], dtype=np.int32))


def _skewed(rng):
    """Random lattice with large tilts, arbitrarily rotated, left- or right-handed."""
    L = np.eye(3) * rng.uniform(0.6, 1.6, 3)
    L[1, 0], L[2, 0], L[2, 1] = rng.uniform(-2.5, 2.5, 3)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if rng.random() < 0.5:
        q[:, 0] *= -1.0
    return L @ q.T


#: lattice shapes (rows are vectors, any scale); the unrotated ones have exact zero components
FAMILIES = {
    "fcc": lambda rng: np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]]),
    "bcc": lambda rng: np.array([[-1.0, 1, 1], [1, -1, 1], [1, 1, -1]]),
    "hexagonal": lambda rng: np.array([[1.0, 0, 0], [-0.5, 0.75 ** 0.5, 0],
                                       [0, 0, rng.uniform(0.8, 1.8)]]),
    "sheared": lambda rng: np.array([[1.0, 0, 0], [rng.integers(1, 4), 1, 0],
                                     [0, rng.integers(-3, 4), 0.7]]),
    "skewed": _skewed,
}


def _min_image_distance(pos, cell, dmax):
    """Smallest distance between distinct atoms or an atom and an image, searched up to dmax."""
    inv = np.linalg.inv(cell)
    h = 1.0 / np.linalg.norm(inv, axis=0)  # lattice plane spacings
    n = np.ceil(dmax / h).astype(int) + 1
    S = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in n], indexing="ij"), -1).reshape(-1, 3)
    d = pos[None, :, None, :] - pos[:, None, None, :] + (S @ cell)[None, None]
    r = np.linalg.norm(d, axis=-1)
    r[np.arange(len(pos)), np.arange(len(pos)), np.all(S == 0, axis=1).argmax()] = np.inf
    return r.min()


def dense_cells(count: int, ntypes: int = 1, seed: int = 0, natoms=(1, 8),
                volume_per_atom=(1.5, 16.0)) -> list[Structure]:
    """``count`` random periodic cells cycling through :data:`FAMILIES`: ``natoms`` (inclusive
    range) atoms at a volume per atom drawn log-uniformly from ``volume_per_atom`` (Å³), no two
    closer than 0.55 (V/atom)^(1/3), each atom moved by a random lattice vector of up to 2 cells
    per direction; types random with every type present when there are enough atoms."""
    rng = np.random.default_rng(seed)
    names = list(FAMILIES)
    out = []
    for k in range(count):
        fam = names[k % len(names)]
        n = int(rng.integers(natoms[0], natoms[1] + 1))
        v = float(np.exp(rng.uniform(*np.log(volume_per_atom))))
        cell = np.asarray(FAMILIES[fam](rng), dtype=float)
        cell *= (n * v / abs(np.linalg.det(cell))) ** (1.0 / 3.0)
        dmin = 0.55 * v ** (1.0 / 3.0)
        for _ in range(1000):
            pos = rng.random((n, 3)) @ cell
            if _min_image_distance(pos, cell, dmin) > dmin:
                break
        else:  # pragma: no cover - the density above always leaves room
            raise RuntimeError("could not place atoms")
        pos = pos + rng.integers(-2, 3, (n, 3)) @ cell
        types = rng.integers(0, ntypes, n).astype(np.int32)
        if n >= ntypes:
            types[:ntypes] = np.arange(ntypes)
        out.append(Structure(f"{fam} {n} atoms {v:.2f} A^3/atom", pos, cell, (True,) * 3, types))
    return out
