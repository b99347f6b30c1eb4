"""K-fold cross-validation errors of one choice of weights (and alpha), from compressed blocks.

Algorithm (per trial, on the rank that evaluates it; nothing here is collective):

1. *Tuned values.* Every (group, kind) cell of the blocks belongs to a *class*: one class per tuned
   value (``weights = groups``: one per tuned cell; ``kinds``: one per tuned kind), and one fixed
   class for the rest (the cell whose weight is held fixed, cells of kinds not tuned, zero
   weights). A class's weight is its cells' input weights times ``10^x``.
2. *Fold complements, pre-reduced once* (:meth:`CrossValidator.__init__`): for fold f and class
   c, the blocks of the other folds in class c, each scaled by its cell's input weight, are
   reduced to one triangle by a QR of the stacked triangles. Then a trial's training system for
   fold f is the QR of ``[10^{x_c} · C_{f,c}]`` stacked over the classes: O(classes · n³) flops
   per fold instead of O(K · groups · kinds · n³), whatever the number of rows. Never normal
   equations (summing Gram matrices would square the condition number). With per-group weights
   the complements are also kept per kind, for points where every group of a kind has the same
   factor (the first stage of the search): then a trial stacks a few triangles per fold.
3. *Solve* with the fit's solver plugin (``alpha`` replaced in its section when tuned), the
   coefficients symmetrised as the fit writes them.
4. *Held-out errors*: each held-out block's residual ``‖R_k β − (Qᵀb)_k‖² + ρ_k²`` in unit
   weights (see :mod:`.blocks`), summed per (group, kind) over the folds:
   ``CV-RMSE = sqrt(Σ residual² / Σ rows)``, unweighted, in the metrics' units.

The CV RMSE of a kind sums the cells whose input weight is > 0 (a cell the input does not fit is
reported per group but never counted in the objective).

Accuracy: the CV errors equal explicit refits of the raw rows to 1e-10 relative for linear fits
(``tests/test_tuning.py``, 1 and 3 ranks). Quadratic fits are ill-conditioned (condition number
~1e11 for the Cu example at twojmax 4, 120 columns), so two exact methods agree only to about
cond · eps: measured 2e-8 relative at the input's weights and 3e-5 at weights 10^±1 from them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy.linalg import lapack

from ..errors import FitError
from ..pipeline.compression import Compressed
from .blocks import KINDS, CVBlocks

__all__ = ["CVErrors", "Trial", "Space", "CrossValidator", "stack", "with_alpha", "alpha_section"]

#: Penalty per unit of relative excess of the CV energy RMSE over ``max_energy_rmse``.
PENALTY = 100.0


@dataclass(frozen=True)
class CVErrors:
    """Cross-validated errors of one trial, unweighted, in the metrics' units (energy eV/atom,
    force eV/Å, stress bar). ``rmse``: kind → CV RMSE over the cells the input fits (weight > 0);
    ``count``: kind → rows in it; ``group_rmse``: (group, kind) → CV RMSE of every cell with
    rows; ``baseline`` and ``baseline_group``: the same two at the input's weights (what the
    built-in objectives divide by; None while the baseline itself is being computed)."""

    rmse: Mapping[str, float]
    count: Mapping[str, int]
    group_rmse: Mapping[tuple, float]
    baseline: Mapping[str, float] | None = None
    baseline_group: Mapping[tuple, float] | None = None


@dataclass(frozen=True)
class Trial:
    """One evaluated choice: ``index`` (0 is the input's weights), the point ``x`` of the search
    space, the ``objective``, the ``errors``, the group ``weights`` (group → (energy, force,
    stress)) and the tuned ``alpha`` (None when alpha is not tuned)."""

    index: int
    x: tuple
    objective: float
    errors: CVErrors
    weights: Mapping[str, tuple]
    alpha: float | None = None


@dataclass(frozen=True)
class Space:
    """The search space: one name and bounds per tuned value (log10 of a weight factor, or of
    alpha relative to ``alpha_scale``), and ``x0``, the input's point."""

    names: tuple
    lower: np.ndarray
    upper: np.ndarray
    x0: np.ndarray
    fixed: str = ""
    alpha_scale: float = 1.0

    @property
    def size(self) -> int:
        return len(self.names)


def stack(parts: Sequence[tuple[Compressed, float]], n: int) -> Compressed:
    """The system of the scaled blocks ``parts`` ((block, scale) pairs): the R factor of the
    stacked ``scale · [R_k | (Qᵀb)_k]``, each block folded into the running triangle by LAPACK
    ``dtpqrt`` (QR of a triangle over an upper-trapezoidal block: about a third of the flops of
    a QR of the dense stack, as it keeps the blocks' zeros); R has ``min(rows, n)`` rows,
    ``rnorm2`` the residual no coefficients can change (Σ scale² ρ_k² plus the stack's own)."""
    parts = [(c, float(s)) for c, s in parts if s != 0.0 and c.nrows > 0 and c.R.shape[0]]
    rho = sum(s * s * c.rnorm2 for c, s in parts)
    nrows = sum(c.nrows for c, _ in parts)
    m = sum(c.R.shape[0] for c, _ in parts)
    if m == 0:
        return Compressed(np.zeros((0, n)), np.zeros(0), rho, nrows)
    top = np.zeros((n + 1, n + 1), order="F")
    nb = max(1, min(32, n + 1))
    for c, s in parts:
        k = c.R.shape[0]
        blk = np.empty((k, n + 1), order="F")
        np.multiply(c.R, s, out=blk[:, :n])
        np.multiply(c.qb, s, out=blk[:, n])
        top, _b, _t, info = lapack.dtpqrt(k, nb, top, blk, overwrite_a=1, overwrite_b=1)
        if info != 0:  # pragma: no cover - only invalid arguments make tpqrt fail
            raise RuntimeError(f"LAPACK dtpqrt failed (info={info})")
    k = min(m, n)
    R = np.triu(top[:k, :n])
    qb = top[:k, n].copy()
    extra = float(top[n, n]) ** 2 if m > n else 0.0
    return Compressed(R, qb, rho + extra, nrows)


def alpha_section(settings) -> str | None:
    """The name of the solver's own section when it has an ``alpha`` (RIDGE, LASSO, or a plugin
    solver's section), else None."""
    name = settings.solver.solver
    try:
        sec = settings.section(name)
    except KeyError:
        return None
    if dataclasses.is_dataclass(sec) and any(f.name == "alpha" for f in dataclasses.fields(sec)):
        return name
    if isinstance(sec, Mapping) and "alpha" in sec:
        return name
    return None


def with_alpha(settings, section: str, alpha: float):
    """``settings`` with ``[section] alpha`` replaced (a built-in solver section or a plugin's)."""
    from ..settings.schema import BUILTIN_SECTIONS, FrozenMap

    attr = BUILTIN_SECTIONS.get(section)
    if attr is not None:
        return dataclasses.replace(settings, **{attr: dataclasses.replace(
            getattr(settings, attr), alpha=float(alpha))})
    rec = settings.extra_sections[section]
    rec = (dataclasses.replace(rec, alpha=float(alpha)) if dataclasses.is_dataclass(rec)
           else FrozenMap(dict(rec, alpha=float(alpha))))
    return dataclasses.replace(settings, extra_sections=FrozenMap(
        dict(settings.extra_sections, **{section: rec})))


@dataclass
class CrossValidator:
    """Cross-validation errors of any weights from :class:`~mpisnap.tuning.blocks.CVBlocks`.

    ``input_weights``: group → (energy, force, stress) weights of the input; ``tuned``: the
    (group, kind) cells whose weights are tuned (in order), ``fixed``: the tuned cell held at its
    input weight (scale invariance), ``mode``: ``groups``, ``kinds`` or ``none``;
    ``alpha_section``: the solver section whose alpha is tuned (None: not tuned);
    ``objective_kinds``: the kinds of the default objective; ``objective``: a callable
    ``CVErrors → float`` replacing it; ``max_energy_rmse``: eV/atom (None: no constraint);
    ``decades`` and ``alpha_range``: the bounds of :attr:`space`; ``balance``: ``pooled``
    (each kind's CV RMSE over all its rows) or ``groups`` (each kind's geometric mean over the
    groups of their CV RMSE ratios, see :meth:`score`); ``baseline`` and ``baseline_group``:
    the input's CV errors (set by the caller from :meth:`errors` at ``space.x0``)."""

    blocks: CVBlocks
    solver: object
    model: object
    settings: object
    input_weights: Mapping[str, tuple]
    tuned: Sequence[tuple]
    fixed: tuple | None
    mode: str
    alpha_section: str | None
    objective_kinds: Sequence[str]
    objective: Callable | None = None
    max_energy_rmse: float | None = None
    decades: float = 3.0
    alpha_range: tuple = (1e-14, 1e-2)
    baseline: Mapping[str, float] | None = None
    balance: str = "pooled"
    baseline_group: Mapping[tuple, float] | None = None
    space: Space = field(init=False)

    def __post_init__(self):
        b = self.blocks
        n = b.ncols
        self._groups = list(b.group_names)
        self._gindex = {g: i for i, g in enumerate(self._groups)}
        # classes: the tuned values (a tuple of cells each) and the fixed class -1
        if self.mode == "groups":
            self._classes = [(c,) for c in self.tuned if c != self.fixed]
            names = [f"{c[0][0]}:{c[0][1]}" for c in self._classes]
        elif self.mode == "kinds":
            kinds = [k for k in KINDS if any(c[1] == k for c in self.tuned)
                     and (self.fixed is None or k != self.fixed[1])]
            self._classes = [tuple(c for c in self.tuned if c[1] == k) for k in kinds]
            names = kinds
        else:
            self._classes, names = [], []
        cls_of = {cell: j for j, cells in enumerate(self._classes) for cell in cells}
        nfolds = int(b.index.folds.max()) + 1 if len(b.index.folds) else 0
        self.nfolds = nfolds
        # per block: class, base scale (input weight; 1 for coarse blocks), metric flag
        self._block_class, self._block_scale = {}, {}
        for code in b.blocks:
            _, g, k = b.decode(code)
            group = self._groups[g]
            self._block_class[code] = cls_of.get((group, KINDS[k]), -1)
            # coarse blocks hold the input's weights already
            self._block_scale[code] = 1.0 if b.coarse else float(self.input_weights[group][k])
        nclass = len(self._classes)
        # complements C[f][c] (c = nclass is the fixed class)
        self._comp = self._complements(self._block_class, nclass)
        # per-group weights: also complements per kind, for points where every group of a kind
        # has the same factor (the first stage of the search): a few triangles per fold
        self._kind_of_class, self._kind_comp = None, None
        if self.mode == "groups" and nclass:
            kinds_t = sorted({c[0][1] for c in self._classes}, key=KINDS.index)
            self._kind_of_class = np.array([kinds_t.index(c[0][1]) for c in self._classes])
            if len(kinds_t) < nclass:
                kc = {code: (int(self._kind_of_class[c]) if c >= 0 else -1)
                      for code, c in self._block_class.items()}
                self._kind_comp = self._complements(kc, len(kinds_t))
        # held-out blocks of each fold, stacked: one matrix-vector product per fold
        self._held = []
        for f in range(nfolds):
            codes = [c for c in sorted(b.blocks) if b.decode(c)[0] == f]
            mats, qbs, bounds, rho, div, cells, rows = [], [], [0], [], [], [], []
            for code in codes:
                blk = b.unit.get(code)
                d = 1.0
                if blk is None:
                    blk = b.blocks[code]
                    d = b.unit_scale[code] ** 2
                mats.append(blk.R)
                qbs.append(blk.qb)
                bounds.append(bounds[-1] + blk.R.shape[0])
                rho.append(blk.rnorm2)
                div.append(d)
                _, g, k = b.decode(code)
                cells.append((g, k))
                rows.append(blk.nrows)
            H = np.vstack(mats) if mats else np.zeros((0, n))
            self._held.append((H, np.concatenate(qbs) if qbs else np.zeros(0),
                               np.array(bounds), np.array(rho), np.array(div), cells,
                               np.array(rows)))
        # which cells count in a kind's RMSE: the input fits them
        if b.coarse:
            self._metric = {(0, k): True for k in range(3)}
        else:
            self._metric = {(self._gindex[g], k): self.input_weights[g][k] > 0
                            for g in self._groups for k in range(3)}
        # the search space
        lower = [-self.decades] * nclass
        upper = [self.decades] * nclass
        x0 = [0.0] * nclass
        self._alpha_in = None
        alpha_scale = 1.0
        if self.alpha_section is not None:
            sec = self.settings.section(self.alpha_section)
            self._alpha_in = float(sec["alpha"] if isinstance(sec, Mapping) else sec.alpha)
            full = stack(self.full_parts(), n)
            smax = float(np.linalg.norm(full.R, 2)) if full.R.size else 1.0
            alpha_scale = smax * smax if smax > 0 else 1.0
            lo, hi = (math.log10(a) for a in self.alpha_range)
            y0 = math.log10(self._alpha_in / alpha_scale) if self._alpha_in > 0 else lo
            lower.append(min(lo, y0))
            upper.append(max(hi, y0))
            x0.append(y0)
            names = list(names) + ["alpha"]
        fixed = "" if self.fixed is None else f"{self.fixed[0]}:{self.fixed[1]}"
        self.space = Space(tuple(names), np.array(lower, float), np.array(upper, float),
                           np.array(x0, float), fixed, alpha_scale)

    def coarse_stage(self) -> tuple[Space, Callable] | None:
        """With per-group weights: the space of one factor per tuned kind (the fixed weight's
        kind excluded) and alpha, and its lift to :attr:`space` (every cell of a kind gets its
        kind's factor); None otherwise."""
        if self.mode != "groups":
            return None
        fixed_kind = self.fixed[1] if self.fixed is not None else None
        kinds = [k for k in KINDS if k != fixed_kind and any(c[0][1] == k for c in self._classes)]
        if not kinds:
            return None
        pos = [kinds.index(c[0][1]) if c[0][1] in kinds else -1 for c in self._classes]
        sp = self.space
        tail = 1 if self.alpha_section is not None else 0
        names = tuple(kinds) + (("alpha",) if tail else ())
        lower = np.r_[[-self.decades] * len(kinds), sp.lower[len(pos):]]
        upper = np.r_[[self.decades] * len(kinds), sp.upper[len(pos):]]
        x0 = np.r_[[0.0] * len(kinds), sp.x0[len(pos):]]
        idx = np.array(pos)

        def lift(y):
            y = np.asarray(y, float)
            x = np.where(idx >= 0, y[np.maximum(idx, 0)], 0.0) if len(idx) else np.zeros(0)
            return np.r_[x, y[len(kinds):]]

        return Space(names, lower, upper, x0, sp.fixed, sp.alpha_scale), lift

    def _complements(self, class_of: Mapping[int, int], nclass: int) -> list[list]:
        """Per fold f: per class c (``nclass``: the fixed class, for blocks of class -1) the QR of
        the other folds' blocks of class c, each scaled by its input weight."""
        b = self.blocks
        out = []
        for f in range(self.nfolds):
            parts: list[list] = [[] for _ in range(nclass + 1)]
            for code in sorted(b.blocks):
                if b.decode(code)[0] == f:
                    continue
                c = class_of[code]
                parts[c if c >= 0 else nclass].append((b.blocks[code], self._block_scale[code]))
            out.append([stack(p, b.ncols) for p in parts])
        return out

    def full_parts(self):
        """Every block at its input weight (the input's whole training system)."""
        return [(self.blocks.blocks[c], self._block_scale[c]) for c in sorted(self.blocks.blocks)]

    # -- points of the search space ------------------------------------------------------------

    def weights(self, x) -> dict[str, tuple]:
        """Group → (energy, force, stress) weights at point ``x`` (input weight · 10^x of the
        cell's class; the input's for the other cells)."""
        x = np.asarray(x, float)
        out = {g: list(w) for g, w in self.input_weights.items()}
        for j, cells in enumerate(self._classes):
            for g, kind in cells:
                k = KINDS.index(kind)
                groups = list(out) if g == "*ALL" else [g]
                for gg in groups:
                    out[gg][k] = self.input_weights[gg][k] * 10.0 ** float(x[j])
        return {g: tuple(w) for g, w in out.items()}

    def alpha(self, x) -> float | None:
        """alpha at point ``x`` (None when alpha is not tuned)."""
        if self.alpha_section is None:
            return None
        y = float(np.asarray(x, float)[-1])
        if y == self.space.x0[-1] and self._alpha_in:  # the input's alpha, to the last bit
            return self._alpha_in
        return self.space.alpha_scale * 10.0 ** y

    def input_alpha(self) -> float | None:
        return self._alpha_in

    # -- evaluation ----------------------------------------------------------------------------

    def fold_system(self, f: int, x) -> Compressed:
        """The training system of fold ``f`` (all other folds) at point ``x``: the QR of the
        scaled complements (per kind when every group of a kind has the same factor)."""
        x = np.asarray(x, float)
        nclass = len(self._classes)
        if self._kind_comp is not None:
            first = {}
            for j, kk in enumerate(self._kind_of_class):
                first.setdefault(int(kk), x[j])
            if all(x[j] == first[int(kk)] for j, kk in enumerate(self._kind_of_class)):
                scales = [10.0 ** float(first[k]) for k in range(len(first))] + [1.0]
                return stack(list(zip(self._kind_comp[f], scales)), self.blocks.ncols)
        scales = [10.0 ** float(x[j]) for j in range(nclass)] + [1.0]
        return stack(list(zip(self._comp[f], scales)), self.blocks.ncols)

    def coefficients(self, f: int, x, *, at_input: bool = False) -> np.ndarray:
        """The fit without fold ``f`` at point ``x`` (symmetrised as the fit writes it)."""
        system = self.fold_system(f, x)
        n = self.blocks.ncols
        if system.nrows == 0:
            raise FitError(f"[TUNE] folds: fold {f + 1} leaves no training rows (too few "
                           "training configurations for this many folds)")
        R = np.zeros((n, n))
        R[:system.R.shape[0]] = system.R
        qb = np.zeros(n)
        qb[:len(system.qb)] = system.qb
        settings = self.settings
        a = self.alpha(x)
        if a is not None:
            settings = with_alpha(settings, self.alpha_section, a)
        sol = self.solver.solve(R, qb, settings, nrows=system.nrows, rnorm2=system.rnorm2)
        return self.model.symmetrize(sol.coefficients)

    def errors(self, x) -> CVErrors:
        """The :class:`CVErrors` of point ``x``."""
        ng = len(self.blocks.group_names)
        ss = np.zeros((ng, 3))
        cnt = np.zeros((ng, 3), dtype=np.int64)
        for f in range(self.nfolds):
            H, q, bounds, rho, div, cells, rows = self._held[f]
            if not cells:
                continue
            beta = self.coefficients(f, x)
            r = H @ beta - q
            seg = np.add.reduceat(r * r, bounds[:-1]) if len(r) else np.zeros(len(cells))
            seg = np.where(np.diff(bounds) > 0, seg, 0.0)  # reduceat of an empty segment
            res = (seg + rho) / div
            for (g, k), v, m in zip(cells, res, rows):
                ss[g, k] += v
                cnt[g, k] += m
        group_rmse, rmse, count = {}, {}, {}
        for g in range(ng):
            for k in range(3):
                if cnt[g, k]:
                    group_rmse[(self.blocks.group_names[g], KINDS[k])] = math.sqrt(
                        ss[g, k] / cnt[g, k])
        for k in range(3):
            sel = [g for g in range(ng) if cnt[g, k] and self._metric.get((g, k), False)]
            n = int(sum(cnt[g, k] for g in sel))
            if n:
                rmse[KINDS[k]] = math.sqrt(sum(ss[g, k] for g in sel) / n)
                count[KINDS[k]] = n
        return CVErrors(rmse, count, group_rmse, self.baseline, self.baseline_group)

    def score(self, errors: CVErrors) -> float:
        """The objective of ``errors``: the callable's; else, over the objective's kinds,
        ``pooled``: Σ_kind RMSE_kind / RMSE_kind(input); ``groups``: Σ_kind of the geometric
        mean over the kind's groups (input weight > 0, input CV RMSE above 1e-6 of the kind's:
        a group whose error is round-off, e.g. zero forces by symmetry, says nothing) of
        RMSE_g,kind / RMSE_g,kind(input), so that no group can be sacrificed for another's
        outliers. Plus the ``max_energy_rmse`` penalty."""
        if self.objective is not None:
            v = float(self.objective(errors))
            if not math.isfinite(v):
                raise FitError(f"tune: the objective returned {v} (expected a finite number)")
            return v
        base = self.baseline or errors.rmse
        total = 0.0
        for k in self.objective_kinds:
            if k not in errors.rmse:
                continue
            if self.balance == "groups":
                bg = self.baseline_group or errors.group_rmse
                logs = [math.log(v / bg[key]) for key, v in errors.group_rmse.items()
                        if key[1] == k and self._metric.get((self._gindex.get(key[0], 0),
                                                             KINDS.index(k)), False)
                        and bg.get(key, 0.0) > 1e-6 * base[k] and v > 0]
                total += math.exp(sum(logs) / len(logs)) if logs else 1.0
            else:
                total += errors.rmse[k] / max(base[k], 1e-300)
        if self.max_energy_rmse is not None and "energy" in errors.rmse:
            excess = errors.rmse["energy"] / self.max_energy_rmse - 1.0
            if excess > 0:
                total += PENALTY * excess
        return total

    def trial(self, index: int, x) -> Trial:
        """Evaluate point ``x`` as trial ``index``."""
        x = np.asarray(x, float)
        errs = self.errors(x)
        return Trial(index, tuple(float(v) for v in x), self.score(errs), errs, self.weights(x),
                     self.alpha(x) if self.alpha_section is not None else self._alpha_in)
