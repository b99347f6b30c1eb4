"""Ziegler-Biersack-Littmark (ZBL) screened nuclear repulsion, as LAMMPS ``pair_style zbl``.

The short-range repulsion that is usually overlaid on a SNAP potential (``pair_style
hybrid/overlay zbl inner outer snap``), written from the physics and the LAMMPS documentation of
``pair_style zbl`` and ``pair_style lj/gromacs`` (whose switching function it uses). This module
parses and validates the charges and LAMMPS input; the pair function and the sums over a
configuration are computed by the C++ core (:file:`cpp/snap/zbl.cpp`, OpenMP threads, the same
result for any thread count). :mod:`mpisnap.testing.zbl_numpy` keeps a NumPy implementation as
an independent oracle. Units are LAMMPS ``metal``: Å, eV, elementary charges.

For a pair of atoms with nuclear charges Z_i, Z_j at distance r < outer::

    E(r)   = qqr2e Z_i Z_j / r · φ(r / a) + S(r)
    a      = 0.46850 / (Z_i^0.23 + Z_j^0.23)                                   [Å]
    φ(x)   = 0.18175 e^{-3.19980 x} + 0.50986 e^{-0.94229 x}
             + 0.28022 e^{-0.40290 x} + 0.02817 e^{-0.20162 x}
    S(r)   = C                                          r <= inner
    S(r)   = A/3 (r - inner)^3 + B/4 (r - inner)^4 + C  inner < r < outer

with, for d = outer - inner and E_0 the unswitched ZBL term (first line without S)::

    A = (-3 E_0'(outer) + d E_0''(outer)) / d^2
    B = ( 2 E_0'(outer) - d E_0''(outer)) / d^3
    C = -E_0(outer) + d E_0'(outer) / 2 - d^2 E_0''(outer) / 12

so that energy, force and curvature vanish at ``outer`` and S' = S'' = 0 at ``inner``
(for inner == outer, S is the constant shift C = -E_0(outer)). Beyond ``outer`` E = 0.
qqr2e = 14.399645 eV·Å/e² is the Coulomb constant LAMMPS uses in metal units.

Virial convention (as LAMMPS and :mod:`mpisnap.descriptors`):
``W = -Σ_pairs r_ij ⊗ ∂E/∂r_ij`` with ``r_ij = r_j - r_i``, in eV, Voigt order xx, yy, zz, yz,
xz, xy; the LAMMPS pressure in bar is ``W · NKTV2P / V`` (:data:`mpisnap.units.NKTV2P`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["ZBL", "QQR2E", "ZBL_A0", "ZBL_PZBL", "PHI_COEFFS", "PHI_EXPONENTS"]

#: Coulomb constant e²/(4π ε0) in eV·Å (LAMMPS ``qqr2e`` for ``units metal``).
QQR2E = 14.399645
#: Screening-length prefactor of the universal ZBL screening length (Å).
ZBL_A0 = 0.46850
#: Exponent of Z in the screening length.
ZBL_PZBL = 0.23
#: Coefficients c_k and exponents d_k of φ(x) = Σ c_k exp(-d_k x).
PHI_COEFFS = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)

def _type_bounds(spec: Any, ntypes: int) -> tuple[int, int]:
    """1-based inclusive range of a LAMMPS type spec: ``*``, ``n``, ``*n``, ``n*``, ``m*n``."""
    s = str(spec).strip()
    m = re.fullmatch(r"(\d*)(\*?)(\d*)", s)
    if not s or m is None or (not m.group(2) and (not m.group(1) or m.group(3))):
        raise ValueError(f"invalid atom type spec {spec!r} (expected *, n, *n, n* or m*n)")
    if m.group(2):
        lo = int(m.group(1)) if m.group(1) else 1
        hi = int(m.group(3)) if m.group(3) else ntypes
    else:
        lo = hi = int(m.group(1))
    if not 1 <= lo <= hi <= ntypes:
        raise ValueError(f"atom type spec {spec!r} is out of range 1..{ntypes} or empty")
    return lo, hi


class ZBL:
    """``pair_style zbl inner outer`` with per type-pair nuclear charges.

    Parameters
    ----------
    inner, outer : switching starts at ``inner`` and the interaction is zero from ``outer`` on
        (Å, 0 < inner <= outer, as LAMMPS requires).
    z : either a sequence of one Z per type (cross pairs use Z_i and Z_j of the two types, the
        LAMMPS mixing rule), or a mapping ``{(i, j): (Z_i, Z_j)}`` over 0-based type pairs
        (``(i, j)`` and ``(j, i)`` denote the same pair; the two charges follow the order of the
        key, so ``{(1, 0): (Z_1, Z_0)}``). A diagonal pair needs Z_i == Z_j. A cross pair that is not
        given is mixed from the two diagonal entries, as LAMMPS does; a pair that can be neither
        given nor mixed is an error.

    Use :meth:`from_pair_coeffs` to build one from LAMMPS ``pair_coeff`` lines.
    """

    #: centre atoms per block in :meth:`compute` (configurations of 512 atoms or more)
    BLOCK_ATOMS = 4096

    def __init__(self, inner: float, outer: float,
                 z: Mapping[tuple[int, int], tuple[float, float]] | Sequence[float]):
        inner, outer = float(inner), float(outer)
        if not (0.0 < inner <= outer < np.inf):
            raise ValueError(f"need 0 < inner <= outer < inf, got inner={inner}, outer={outer}")
        self.inner, self.outer = inner, outer
        #: number of types; resolved charges {(i, j), i <= j: (Z_i, Z_j)} over 0-based types
        self.ntypes, self.z = self._resolve(z)
        self._core = self._make_core()

    def _make_core(self):
        """The core's ZBL (:file:`cpp/snap/zbl.cpp`): switching coefficients, pair function and
        configuration sums."""
        from mpisnap import _core

        n = self.ntypes
        zi = np.empty((n, n))
        zj = np.empty((n, n))
        for (i, j), (a, b) in self.z.items():
            zi[i, j], zj[i, j] = a, b
            zi[j, i], zj[j, i] = b, a
        return _core.ZBL(self.inner, self.outer, zi, zj)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_core"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._core = self._make_core()

    # -- construction ---------------------------------------------------------------------------
    @staticmethod
    def _resolve(z) -> tuple[int, dict[tuple[int, int], tuple[float, float]]]:
        if isinstance(z, Mapping):
            given: dict[tuple[int, int], tuple[float, float]] = {}
            for key, val in z.items():
                try:
                    i, j = (int(k) for k in key)
                    a, b = (float(v) for v in val)
                except (TypeError, ValueError):
                    raise ValueError(f"z entries must be (i, j): (Z_i, Z_j), got {key!r}: {val!r}"
                                     ) from None
                if i < 0 or j < 0:
                    raise ValueError(f"type indices are 0-based and >= 0, got {(i, j)}")
                if i > j:
                    i, j, a, b = j, i, b, a
                if (i, j) in given and given[(i, j)] != (a, b):
                    raise ValueError(f"type pair {(i, j)} given twice with different Z")
                given[(i, j)] = (a, b)
            if not given:
                raise ValueError("no type pairs given")
            ntypes = 1 + max(j for _, j in given)
        else:
            zs = [float(v) for v in np.atleast_1d(np.asarray(z, dtype=float))]
            if not zs:
                raise ValueError("no types given")
            ntypes = len(zs)
            given = {(i, i): (zs[i], zs[i]) for i in range(ntypes)}
        for (i, j), (a, b) in given.items():
            if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
                raise ValueError(f"Z must be positive and finite, got {(a, b)} for pair {(i, j)}")
            if i == j and a != b:
                raise ValueError(f"pair ({i}, {i}) needs Z_i == Z_j, got {a} and {b}")
        out = {}
        missing = []
        for i in range(ntypes):
            for j in range(i, ntypes):
                if (i, j) in given:
                    out[(i, j)] = given[(i, j)]
                elif (i, i) in given and (j, j) in given:
                    out[(i, j)] = (given[(i, i)][0], given[(j, j)][0])
                else:
                    missing.append((i, j))
        if missing:
            raise ValueError(f"Z not set (and not mixable) for 0-based type pairs {missing}")
        return ntypes, out

    @classmethod
    def from_pair_coeffs(cls, inner: float, outer: float, ntypes: int,
                         coeffs: Iterable[str | Sequence[Any]]) -> "ZBL":
        """Build from LAMMPS ``pair_coeff`` arguments (types 1-based, as in LAMMPS).

        Each item is either a string ``"I J Z_i Z_j"`` (optionally starting with ``pair_coeff``)
        or a tuple ``(I, J, Z_i, Z_j)``; ``I`` and ``J`` are type specs ``*``, ``n``, ``*n``,
        ``n*`` or ``m*n``. As in LAMMPS, two plain type numbers with I > J are swapped (``2 1``
        means the pair 1-2), a wildcard line sets the pairs (i, j) of its ranges with i <= j,
        later lines override earlier ones, and unset cross pairs are mixed from the diagonal.
        """
        ntypes = int(ntypes)
        if ntypes < 1:
            raise ValueError("ntypes must be >= 1")
        given: dict[tuple[int, int], tuple[float, float]] = {}
        for item in coeffs:
            args = item.split() if isinstance(item, str) else list(item)
            if args and str(args[0]) == "pair_coeff":
                args = args[1:]
            if len(args) != 4:
                raise ValueError(f"pair_coeff for zbl needs 'I J Z_i Z_j', got {item!r}")
            si, sj = str(args[0]).strip(), str(args[1]).strip()
            try:
                za, zb = float(args[2]), float(args[3])
            except (TypeError, ValueError):
                raise ValueError(f"Z values must be numbers, got {item!r}") from None
            if si.isdigit() and sj.isdigit() and int(si) > int(sj):
                si, sj, za, zb = sj, si, zb, za
            ilo, ihi = _type_bounds(si, ntypes)
            jlo, jhi = _type_bounds(sj, ntypes)
            count = 0
            for i in range(ilo, ihi + 1):
                for j in range(max(jlo, i), jhi + 1):
                    if i == j and za != zb:
                        raise ValueError(f"pair_coeff {i} {i} needs Z_i == Z_j: {item!r}")
                    given[(i - 1, j - 1)] = (za, zb)
                    count += 1
            if count == 0:
                raise ValueError(f"pair_coeff {item!r} sets no type pair (I range above J range)")
        if not given:
            raise ValueError("no pair_coeff lines given")
        # types beyond the highest one mentioned must still be set
        for t in range(ntypes):
            if not any(t in key for key in given):
                raise ValueError(f"no pair_coeff sets type {t + 1}")
        return cls(inner, outer, given)

    # -- LAMMPS input ---------------------------------------------------------------------------
    @property
    def cutoff(self) -> float:
        """Interaction cutoff (Å), the outer switching radius."""
        return self.outer

    def pair_style(self) -> str:
        """The LAMMPS ``pair_style`` command."""
        return f"pair_style zbl {self.inner!r} {self.outer!r}"

    def pair_coeffs(self) -> list[str]:
        """LAMMPS ``pair_coeff`` commands (1-based types) for every type pair, diagonal first."""
        keys = sorted(self.z, key=lambda k: (k[0] != k[1], k))
        return [f"pair_coeff {i + 1} {j + 1} {self.z[(i, j)][0]!r} {self.z[(i, j)][1]!r}"
                for (i, j) in keys]

    def __repr__(self) -> str:
        return f"ZBL(inner={self.inner!r}, outer={self.outer!r}, z={self.z!r})"

    # -- pair function --------------------------------------------------------------------------
    def pair(self, r, ti, tj):
        """Switched pair energy E(r) (eV), dE/dr (eV/Å) and d²E/dr² (eV/Å²) for 0-based types
        ``ti``, ``tj`` (broadcast with ``r``, Å); all three are zero for r >= outer."""
        r = np.asarray(r, dtype=float)
        ti, tj = np.asarray(ti), np.asarray(tj)
        if r.size and not np.all(r > 0):
            raise ValueError("distances must be positive")
        r, ti, tj = np.broadcast_arrays(r, ti, tj)
        self._check_types(ti)
        self._check_types(tj)
        out = self._core.pair(r.ravel(), ti.ravel(), tj.ravel())
        return tuple(v.reshape(r.shape) for v in out)

    def _check_types(self, t):
        if t.size and not np.issubdtype(t.dtype, np.integer):
            raise ValueError("types must be integers (0-based)")
        if t.size and (t.min() < 0 or t.max() >= self.ntypes):
            raise ValueError(f"types must lie in 0..{self.ntypes - 1}")

    # -- configurations -------------------------------------------------------------------------
    def pairs(self, positions, cell, pbc, start: int = 0, stop: int | None = None):
        """Unordered neighbour pairs within ``outer``: (i, j, D) with D = r_j + S · cell - r_i
        for an integer lattice shift S (0 along non-periodic directions); only the pairs of
        centre atoms ``start <= i < stop`` (default: all), so a large configuration can be
        taken a block of atoms at a time.

        Every pair of atoms (or of an atom and a periodic image, including its own images in
        cells smaller than the cutoff) is listed once: of the two ordered halves (i, j, S) and
        (j, i, -S) the one with i < j, or for i == j the one whose S is lexicographically
        positive. The choice uses the exact integers S, never the rounded D."""
        from mpisnap import _core  # the descriptor core's neighbour list

        pos, cell, pbc = self._normalise(positions, cell, pbc)
        if len(pos) == 0:
            return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 3))
        i, j, D, S = _core.neighbor_pairs(pos, cell, list(pbc), self.outer, start,
                                          -1 if stop is None else stop)
        nz = S != 0  # S == 0 only for i != j (an atom is not its own neighbour)
        first = S[np.arange(len(S)), np.argmax(nz, axis=1)]  # first non-zero component
        keep = (i < j) | ((i == j) & (first > 0))
        return i[keep], j[keep], D[keep]

    @staticmethod
    def _normalise(positions, cell, pbc):
        pos = positions
        if not (type(pos) is np.ndarray and pos.dtype == np.float64 and pos.flags.c_contiguous):
            pos = np.ascontiguousarray(pos, dtype=float)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"positions must have shape (natoms, 3), got {pos.shape}")
        cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float)
        if cell.shape != (3, 3):
            raise ValueError(f"cell must have shape (3, 3), got {cell.shape}")
        if pbc is None or isinstance(pbc, (bool, np.bool_)):
            return pos, cell, (bool(pbc),) * 3
        if type(pbc) is not tuple:
            pbc = tuple(np.ravel(pbc))
        if len(pbc) == 1:
            pbc *= 3
        if len(pbc) != 3:
            raise ValueError(f"pbc must be one or three booleans, got {pbc!r}")
        return pos, cell, (bool(pbc[0]), bool(pbc[1]), bool(pbc[2]))

    def compute(self, positions, cell, pbc, types,
                threads: int | None = None) -> tuple[float, np.ndarray, np.ndarray]:
        """Energy (eV), forces (N, 3) (eV/Å) and virial (6,) (eV; Voigt xx yy zz yz xz xy,
        ``W = -Σ_pairs r_ij ⊗ ∂E/∂r_ij``) of one configuration.

        ``positions`` (N, 3) Å; ``cell`` (3, 3), rows are lattice vectors (rows of non-periodic
        directions are ignored, may be 0 or None for a cluster); ``pbc`` 3 booleans (or one);
        ``types`` (N,) 0-based integer types. ``threads``: OpenMP threads (default: OpenMP's
        current default, which :func:`mpisnap.threads.limited` sets during a fit); the result is
        the same for any number of threads.

        Computed by the core (:file:`cpp/snap/zbl.cpp`) over its periodic images with exact
        integer lattice shifts (an atom's own images included): below 512 atoms on one thread,
        each pair once (i < j, or i == j with the shift lexicographically positive); from 512
        atoms on, threaded, each atom summing its full neighbour list (half of each pair's energy
        and virial) a block of :attr:`BLOCK_ATOMS` centre atoms at a time, so memory beyond the
        outputs stays bounded for huge configurations.
        """
        pos, cell, pbc = self._normalise(positions, cell, pbc)
        n = len(pos)
        types = np.asarray(types)
        if types.shape != (n,):
            raise ValueError(f"types must have shape ({n},), got {types.shape}")
        if n and types.dtype.kind not in "iu":
            raise ValueError("types must be integers (0-based)")
        if threads is None:
            threads = 0
        elif isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        return self._core.compute(pos, cell, pbc, types, threads, self.BLOCK_ATOMS)
