"""Built-in model forms: linear, quadratic and ChemSNAP (explicit multi-element) SNAP.

All three are :class:`LinearSNAP` — a model linear in its coefficients — with different
descriptor flags; the rows follow FitSNAP's design-matrix layout exactly:

* columns: per element type (order of ``[BISPECTRUM] type``) one constant column when
  ``bzeroflag = 0``, then the type's ``nvalues`` descriptor columns (masked by ``blank2J``);
* per configuration of N atoms: 1 energy row (eV/atom: block t = Σ_{i of type t} B_i / N, constant
  column = N_t / N; truth (E + Σ ESHIFT − E_ref)/N), 3N force rows (atom-major x y z; block t =
  −Σ_{i of type t} ∂B_i/∂r_m; truth F − F_ref in eV/Å) and 6 stress rows (xx yy zz yz xz xy;
  block t = 1.6021765e6 · W_t / V, bar in the pressure convention; truth σ − P_ref).
"""
from __future__ import annotations

import itertools

import numpy as np

from mpisnap import Descriptor, units
from mpisnap.hookspecs import hookimpl
from mpisnap.potential import coefficient_labels
from mpisnap.records import ModelForm

#: eV/Å³ → bar (LAMMPS ``nktv2p`` for metal units; its one home is :mod:`mpisnap.units`).
NKTV2P = units.NKTV2P
_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class ModelFlagError(ValueError):
    pass


