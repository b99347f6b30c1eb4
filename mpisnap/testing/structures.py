"""Small reproducible structures for tests and benchmarks (positions Å, cell rows = vectors)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Structure:
    name: str
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple
    types: np.ndarray  # 0-based

    def kwargs(self) -> dict:
        return dict(positions=self.positions, cell=self.cell, pbc=self.pbc, types=self.types)


def bcc_supercell(n=(3, 3, 3), a=3.316, displacement=0.1, ntypes=1, seed=0) -> Structure:
    """bcc supercell with Gaussian displacements and random types."""
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    grid = np.array([[i, j, k] for i in range(n[0]) for j in range(n[1]) for k in range(n[2])])
    frac = (grid[:, None, :] + base[None]).reshape(-1, 3)
    cell = np.diag(np.array(n, float) * a)
    pos = frac @ (np.eye(3) * a) + rng.normal(scale=displacement, size=frac.shape)
    types = rng.integers(0, ntypes, len(pos)).astype(np.int32)
    return Structure(f"bcc{n}", pos, cell, (True, True, True), types)


def small_cell(a=3.316, ntypes=1) -> Structure:
    """2-atom bcc cell, much smaller than the cutoff: images of an atom's own self matter."""
    pos = np.array([[0.01, -0.02, 0.03], [0.5 * a + 0.04, 0.5 * a, 0.5 * a - 0.05]])
    return Structure("2-atom cell", pos, np.eye(3) * a, (True, True, True),
                     np.arange(2, dtype=np.int32) % ntypes)


def triclinic(ntypes=1, seed=1) -> Structure:
    """A strongly sheared, non-orthogonal, arbitrarily oriented periodic cell."""
    rng = np.random.default_rng(seed)
    cell = np.array([[7.1, 0.3, -0.4], [4.9, 6.2, 0.5], [-3.8, 2.9, 6.6]])
    frac = rng.random((24, 3))
    pos = frac @ cell
    # push atoms apart a little so no pair is unphysically close
    types = rng.integers(0, ntypes, len(pos)).astype(np.int32)
    return Structure("strongly triclinic", pos, cell, (True, True, True), types)


def cluster(ntypes=1, seed=2, isolated=False) -> Structure:
    """A non-periodic cluster; with ``isolated`` one far atom has no neighbours at all."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(scale=2.2, size=(14, 3))
    if isolated:
        pos = np.vstack([pos, [40.0, 0.0, 0.0]])
    types = rng.integers(0, ntypes, len(pos)).astype(np.int32)
    return Structure("cluster" + (" + isolated atom" if isolated else ""), pos, np.zeros((3, 3)),
                     (False, False, False), types)


def slab(ntypes=1, seed=3) -> Structure:
    """Mixed boundaries: periodic in x and y, open in z."""
    s = bcc_supercell((2, 2, 2), ntypes=ntypes, seed=seed)
    return Structure("slab (T,T,F)", s.positions, s.cell, (True, True, False), s.types)
