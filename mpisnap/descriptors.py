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

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import _core

__all__ = ["Descriptor", "DescriptorResult", "PairDerivatives"]


def _per_type(name: str, value: Any, ntypes: int, cast=float) -> list:
    """A scalar or one value per type, as a list of length ntypes."""
    if isinstance(value, str):
        value = value.split()
    if np.ndim(value) == 0:
        return [cast(value)] * ntypes
    values = [cast(v) for v in value]
    if len(values) != ntypes:
        raise ValueError(f"{name} needs 1 or {ntypes} values (one per type), got {len(values)}")
    return values


def _flag(name: str, value: Any) -> bool:
    v = int(value)
    if v not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return bool(v)


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


class Descriptor:
    """The SNAP descriptor calculator for one parameter set.

    Parameters use FitSNAP's ``[BISPECTRUM]`` names; per-type values (``radelem``, ``wj``,
    ``sinner``, ``dinner``, and ``twojmax``) take one value per entry of ``type`` or a single
    value for all. With a per-type ``twojmax`` the descriptors are computed with the largest one
    and :attr:`blank2J` (per type, per column: 1 or 0) masks the components above a type's own
    band limit, as FitSNAP does.

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
        elements = type.split() if isinstance(type, str) else [str(e) for e in type]
        if not elements:
            raise ValueError("type must name at least one element")
        if len(set(elements)) != len(elements):
            raise ValueError(f"type lists an element twice: {elements}")
        if numTypes is not None and int(numTypes) != len(elements):
            raise ValueError(f"numTypes = {numTypes} but type lists {len(elements)} elements")
        nt = len(elements)
        self.elements: list[str] = elements
        self.twojmax_per_type = _per_type("twojmax", twojmax, nt, int)
        if min(self.twojmax_per_type) < 0:
            raise ValueError(f"twojmax must be >= 0, got {twojmax!r}")
        self.twojmax = max(self.twojmax_per_type)
        self.rcutfac = float(rcutfac)
        if not np.isfinite(self.rcutfac) or self.rcutfac <= 0:
            raise ValueError(f"rcutfac must be a positive number, got {rcutfac!r}")
        self.rfac0, self.rmin0 = float(rfac0), float(rmin0)
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
        self.threads = _default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
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
        pbc = np.broadcast_to(np.asarray(False if pbc is None else pbc, dtype=bool), (3,))
        cell = np.zeros((3, 3)) if cell is None else np.ascontiguousarray(cell, dtype=float)
        if cell.shape != (3, 3):
            raise ValueError(f"cell must have shape (3, 3), got {cell.shape}")
        return positions, cell, [bool(x) for x in pbc], np.ascontiguousarray(types, dtype=np.int32)

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
        d = _core.compute(self._tables, pos, cell, pbc, typ, forces=forces, virial=virial,
                          pairs=pairs, threads=self.threads if threads is None else int(threads))
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
        ds = _core.compute_batch(self._tables, items, forces=forces, virial=virial, pairs=pairs,
                                 threads=self.threads if threads is None else int(threads))
        return [self._result(d) for d in ds]

    def __repr__(self) -> str:
        return (f"Descriptor(type={self.elements}, twojmax={self.twojmax}, rcutfac={self.rcutfac},"
                f" ncoeff={self.ncoeff}, nvalues={self.nvalues})")
