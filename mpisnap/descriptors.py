"""SNAP bispectrum descriptors and their derivatives (the compiled core behind a Python face).

Units and conventions (the only place they are stated for the descriptor core):

* positions and cell in Å; the cell's rows are the lattice vectors (ASE convention);
* descriptors B are dimensionless; derivatives are in 1/Å; virial rows in Å·(1/Å) — multiply by
  coefficients in eV to get eV;
* components follow LAMMPS ML-SNAP order, signs and normalisation (``compute snap``), so that
  coefficients fitted to these rows run unchanged in LAMMPS ``pair_style snap``;
* ``r_ij = r_j - r_i``; force rows are ``-Σ_i ∂B_i/∂r_m`` (LAMMPS sign); virial rows are
  ``W = -Σ_i Σ_n r_in ⊗ ∂B_i/∂r_in`` in Voigt order xx, yy, zz, yz, xz, xy;
* parameter names and defaults are those of FitSNAP's ``[BISPECTRUM]`` section (note
  ``bzeroflag`` defaults to 0 as in FitSNAP, not 1 as in LAMMPS ``compute snap``).
"""
from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import _core
from .records import MAX_COORDINATE  # |coordinate| > 1e8 Å (1 cm): not a structure

__all__ = ["Descriptor", "DescriptorResult", "PairDerivatives"]


#: The largest twojmax the compiled core supports (``cpp/snap/tables.cpp``).
MAX_TWOJMAX = 24


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _integer(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in ``lo..hi``: a non-bool integer (TypeError otherwise)."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {_show(value)}")
    v = int(value)
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def _real(name: str, value: Any, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 with ``positive``): a non-bool real number (or its
    decimal text)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {_show(value)}") from None
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        what = "a positive finite number" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, got {_show(value)}")
    return v


def _per_type(name: str, value: Any, ntypes: int, cast=_real) -> list:
    """A scalar or one value per type, as a list of length ntypes (each checked by ``cast``)."""
    if isinstance(value, str):
        value = value.split()
        if cast is not _real:  # integer text, e.g. twojmax = "6 8"
            value = [int(v) if v.lstrip("+-").isdigit() else v for v in value]
    if np.ndim(value) == 0:
        return [cast(name, value)] * ntypes
    values = [cast(name, v) for v in value]
    if len(values) != ntypes:
        raise ValueError(f"{name} needs 1 or {ntypes} values (one per type), got {len(values)}")
    return values


def _twojmax(name: str, value: Any) -> int:
    """An integer in 0..MAX_TWOJMAX (the core's index tables go no further)."""
    return _integer(name, value, 0, MAX_TWOJMAX)


def _flag(name: str, value: Any) -> bool:
    """A 0/1 switch: ``0``, ``1``, ``False`` or ``True`` (not 0.5, 2 or "yes")."""
    if _is_bool(value):
        return bool(value)
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be 0 or 1, got {type(value).__name__} {_show(value)}")
    if int(value) not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {_show(value)}")
    return bool(value)


def pbc_flags(pbc: Any, what: str = "pbc") -> tuple[bool, bool, bool]:
    """Periodicity as 3 booleans from None (none), one flag for all directions, or 3 flags
    (each ``True``/``False``/``0``/``1``); ValueError for anything else."""
    if pbc is None:
        return (False, False, False)
    flags = [pbc] if np.ndim(pbc) == 0 else list(np.asarray(pbc, dtype=object).ravel())
    if np.ndim(pbc) > 1 or len(flags) not in (1, 3) or not all(
            _is_bool(f) or (isinstance(f, numbers.Integral) and int(f) in (0, 1)) for f in flags):
        raise ValueError(f"{what} must be one flag or 3 flags (x, y, z), each True/False or "
                         f"0/1, got {_show(pbc)}")
    if len(flags) == 1:
        flags = flags * 3
    return tuple(bool(f) for f in flags)  # type: ignore[return-value]