class LinearSNAP:
    """SNAP linear in its coefficients (linear, quadratic or ChemSNAP descriptors)."""

    kind = "linear"
    name = "linear"

    def __init__(self, settings, threads: int | None = None) -> None:
        self.settings = settings
        self.descriptor = Descriptor(**settings.bispectrum.descriptor_kwargs(), threads=threads)
        self.elements = list(self.descriptor.elements)
        self.const = not self.descriptor.bzeroflag
        self.nvalues = self.descriptor.nvalues
        self.block = self.nvalues + int(self.const)
        self.ncols = self.block * len(self.elements)
        self._mask = self.column_mask()

    # -- columns ---------------------------------------------------------------------------
    def column_mask(self) -> np.ndarray:
        """(ntypes, nvalues) multiplier of the descriptor columns (FitSNAP's blank2J)."""
        return self.descriptor.blank2J

    def column_names(self) -> list[str]:
        """``element:label`` per column: ``B0`` for the constant column, then the LAMMPS
        labels of :func:`mpisnap.potential.coefficient_labels` (the ones the ``.snapcoeff``
        comments carry)."""
        block = (["B0"] if self.const else []) + coefficient_labels(self.descriptor)
        return [f"{el}:{lab}" for el in self.elements for lab in block]

    def diagonal_columns(self) -> np.ndarray:
        """Indices (within a block's nvalues) of the quadratic diagonal ½ B_k² columns."""
        nc = self.descriptor.ncoeff
        if not self.descriptor.quadraticflag:
            return np.zeros(0, dtype=int)
        offs = nc + np.cumsum([0] + [nc - k for k in range(nc - 1)])
        return offs.astype(int)

    # -- rows ------------------------------------------------------------------------------
    def _use(self, config, kinds):
        use_e = kinds[0] and config.energy is not None
        use_f = kinds[1] and config.forces is not None
        vol = config.volume if all(config.pbc) else 0.0
        use_s = kinds[2] and config.stress is not None and vol > 0
        return use_e, use_f, use_s, vol

    def row_count(self, config, kinds=(True, True, True)) -> int:
        """Number of rows :meth:`rows` returns for ``config`` (lets the caller preallocate)."""
        use_e, use_f, use_s, _ = self._use(config, kinds)
        return int(use_e) + 3 * config.natoms * int(use_f) + 6 * int(use_s)

    def rows(self, config, desc, reference=None, eshift: float = 0.0, kinds=(True, True, True)):
        """Design rows of one configuration.

        Returns ``(A, b, kind, atom, component)``: A (nrows, ncols), truth b, and per row its kind
        (0 energy, 1 force, 2 stress), atom index (force rows) and component. ``reference`` is
        a :class:`mpisnap.records.ReferenceResult` or None; ``eshift`` the summed per-atom energy
        shifts (eV) added to the DFT energy. ``kinds`` switches energy/force/stress rows on/off;
        rows whose label is missing (no energy, forces or stress in the data, or no cell volume)
        are left out.
        """
        A = np.zeros((self.row_count(config, kinds), self.ncols))
        return (A,) + self._fill(A, config, desc, reference, eshift, kinds, in_place=False)

    def rows_into(self, A, config, reference=None, eshift: float = 0.0,
                  kinds=(True, True, True), threads: int | None = None):
        """:meth:`rows` for configurations of any size, written into ``A``.

        ``A`` is a C-contiguous float64 array of shape (:meth:`row_count`, ncols), e.g. rows of a
        preallocated design matrix; its content is overwritten. The descriptors are computed here,
        block by block (:meth:`mpisnap.Descriptor.compute_into`), with the force rows accumulated
        straight into ``A``, so the memory beyond the rows stays bounded whatever the size, and
        a KeyboardInterrupt takes effect between blocks. Same numbers as :meth:`rows` (bitwise).
        Returns ``(b, kind, atom, component)``.
        """
        n, T, blk, c0 = config.natoms, len(self.elements), self.block, int(self.const)
        use_e, use_f, use_s, _ = self._use(config, kinds)
        if (A.shape != (self.row_count(config, kinds), self.ncols) or A.dtype != np.float64
                or not A.flags.c_contiguous):
            raise ValueError(f"rows_into: A must be a C-contiguous float64 array of shape "
                             f"({self.row_count(config, kinds)}, {self.ncols}), got "
                             f"{A.dtype} {A.shape}")
        force = None
        if use_f:
            r = int(use_e)
            force = A[r:r + 3 * n].reshape(3 * n, T, blk)[:, :, c0:]  # a view: rows go in place
        desc = self.descriptor.compute_into(force, positions=config.positions, cell=config.cell,
                                            pbc=config.pbc, symbols=config.symbols,
                                            virial=use_s, threads=threads)
        return self._fill(A, config, desc, reference, eshift, kinds, in_place=True)

    def _fill(self, A, config, desc, reference, eshift, kinds, in_place: bool):
        """Every element of the rows ``A`` from the descriptors ``desc`` (force rows already in
        ``A`` when ``in_place``: then only masked and given zero constant columns)."""
        n = config.natoms
        T, blk, c0 = len(self.elements), self.block, int(self.const)
        use_e, use_f, use_s, vol = self._use(config, kinds)
        nrows = len(A)
        b = np.zeros(nrows)
        kind = np.zeros(nrows, np.int8)
        atom = np.full(nrows, -1, np.int32)
        comp = np.zeros(nrows, np.int8)
        mask = self._mask
        r = 0
        if use_e:
            types = self.descriptor.type_indices(config.symbols)
            for t in range(T):
                if c0:
                    A[0, t * blk] = np.count_nonzero(types == t) / n
                A[0, t * blk + c0:(t + 1) * blk] = desc.energy_row[t] * mask[t] / n
            eref = reference.energy if reference is not None else 0.0
            b[0] = (config.energy + eshift - eref) / n
            r = 1
        if use_f:
            sl = slice(r, r + 3 * n)
            if in_place:
                for t in range(T):
                    if c0:
                        A[sl, t * blk] = 0.0
                    if not np.all(mask[t] == 1.0):
                        for s0 in range(r, r + 3 * n, 4096):  # in place, a slab at a time
                            A[s0:min(s0 + 4096, r + 3 * n), t * blk + c0:(t + 1) * blk] *= mask[t]
            else:
                for t in range(T):
                    A[sl, t * blk + c0:(t + 1) * blk] = desc.force_rows[:, t, :] * mask[t]
            f = np.asarray(config.forces, float).reshape(-1)
            if reference is not None:
                f = f - np.asarray(reference.forces, float).reshape(-1)
            b[sl] = f
            kind[sl] = 1
            atom[sl] = np.repeat(np.arange(n, dtype=np.int32), 3)
            comp[sl] = np.tile(np.arange(3, dtype=np.int8), n)
            r += 3 * n
        if use_s:
            sl = slice(r, r + 6)
            A[sl] = 0.0
            for t in range(T):
                A[sl, t * blk + c0:(t + 1) * blk] = desc.virial_rows[:, t, :] * mask[t] * (NKTV2P / vol)
            s = np.asarray(config.stress, float)
            truth = np.array([s[p, q] for p, q in _VOIGT])
            if reference is not None:
                truth = truth - np.asarray(reference.virial, float) * (NKTV2P / vol)
            b[sl] = truth
            kind[sl] = 2
            comp[sl] = np.arange(6, dtype=np.int8)
        return b, kind, atom, comp

    # -- coefficients ----------------------------------------------------------------------
    def symmetrize(self, coefficients: np.ndarray) -> np.ndarray:
        """Coefficients as written to files (identity for non-chem models)."""
        return np.asarray(coefficients, float)

    def coefficient_blocks(self, coefficients: np.ndarray) -> dict[str, np.ndarray]:
        """Per element: β0 then the nvalues coefficients, as the ``.snapcoeff`` lists them."""
        coef = np.asarray(coefficients, float)
        out = {}
        for t, el in enumerate(self.elements):
            blockc = coef[t * self.block:(t + 1) * self.block]
            beta0 = blockc[0] if self.const else 0.0
            out[el] = np.concatenate([[beta0], blockc[int(self.const):]])
        return out


