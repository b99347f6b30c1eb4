"""The ZBL pair style in NumPy: an independent oracle for the core's ZBL (:mod:`mpisnap.zbl`),
and the baseline of ``scripts/bench_reference.py`` (mpisnap's reference stage before it moved
into the core).

:class:`NumpyZBL` is a :class:`mpisnap.zbl.ZBL` (same construction, charges and LAMMPS input)
whose pair function and configuration sums are NumPy: the switching coefficients from the
unswitched term's derivatives at ``outer``, the pair terms evaluated on the half list of unordered
pairs (:meth:`ZBL.pairs`, i < j or i == j with the lattice shift lexicographically positive),
forces by ``bincount`` over both atoms of each pair, a block of centre atoms at a time.
"""
from __future__ import annotations

import numpy as np

from mpisnap.zbl import PHI_COEFFS, PHI_EXPONENTS, QQR2E, ZBL, ZBL_A0, ZBL_PZBL

__all__ = ["NumpyZBL"]

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class NumpyZBL(ZBL):
    """:class:`mpisnap.zbl.ZBL` evaluated in NumPy (see the module docstring)."""

    def __init__(self, inner, outer, z):
        super().__init__(inner, outer, z)
        n = self.ntypes
        zi = np.empty((n, n))
        zj = np.empty((n, n))
        for (i, j), (a, b) in self.z.items():
            zi[i, j], zj[i, j] = a, b
            zi[j, i], zj[j, i] = b, a
        # symmetric per-pair parameters: prefactor qqr2e Z_i Z_j and inverse screening length
        self._zz = QQR2E * zi * zj
        self._ainv = (zi ** ZBL_PZBL + zj ** ZBL_PZBL) / ZBL_A0
        e0, d1, d2 = self._unswitched(np.full((n, n), self.outer), self._zz, self._ainv)
        d = self.outer - self.inner
        if d > 0.0:
            self._A = (-3.0 * d1 + d * d2) / d ** 2
            self._B = (2.0 * d1 - d * d2) / d ** 3
        else:
            self._A = np.zeros((n, n))
            self._B = np.zeros((n, n))
        self._C = -e0 + 0.5 * d * d1 - d * d * d2 / 12.0

    @staticmethod
    def _unswitched(r, zz, ainv):
        """E_0 = zz φ(r ainv) / r and its first two r-derivatives (elementwise)."""
        r = np.asarray(r, dtype=float)
        phi = np.zeros_like(r)
        dphi = np.zeros_like(r)
        d2phi = np.zeros_like(r)
        x = r * ainv
        for c, d in zip(PHI_COEFFS, PHI_EXPONENTS):
            ex = c * np.exp(-d * x)
            phi += ex
            dphi -= d * ex
            d2phi += d * d * ex
        dphi *= ainv       # dφ/dr
        d2phi *= ainv * ainv
        inv = 1.0 / r
        e = zz * phi * inv
        de = zz * (dphi - phi * inv) * inv
        d2e = zz * (d2phi - 2.0 * dphi * inv + 2.0 * phi * inv * inv) * inv
        return e, de, d2e

    def pair(self, r, ti, tj):
        r = np.asarray(r, dtype=float)
        ti, tj = np.asarray(ti), np.asarray(tj)
        if r.size and not np.all(r > 0):
            raise ValueError("distances must be positive")
        r, ti, tj = np.broadcast_arrays(r, ti, tj)
        self._check_types(ti)
        self._check_types(tj)
        return self._pair(r, ti, tj)

    def _pair(self, r, ti, tj):
        inside = r < self.outer
        rr = np.where(inside, r, self.outer)
        e, de, d2e = self._unswitched(rr, self._zz[ti, tj], self._ainv[ti, tj])
        t = np.maximum(rr - self.inner, 0.0)
        A, B = self._A[ti, tj], self._B[ti, tj]
        e = e + self._C[ti, tj] + t ** 3 * (A / 3.0 + 0.25 * B * t)
        de = de + t * t * (A + B * t)
        d2e = d2e + t * (2.0 * A + 3.0 * B * t)
        zero = np.zeros_like(e)
        return np.where(inside, e, zero), np.where(inside, de, zero), np.where(inside, d2e, zero)

    def compute(self, positions, cell, pbc, types, threads=None):
        pos, cell, pbc = self._normalise(positions, cell, pbc)
        if pbc and any(pbc):
            per = cell[list(pbc)]
            if np.linalg.matrix_rank(per) < len(per):
                raise ValueError("the periodic cell vectors are degenerate")
        n = len(pos)
        types = np.asarray(types)
        if types.shape != (n,):
            raise ValueError(f"types must have shape ({n},), got {types.shape}")
        self._check_types(types)
        forces = np.zeros((n, 3))
        virial = np.zeros(6)
        energy = 0.0
        for start in range(0, n, self.BLOCK_ATOMS):
            i, j, D = self.pairs(pos, cell, pbc, start, min(n, start + self.BLOCK_ATOMS))
            if len(i) == 0:
                continue
            r = np.sqrt(np.einsum("pa,pa->p", D, D))
            if not np.all(r > 0):
                raise ValueError("two atoms (or an atom and an image) coincide")
            e, de, _ = self._pair(r, types[i], types[j])
            g = (de / r)[:, None] * D  # ∂E/∂r_ij
            for a in range(3):
                forces[:, a] += (np.bincount(i, g[:, a], minlength=n)
                                 - np.bincount(j, g[:, a], minlength=n))
            for c, (a, b) in enumerate(_VOIGT):
                virial[c] -= np.einsum("p,p->", D[:, a], g[:, b])
            energy += float(e.sum())
        return energy, forces, virial