def _check_coordinates(what: str, arr: np.ndarray, per_atom: bool) -> None:
    """Finite entries of ``arr`` must lie within ±MAX_COORDINATE Å (non-finite ones are left to
    the core, which names them)."""
    big = np.isfinite(arr) & (np.abs(arr) > MAX_COORDINATE)
    if big.any():
        i, a = np.argwhere(big)[0]
        where = f"atom {i}" if per_atom else f"cell vector {i}"
        raise ValueError(f"{where} has {what} component {arr[i, a]:.6g} Å; coordinates "
                         f"beyond ±1e{math.log10(MAX_COORDINATE):.0f} Å (1 cm) are not a "
                         "structure (wrong length unit or corrupt data?)")


_NEIGHBOUR_LIMIT = re.compile(r"more than (\d+) neighbours within the cutoff")
#: Real matter has fewer than ~0.2 atoms/Å³ (diamond 0.18); above 1 atom/Å³ atoms overlap.
_DENSE = 1.0


@dataclass(frozen=True)
class PairDerivatives:
    """Derivatives of B_i over neighbour images, stored sparsely (one entry per image).

    Entry p describes neighbour image n of centre atom ``i[p]``; n is a periodic image of atom
    ``j[p]`` (possibly ``i[p]`` itself in small cells) at ``rij[p] = r_n - r_i`` (Å), and
    ``dBdr[p, a, k] = ∂B_{i,k}/∂r_in,a`` (1/Å). Per-atom derivatives follow as
    ``∂B_i/∂r_j = Σ_{p: i_p=i, j_p=j} dBdr_p  -  δ_ij Σ_{p: i_p=i} dBdr_p`` and the virial as
    ``-Σ_p rij_p ⊗ dBdr_p``.
    """

    i: np.ndarray
    j: np.ndarray
    rij: np.ndarray
    dBdr: np.ndarray

    def dense(self, natoms: int) -> np.ndarray:
        """``D[i, j, a, k] = ∂B_{i,k}/∂r_{j,a}`` as a dense (N, N, 3, nvalues) array (small N only)."""
        nv = self.dBdr.shape[2]
        D = np.zeros((natoms, natoms, 3, nv))
        np.add.at(D, (self.i, self.j), self.dBdr)
        np.add.at(D, (self.i, self.i), -self.dBdr)
        return D