class QuadraticSNAP(LinearSNAP):
    name = "quadratic"


class ChemSNAP(LinearSNAP):
    """Explicit multi-element SNAP (Cusentino et al. 2020). Coefficients are averaged over each
    orbit of exactly duplicated columns so that LAMMPS ``pair_style snap`` forces equal −∇E for any
    solver (the energy and the fitted rows do not change)."""

    name = "chemsnap"

    def __init__(self, settings, threads: int | None = None) -> None:
        super().__init__(settings, threads)
        self._orbits = self._build_orbits()

    def _build_orbits(self) -> list[np.ndarray]:
        d = self.descriptor
        nel, K = len(self.elements), d.K
        seen = {}
        for k, (j1, j2, j) in enumerate(d.triples):
            for a, b, c in itertools.product(range(nel), repeat=3):
                if j1 == j2 == j:
                    key = (k,) + tuple(sorted((a, b, c)))
                elif j1 == j:      # swap 1st and 3rd label
                    key = (k, min(a, c), b, max(a, c))
                elif j1 == j2:     # swap 1st and 2nd label
                    key = (k, min(a, b), max(a, b), c)
                else:
                    key = (k, a, b, c)
                col = ((a * nel + b) * nel + c) * K + k
                seen.setdefault(key, []).append(col)
        return [np.array(v) for v in seen.values() if len(v) > 1]

    def symmetrize(self, coefficients: np.ndarray) -> np.ndarray:
        coef = np.array(coefficients, float)
        c0 = int(self.const)
        for t in range(len(self.elements)):
            base = t * self.block + c0
            for cols in self._orbits:
                coef[base + cols] = coef[base + cols].mean()
        return coef


def _check_flags(settings, name: str, chem: bool | None, quad: bool | None) -> None:
    b = settings.bispectrum
    if chem is not None and bool(b.chemflag) != chem:
        raise ModelFlagError(f"[CALCULATOR] model: model form {name!r} needs [BISPECTRUM] "
                             f"chemflag = {int(chem)}")
    if quad is not None and bool(b.quadraticflag) != quad:
        raise ModelFlagError(f"[CALCULATOR] model: model form {name!r} needs [BISPECTRUM] "
                             f"quadraticflag = {int(quad)}")
    if b.chemflag and b.quadraticflag:
        raise ModelFlagError("[BISPECTRUM] quadraticflag: quadratic ChemSNAP is not supported "
                             "(LAMMPS pair_style snap forces are only exact for orbit-symmetric "
                             "coefficients, which a quadratic chem fit cannot guarantee)")


def _linear(settings, **kw):
    _check_flags(settings, "linear", False, False)
    return LinearSNAP(settings, **kw)


def _quadratic(settings, **kw):
    _check_flags(settings, "quadratic", False, True)
    return QuadraticSNAP(settings, **kw)


def _chemsnap(settings, **kw):
    _check_flags(settings, "chemsnap", True, None)
    return ChemSNAP(settings, **kw)


def _linear_fit(settings) -> bool:
    """A FitSNAP input for a linear-in-coefficients fit (not a neural network)."""
    return not (settings.calculator.nonlinear or settings.solver.solver == "PYTORCH")


@hookimpl
def mpisnap_model_forms():
    b = lambda s: s.bispectrum  # noqa: E731
    return [
        ModelForm("linear", "linear", _linear, "linear SNAP (Thompson et al. 2015)",
                  accepts=lambda s: _linear_fit(s) and not b(s).chemflag
                  and not b(s).quadraticflag),
        ModelForm("quadratic", "linear", _quadratic, "quadratic SNAP (Wood & Thompson 2018)",
                  accepts=lambda s: _linear_fit(s) and not b(s).chemflag
                  and bool(b(s).quadraticflag)),
        ModelForm("chemsnap", "linear", _chemsnap,
                  "explicit multi-element SNAP (Cusentino et al. 2020), orbit-averaged output",
                  accepts=lambda s: _linear_fit(s) and bool(b(s).chemflag)),
    ]