@dataclass(frozen=True)
class DescriptorResult:
    """Descriptor arrays of one configuration (layouts named in each field).

    * ``B`` (natoms, nvalues): per-atom descriptors, linear part then quadratic products;
    * ``energy_row`` (ntypes, nvalues): Σ of B_i over atoms of each type (LAMMPS ``compute snap``
      row 0, split into type blocks);
    * ``force_rows`` (3*natoms, ntypes, nvalues): row ``3*m + a`` is ``-Σ_{i of type t}
      ∂B_i/∂r_{m,a}``, atoms in input order;
    * ``virial_rows`` (6, ntypes, nvalues): Σ over atoms of type t of
      ``-Σ_n r_in ⊗ ∂B_i/∂r_in``, Voigt order xx yy zz yz xz xy;
    * ``nneigh`` (natoms,): neighbour images per atom;
    * ``pairs``: sparse per-pair derivatives (only when requested).
    """

    B: np.ndarray
    energy_row: np.ndarray
    force_rows: np.ndarray | None = None
    virial_rows: np.ndarray | None = None
    nneigh: np.ndarray | None = None
    pairs: PairDerivatives | None = field(default=None, repr=False)


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.split(",")[0].strip().isdigit():
        return max(1, int(env.split(",")[0]))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _most_neighbours(pos, cell, pbc, types, reach, limit: int, budget: int = 4_000_000):
    """``(atom, count)``: the atom with the most neighbour images (distance in
    ``(1e-10, reach[t_i] + reach[t_j])`` Å, as the core counts them) among the first atoms, if
    one has more than ``limit``; None when none of those does or counting would cost more than
    about ``budget`` points (then the caller estimates from the density)."""
    from scipy.spatial import cKDTree

    n = len(pos)
    x = np.asarray(pos, float)
    shifts = np.zeros((1, 3))
    rmax = 2.0 * float(np.max(reach))
    if any(pbc):
        vol = abs(float(np.linalg.det(cell)))
        if not vol > 0:
            return None  # mixed periodicity with a zero cell vector: left to the estimate
        frac = np.linalg.solve(cell.T, x.T).T
        reps = []
        for k in range(3):
            if pbc[k]:
                frac[:, k] -= np.floor(frac[:, k])
                height = vol / float(np.linalg.norm(np.cross(cell[(k + 1) % 3],
                                                             cell[(k + 2) % 3])))
                reps.append(np.arange(-math.ceil(rmax / height), math.ceil(rmax / height) + 1))
            else:
                reps.append(np.zeros(1))
        if n * len(reps[0]) * len(reps[1]) * len(reps[2]) > budget:
            return None
        x = frac @ cell
        grid = np.stack(np.meshgrid(*reps, indexing="ij"), -1).reshape(-1, 3)
        shifts = grid @ cell
    images = (shifts[:, None, :] + x[None, :, :]).reshape(-1, 3)
    itypes = np.tile(types, len(shifts))
    query = np.arange(min(n, max(1, budget // (limit + 1))))
    counts = np.zeros(len(query), np.int64)
    for tj in np.unique(types):
        tree = cKDTree(images[itypes == tj])
        for ti in np.unique(types[query]):
            q = query[types[query] == ti]
            counts[q] += (tree.query_ball_point(x[q], reach[ti] + reach[tj], return_length=True)
                          - tree.query_ball_point(x[q], 1e-10, return_length=True))
    i = int(np.argmax(counts))
    return (i, int(counts[i])) if counts[i] > limit else None


class Descriptor:
    """The SNAP descriptor calculator for one parameter set.

    Parameters use FitSNAP's ``[BISPECTRUM]`` names; per-type values (``radelem``, ``wj``,
    ``sinner``, ``dinner``, and ``twojmax``) take one value per entry of ``type`` or a single
    value for all. With a per-type ``twojmax`` the descriptors are computed with the largest one
    and :attr:`blank2J` (per type, per column: 1 or 0) masks the components above a type's own
    band limit, as FitSNAP does.

    Parameters are checked, never silently converted: ``twojmax`` is an integer (not a bool) in
    0..24 (:data:`MAX_TWOJMAX`, the core's limit), the flags are 0/1 or False/True, the other
    numbers finite reals; a wrong type is a TypeError, a wrong value a ValueError, each naming
    the parameter. ``compute`` refuses coordinates beyond ±1e8 Å and ``pbc`` other than one or
    three flags, and explains the core's neighbour limit (which atom, how many neighbour images
    within which cutoff, and the likely cause).

    Example::

        from ase.build import bulk
        from mpisnap import Descriptor
        d = Descriptor(type=["Ta"], twojmax=6, rcutfac=4.67637, radelem=0.5, wj=1.0)
        res = d.compute(bulk("Ta", "bcc", a=3.316).repeat(2))
        res.B.shape, res.force_rows.shape    # (16, 30), (48, 1, 30)
    """

    def __init__(
        self,
        type: Sequence[str] | str = ("X",),
        twojmax: int | Sequence[int] = 6,
        rcutfac: float = 4.67637,
        rfac0: float = 0.99363,
        rmin0: float = 0.0,
        wj: float | Sequence[float] = 1.0,
        radelem: float | Sequence[float] = 0.5,
        wselfallflag: int = 0,
        chemflag: int = 0,
        bnormflag: int = 0,
        bzeroflag: int = 0,
        quadraticflag: int = 0,
        switchflag: int = 1,
        switchinnerflag: int = 0,
        sinner: float | Sequence[float] = 0.9,
        dinner: float | Sequence[float] = 0.1,
        numTypes: int | None = None,
        threads: int | None = None,
    ) -> None:
        if isinstance(type, str):
            elements = type.split()
        elif isinstance(type, Iterable) and all(isinstance(e, str) for e in type):
            elements = [str(e) for e in type]
        else:
            raise TypeError(f"type must be element names (a list of str or one str), got "
                            f"{_show(type)}")
        if not elements:
            raise ValueError("type must name at least one element")
        if len(set(elements)) != len(elements):
            raise ValueError(f"type lists an element twice: {elements}")
        if numTypes is not None and _integer("numTypes", numTypes, 1) != len(elements):
            raise ValueError(f"numTypes = {numTypes} but type lists {len(elements)} elements")
        nt = len(elements)
        self.elements: list[str] = elements
        self.twojmax_per_type = _per_type("twojmax", twojmax, nt, _twojmax)
        self.twojmax = max(self.twojmax_per_type)
        self.rcutfac = _real("rcutfac", rcutfac, positive=True)
        self.rfac0, self.rmin0 = _real("rfac0", rfac0), _real("rmin0", rmin0)
        self.radelem = _per_type("radelem", radelem, nt)
        self.wj = _per_type("wj", wj, nt)
        self.switchflag = _flag("switchflag", switchflag)
        self.switchinnerflag = _flag("switchinnerflag", switchinnerflag)
        self.sinner = _per_type("sinner", sinner, nt)
        self.dinner = _per_type("dinner", dinner, nt)
        self.bzeroflag = _flag("bzeroflag", bzeroflag)
        self.bnormflag = _flag("bnormflag", bnormflag)
        self.wselfallflag = _flag("wselfallflag", wselfallflag)
        self.chemflag = _flag("chemflag", chemflag)
        self.quadraticflag = _flag("quadraticflag", quadraticflag)
        self.threads = _default_threads() if threads is None else _integer("threads", threads, 1)
        self._tables = _core.Tables(
            self.twojmax, self.rcutfac, self.rfac0, self.rmin0, self.radelem, self.wj,
            self.switchflag, self.switchinnerflag,
            self.sinner if self.switchinnerflag else [], self.dinner if self.switchinnerflag else [],
            self.bzeroflag, self.bnormflag, self.wselfallflag, self.chemflag, self.quadraticflag,
        )
        self._index = {e: k for k, e in enumerate(elements)}

    # -- sizes and labels ---------------------------------------------------------------------
    @property
    def ntypes(self) -> int:
        return len(self.elements)

    @property
    def K(self) -> int:
        """Bispectrum components per element triple."""
        return self._tables.K

    @property
    def ncoeff(self) -> int:
        """Linear descriptor columns per atom (K, or K·ntypes³ with chemflag)."""
        return self._tables.ncoeff

    @property
    def nvalues(self) -> int:
        """Columns per atom including quadratic products."""
        return self._tables.nvalues

    @property
    def triples(self) -> list[tuple[int, int, int]]:
        """(j1, j2, j) doubled labels of the K components, LAMMPS order."""
        return list(self._tables.triples)

    @property
    def blank2J(self) -> np.ndarray:
        """(ntypes, nvalues) 1/0 mask of components within each type's own twojmax."""
        lin = np.array([[1.0 if j <= tj else 0.0 for (_, _, j) in self.triples]
                        for tj in self.twojmax_per_type])
        if self.chemflag:
            lin = np.tile(lin, (1, self.ntypes ** 3))
        if not self.quadraticflag:
            return lin
        iu = np.triu_indices(self.ncoeff)
        return np.hstack([lin, lin[:, iu[0]] * lin[:, iu[1]]])

    def type_indices(self, symbols: Sequence[str]) -> np.ndarray:
        """0-based type index of each element symbol (ValueError for an unknown element)."""
        try:
            return np.array([self._index[s] for s in symbols], dtype=np.int32)
        except KeyError as exc:
            raise ValueError(
                f"element {exc.args[0]!r} is not one of the descriptor's types {self.elements}"
            ) from None

    # -- computing ------------------------------------------------------------------------------
    def _normalise(self, atoms=None, *, positions=None, cell=None, pbc=None, symbols=None,
                   types=None):
        if atoms is not None:
            if positions is not None or types is not None or symbols is not None:
                raise ValueError("give either an ase.Atoms or positions/types, not both")
            if not all(hasattr(atoms, m) for m in ("get_positions", "get_cell", "get_pbc",
                                                   "get_chemical_symbols")):
                raise TypeError(f"atoms must be an ase.Atoms (or give positions=...), got "
                                f"{type(atoms).__name__} {_show(atoms)}")
            positions = atoms.get_positions()
            cell = np.array(atoms.get_cell())
            pbc = atoms.get_pbc()
            symbols = atoms.get_chemical_symbols()
        if positions is None:
            raise ValueError("positions are required")
        positions = np.ascontiguousarray(positions, dtype=float)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (natoms, 3), got {positions.shape}")
        n = positions.shape[0]
        if symbols is not None:
            if types is not None:
                raise ValueError("give either symbols or types, not both")
            if len(symbols) != n:
                raise ValueError(f"{len(symbols)} symbols for {n} atoms")
            types = self.type_indices(symbols)
        if types is None:
            if self.ntypes != 1:
                raise ValueError("types or symbols are required with more than one element type")
            types = np.zeros(n, dtype=np.int32)
        types = np.asarray(types)
        if types.shape != (n,):
            raise ValueError(f"types must have shape ({n},), got {types.shape}")
        if not np.issubdtype(types.dtype, np.integer):
            raise ValueError("types must be integers (0-based indices into `type`)")
        if n and (types.min() < 0 or types.max() >= self.ntypes):
            raise ValueError(f"types must lie in 0..{self.ntypes - 1} (indices into {self.elements})")
        pbc = pbc_flags(pbc)
        cell = np.zeros((3, 3)) if cell is None else np.ascontiguousarray(cell, dtype=float)
        if cell.shape != (3, 3):
            raise ValueError(f"cell must have shape (3, 3), got {cell.shape}")
        _check_coordinates("position", positions, per_atom=True)
        _check_coordinates("a", cell, per_atom=False)
        return positions, cell, list(pbc), np.ascontiguousarray(types, dtype=np.int32)

    @staticmethod
    def _result(d: dict) -> DescriptorResult:
        pairs = None
        if "pair_i" in d:
            pairs = PairDerivatives(d["pair_i"], d["pair_j"], d["pair_rij"], d["pair_dBdr"])
        return DescriptorResult(d["B"], d["energy_row"], d.get("force_rows"),
                                d.get("virial_rows"), d.get("nneigh"), pairs)

    def compute(self, atoms=None, *, positions=None, cell=None, pbc=None, symbols=None,
                types=None, forces: bool = True, virial: bool = True, pairs: bool = False,
                threads: int | None = None) -> DescriptorResult:
        """Descriptors of one configuration: an ``ase.Atoms`` or plain arrays.

        ``positions`` (N, 3) Å; ``cell`` (3, 3), rows are lattice vectors; ``pbc`` 3 booleans;
        ``symbols`` (element names) or ``types`` (0-based indices into ``type``). ``threads``
        OpenMP threads (default: the descriptor's). The GIL is released while computing.
        """
        pos, cell, pbc, typ = self._normalise(atoms, positions=positions, cell=cell, pbc=pbc,
                                              symbols=symbols, types=types)
        try:
            d = _core.compute(self._tables, pos, cell, pbc, typ, forces=forces, virial=virial,
                              pairs=pairs,
                              threads=self.threads if threads is None else int(threads))
        except ValueError as exc:
            raise self._explain(exc, [(pos, cell, pbc, typ)]) from exc
        return self._result(d)

    def compute_batch(self, configs: Iterable, *, forces: bool = True, virial: bool = True,
                      pairs: bool = False, threads: int | None = None) -> list[DescriptorResult]:
        """Descriptors of many configurations (``ase.Atoms`` or dicts of ``compute``'s keyword
        arguments), spread over threads one configuration per thread."""
        items = []
        for c in configs:
            if isinstance(c, dict):
                items.append(self._normalise(**c))
            else:
                items.append(self._normalise(c))
        try:
            ds = _core.compute_batch(self._tables, items, forces=forces, virial=virial,
                                     pairs=pairs,
                                     threads=self.threads if threads is None else int(threads))
        except ValueError as exc:
            raise self._explain(exc, items) from exc
        return [self._result(d) for d in ds]

    #: Private knobs of :meth:`compute_into` (tests force small blocks): the bytes of per-block
    #: derivative scratch (3 x ncoeff doubles per neighbour image) and the most centre atoms per
    #: block (None: no limit).
    _block_bytes = 64 << 20
    _block_atoms: int | None = None

    def compute_into(self, force_rows: np.ndarray | None, atoms=None, *, positions=None,
                     cell=None, pbc=None, symbols=None, types=None, virial: bool = True,
                     threads: int | None = None) -> DescriptorResult:
        """:meth:`compute` for configurations too large to hold twice, block by block.

        The force rows are accumulated in ``force_rows``: a writable float64 array of shape
        ``(3N, ntypes, nvalues)`` whose last axis is contiguous, e.g. a strided view of
        design-matrix rows (None: no force rows). The core works through the configuration a
        block of centre atoms at a time, so the memory beyond the outputs is bounded by the block
        (about 64 MiB of derivatives) whatever N; the GIL is released per block and a
        KeyboardInterrupt takes effect between blocks. The numbers equal :meth:`compute`'s
        bitwise. Returns a :class:`DescriptorResult` whose ``force_rows`` is the given array and
        whose ``B`` is None (per-atom descriptors are not kept).
        """
        pos, cell, pbc, typ = self._normalise(atoms, positions=positions, cell=cell, pbc=pbc,
                                              symbols=symbols, types=types)
        max_pairs = max(1, int(self._block_bytes) // (24 * self.ncoeff))
        max_atoms = int(self._block_atoms) if self._block_atoms else 2 ** 31 - 1
        try:
            job = _core.Job(self._tables, pos, cell, pbc, typ, forces=force_rows is not None,
                            virial=virial, pairs=False, per_atom=False, force_out=force_rows,
                            threads=self.threads if threads is None else int(threads))
            while job.done < job.natoms:
                job.step(max_pairs, max_atoms)  # GIL released; an interrupt lands between blocks
        except ValueError as exc:
            raise self._explain(exc, [(pos, cell, pbc, typ)]) from exc
        d = job.finish()
        return DescriptorResult(None, d["energy_row"], force_rows, d.get("virial_rows"),
                                d.get("nneigh"))

    # -- the core's neighbour limit, explained ----------------------------------------------
    def _explain(self, exc: ValueError, items: list) -> ValueError:
        """The core's "more than N neighbours within the cutoff" (for ``items[k]``, or the only
        item) rewritten with the numbers: which atom, how many neighbour images, the cutoff and
        what it is made of, and the likely cause. Any other error is returned unchanged."""
        m = re.match(r"(configuration (\d+): )?an atom has " + _NEIGHBOUR_LIMIT.pattern,
                     str(exc))
        if m is None:
            return exc
        k = int(m.group(2)) if m.group(2) else 0
        if not 0 <= k < len(items):
            return exc
        return ValueError((m.group(1) or "") + self._neighbour_report(int(m.group(3)), *items[k]))

    def _neighbour_report(self, limit: int, pos, cell, pbc, types) -> str:
        rad = np.asarray(self.radelem)
        rc = self.rcutfac * 2.0 * float(rad.max())
        sphere = 4.0 / 3.0 * math.pi * rc ** 3
        made = f"rcutfac {self.rcutfac:g} × 2 × radelem {float(rad.max()):g}"
        limit_text = f"the descriptor core allows at most {limit}"

        def hint(density: float) -> str:
            if density > _DENSE:
                return (f"that is {density:.3g} atoms/Å³, but real matter has fewer than 0.2: "
                        "atoms on top of each other, a cell far too small, or a wrong length "
                        "unit?")
            return ("is rcutfac too large? (the cutoff is rcutfac × (radelem_i + radelem_j); "
                    "SNAP cutoffs are usually 4-6 Å)")

        found = _most_neighbours(pos, cell, pbc, types, rad * self.rcutfac, limit)
        if found is not None:
            atom, count = found
            return (f"atom {atom} has {count} neighbour images within the cutoff {rc:.4g} Å "
                    f"({made}); {limit_text}: {hint(count / sphere)}")
        vol = abs(float(np.linalg.det(cell)))
        if all(pbc) and vol > 0:
            density = len(pos) / vol
            return (f"about {density * sphere:.0f} neighbour images per atom within the cutoff "
                    f"{rc:.4g} Å ({made}; {len(pos)} atoms in {vol:.4g} Å³); {limit_text}: "
                    f"{hint(density)}")
        return (f"an atom has more than {limit} neighbour images within the cutoff {rc:.4g} Å "
                f"({made}): is rcutfac too large, or are atoms crowded together?")

    def __repr__(self) -> str:
        return (f"Descriptor(type={self.elements}, twojmax={self.twojmax}, rcutfac={self.rcutfac},"
                f" ncoeff={self.ncoeff}, nvalues={self.nvalues})")
