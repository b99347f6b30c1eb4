"""The uncertainty stage of a fit: predictive standard deviations of every row, computed where the
rows are (each rank its own; the design matrix is never gathered), calibrated per row kind by
split-conformal cross-validation inside the training split, and their coverage.

For a row a of kind k and weight w: the model (epistemic) variance is ``aᵀΣa`` (Σ the posterior
covariance, nugget included), the raw predictive variance ``aᵀΣa + 1/(α_k w²)`` (the model's
noise of that row; ``v_k``, the noise of a typical row of kind k, for rows of weight 0:
:mod:`mpisnap.uq.posterior`), and the reported (calibrated) standard deviation
``s_k √(aᵀΣa + noise)`` (:mod:`mpisnap.uq.calibration`).

Coverage of the central 50/90/95 % intervals and the mean negative log-likelihood are reported
per group and kind, raw and calibrated, on the test split when there is one, else on the
held-out folds (whose calibrated coverage is then the conformal level by construction). A row
counts where its standard deviation is known (its kind was fitted).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..results import LABEL_DTYPE, ROW_KINDS
from .calibration import LEVELS, RELIABILITY_LEVELS, conformal_quantile, z_of
from .posterior import KIND_NAMES, Posterior

__all__ = ["RowAnalysis", "UQResult", "ROW_DTYPE", "CONFIG_DTYPE"]

#: The per-row table: the labels, truth, prediction, weight, the model standard deviation, the
#: calibrated predictive standard deviation and the raw (uncalibrated) one (label units).
ROW_DTYPE = np.dtype(LABEL_DTYPE.descr + [("truth", np.float64), ("prediction", np.float64),
                                          ("weight", np.float64), ("std_model", np.float64),
                                          ("std", np.float64), ("std_raw", np.float64)])
#: Per-configuration summary: index into ``config_names`` and ``group_names``, test flag,
#: number of atoms (force rows / 3; 0 without force rows), energy per atom error (prediction −
#: truth) and standard deviations (eV/atom), largest force component error and standard
#: deviations (eV/Å); NaN where the configuration has no such rows.
CONFIG_DTYPE = np.dtype([("config", np.int32), ("group", np.int16), ("test", np.bool_),
                         ("natoms", np.int32), ("energy_error", np.float64),
                         ("energy_std", np.float64), ("energy_std_model", np.float64),
                         ("max_force_error", np.float64), ("max_force_std", np.float64),
                         ("max_force_std_model", np.float64)])


@dataclass
class UQResult:
    """What the uncertainty stage found (every rank; ``rows`` and ``configurations`` on rank 0
    only, ``rows`` only when the fit keeps its rows).

    ``posterior`` the Gaussian posterior (mean as solved, before any symmetrisation);
    ``coefficients`` the written coefficients; ``noise_var`` (3,) the label noise variance per
    kind (energy eV²/atom², force eV²/Å², stress bar²; NaN for kinds not fitted); ``scale`` (3,)
    the calibration factors; ``quantile`` (3,) the conformal quantiles of the CV scores and
    ``ncal`` their numbers; ``split`` "test" or "cv" (where coverage and NLL were measured);
    ``coverage``, ``cv_coverage`` and ``nll`` lists of dicts (group, kind, level, n, raw,
    calibrated); ``reliability`` nominal levels and observed fractions per kind."""

    posterior: Posterior
    coefficients: np.ndarray
    noise_var: np.ndarray
    scale: np.ndarray
    quantile: np.ndarray
    ncal: np.ndarray
    options: Any
    solver: str
    info: dict
    split: str
    coverage: list
    cv_coverage: list
    nll: list
    reliability: dict
    config_names: list
    group_names: list
    rows: np.ndarray | None = None
    configurations: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready summary (no per-row data)."""
        kinds = [k for k in range(3) if np.isfinite(self.noise_var[k])]
        return {
            "solver": self.solver,
            "noise_std": {KIND_NAMES[k]: float(math.sqrt(self.noise_var[k])) for k in kinds},
            "noise_std_error": dict(self.info.get("noise_std_error", {})),
            "prior_precision": self.info.get("prior_precision"),
            "log_evidence": self.info.get("log_evidence"),
            "effective_parameters": self.info.get("effective_parameters"),
            "cov_nugget": self.options.cov_nugget,
            "calibration": {"method": self.options.calibration, "level": self.options.level,
                            "folds": self.options.folds, "seed": self.options.seed,
                            "scale": {KIND_NAMES[k]: _num(self.scale[k]) for k in kinds},
                            "quantile": {KIND_NAMES[k]: _num(self.quantile[k]) for k in kinds},
                            "scores": {KIND_NAMES[k]: int(self.ncal[k]) for k in kinds}},
            "split": self.split,
            "coverage": self.coverage,
            "cv_coverage": self.cv_coverage,
            "nll": self.nll,
            "reliability": self.reliability,
            "nsamples": self.options.nsamples,
        }


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class RowAnalysis:
    """Accumulates, rank by rank, what the stage needs of each row (a few numbers, never A):
    :meth:`add` each ``(A, b, w, labels)`` block of this rank's rows, then :meth:`finish`
    (collective).

    ``full``: the posterior of all training rows; ``coefficients`` the written coefficients (the
    predictions); ``fold_posteriors[f]`` the posterior without fold f (None: fold empty);
    ``folds`` the fold of each configuration; ``noise_var`` (3,) the label noise of a typical
    row per kind; ``alpha`` (3,) the noise precision of the weighted rows per kind (a row of
    weight w > 0 has noise variance ``1/(α w²)``; NaN: kind not fitted)."""

    def __init__(self, full: Posterior, coefficients: np.ndarray,
                 fold_posteriors: Sequence[Posterior | None], folds: np.ndarray,
                 noise_var: np.ndarray, alpha: np.ndarray | None = None) -> None:
        self.full = full
        self.coefficients = np.asarray(coefficients, dtype=float)
        self.fold_posteriors = list(fold_posteriors)
        self.folds = np.asarray(folds, dtype=np.int64)
        self.noise_var = np.asarray(noise_var, dtype=float)
        self.alpha = (np.asarray(alpha, dtype=float) if alpha is not None
                      else np.full(3, np.nan))
        self._parts: list[tuple] = []

    def _noise(self, kind: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Per-row noise variance: ``1/(α_k w²)`` for w > 0 where α_k is known, else v_k."""
        a = self.alpha[kind]
        ok = (w > 0) & np.isfinite(a)
        out = self.noise_var[kind].copy()
        out[ok] = 1.0 / (a[ok] * w[ok] * w[ok])
        return out

    def add(self, A: np.ndarray, b: np.ndarray, w: np.ndarray, lab: np.ndarray) -> None:
        """The numbers of one block of this rank's rows."""
        if len(b) == 0:
            return
        kind = lab["kind"].astype(np.int64)
        w = np.asarray(w, dtype=float)
        noise = self._noise(kind, w)
        pred = A @ self.coefficients
        vm = self.full.variance(A)
        std_raw = np.sqrt(vm + noise)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.abs(b - pred) / std_raw
        cv = np.full(len(b), np.nan)
        fold = self.folds[lab["config"]]
        held = (~lab["test"]) & (w > 0) & (fold >= 0)
        for f in np.unique(fold[held]):
            post = self.fold_posteriors[int(f)] if int(f) < len(self.fold_posteriors) else None
            if post is None:
                continue
            sel = np.flatnonzero(held & (fold == f))
            Af = A[sel]
            sd = np.sqrt(post.variance(Af) + noise[sel])
            with np.errstate(invalid="ignore", divide="ignore"):
                cv[sel] = np.abs(b[sel] - Af @ post.mean) / sd
        self._parts.append((lab.copy(), np.asarray(b, float).copy(), np.asarray(w, float).copy(),
                            pred, np.sqrt(vm), std_raw, score, cv))

    def _local(self):
        if not self._parts:
            z = np.zeros(0)
            return (np.zeros(0, LABEL_DTYPE), z, z, z, z, z, z, z)
        return tuple(np.concatenate([p[i] for p in self._parts]) for i in range(8))

    def finish(self, comm, options, solver: str, info: dict, config_names: Sequence[str],
               group_names: Sequence[str], *, keep_rows: bool = True) -> UQResult:
        """Collective: calibration scales, coverage and NLL reduced over ranks; rank 0 gets the
        per-row table (``keep_rows``) and the per-configuration summary."""
        lab, b, w, pred, std_model, std_raw, score, cv = self._local()
        kind = lab["kind"].astype(np.int64)
        level = float(options.level)
        zc = z_of(level)
        quantile = np.full(3, np.nan)
        ncal = np.zeros(3, dtype=np.int64)
        scale = np.full(3, np.nan)
        for k in range(3):
            sel = (kind == k) & np.isfinite(cv)
            q, n = conformal_quantile(comm, cv[sel], level)
            quantile[k], ncal[k] = q, n
            if not np.isfinite(self.noise_var[k]):
                continue
            if options.calibration == "none":
                scale[k] = 1.0
            elif n > 0:
                scale[k] = q / zc
        std = scale[kind] * std_raw if len(kind) else np.zeros(0)
        test = lab["test"] & np.isfinite(std)
        ntest = comm.allreduce(int(np.count_nonzero(test)))
        split = "test" if ntest > 0 else "cv"
        if split == "test":
            ev_rows, ev_score = test, score
        else:
            ev_rows, ev_score = np.isfinite(cv) & np.isfinite(std), cv
        coverage, nll = _coverage(comm, lab, kind, ev_rows, ev_score, std_raw, scale,
                                  group_names, with_nll=True)
        cv_rows = np.isfinite(cv) & np.isfinite(std)
        cv_coverage, _ = _coverage(comm, lab, kind, cv_rows, cv, std_raw, scale, group_names,
                                   with_nll=False)
        reliability = _reliability(comm, kind, ev_rows, ev_score, scale)
        rows = None
        if keep_rows:
            table = np.zeros(len(b), ROW_DTYPE)
            for name in LABEL_DTYPE.names:
                table[name] = lab[name]
            table["truth"], table["prediction"], table["weight"] = b, pred, w
            table["std_model"], table["std"], table["std_raw"] = std_model, std, std_raw
            parts = comm.gather(table, root=0)
            if comm.rank == 0:
                rows = np.concatenate(parts)
                rows = rows[np.argsort(rows["config"], kind="stable")]
        configs = _config_summary(lab, kind, b, pred, std, std_model)
        parts = comm.gather(configs, root=0)
        configurations = None
        if comm.rank == 0:
            configurations = np.concatenate(parts)
            configurations = configurations[np.argsort(configurations["config"], kind="stable")]
        return UQResult(self.full, self.coefficients, self.noise_var.copy(), scale, quantile,
                        ncal, options, solver, info, split, coverage, cv_coverage, nll,
                        reliability, list(config_names), list(group_names), rows, configurations)


def _coverage(comm, lab, kind, rows, score, std_raw, scale, group_names, *, with_nll: bool):
    """Coverage (levels :data:`LEVELS`) and NLL per group (and ``*ALL``) and kind, raw and
    calibrated, of the rows ``rows`` with scores ``|r|/σ_raw``."""
    ng = len(group_names)
    L = len(LEVELS)
    zs = np.array([z_of(p) for p in LEVELS])
    counts = np.zeros((ng + 1, 3, L, 2), dtype=np.int64)
    n = np.zeros((ng + 1, 3), dtype=np.int64)
    sums = np.zeros((ng + 1, 3, 2))
    sel = np.flatnonzero(rows)
    g = lab["group"][sel].astype(np.int64)
    k = kind[sel]
    z = score[sel]
    s = scale[k]
    sr = std_raw[sel]
    for gi in (None,) + tuple(range(ng)):
        row = ng if gi is None else gi
        m = np.ones(len(sel), bool) if gi is None else g == gi
        for kk in range(3):
            mk = m & (k == kk)
            if not mk.any():
                continue
            n[row, kk] = int(mk.sum())
            for li, zl in enumerate(zs):
                counts[row, kk, li, 0] = int(np.count_nonzero(z[mk] <= zl))
                counts[row, kk, li, 1] = int(np.count_nonzero(z[mk] <= zl * s[mk]))
            if with_nll:
                lr = 0.5 * math.log(2 * math.pi) + np.log(sr[mk]) + 0.5 * z[mk] ** 2
                lc = lr + np.log(s[mk]) + 0.5 * z[mk] ** 2 * (1.0 / s[mk] ** 2 - 1.0)
                sums[row, kk] = (float(lr.sum()), float(lc.sum()))
    counts = comm.allreduce(counts)
    n = comm.allreduce(n)
    sums = comm.allreduce(sums) if with_nll else sums
    coverage, nll = [], []
    names = list(group_names) + ["*ALL"]
    for row in [ng] + list(range(ng)):
        for kk in range(3):
            if n[row, kk] == 0:
                continue
            for li, p in enumerate(LEVELS):
                coverage.append({"group": names[row], "kind": ROW_KINDS[kk], "level": p,
                                 "n": int(n[row, kk]),
                                 "raw": counts[row, kk, li, 0] / n[row, kk],
                                 "calibrated": counts[row, kk, li, 1] / n[row, kk]})
            if with_nll:
                nll.append({"group": names[row], "kind": ROW_KINDS[kk], "n": int(n[row, kk]),
                            "raw": float(sums[row, kk, 0] / n[row, kk]),
                            "calibrated": float(sums[row, kk, 1] / n[row, kk])})
    for c in coverage:
        c["raw"], c["calibrated"] = float(c["raw"]), float(c["calibrated"])
    return coverage, nll


def _reliability(comm, kind, rows, score, scale) -> dict:
    zs = np.array([z_of(p) for p in RELIABILITY_LEVELS])
    counts = np.zeros((3, len(zs), 2), dtype=np.int64)
    n = np.zeros(3, dtype=np.int64)
    for kk in range(3):
        m = rows & (kind == kk)
        if not m.any():
            continue
        z = score[m]
        n[kk] = int(m.sum())
        counts[kk, :, 0] = np.count_nonzero(z[None, :] <= zs[:, None], axis=1)
        counts[kk, :, 1] = np.count_nonzero(z[None, :] <= zs[:, None] * scale[kk], axis=1)
    counts = comm.allreduce(counts)
    n = comm.allreduce(n)
    out: dict = {"levels": [float(p) for p in RELIABILITY_LEVELS]}
    for kk in range(3):
        if n[kk]:
            out[ROW_KINDS[kk]] = {"n": int(n[kk]),
                                  "raw": (counts[kk, :, 0] / n[kk]).tolist(),
                                  "calibrated": (counts[kk, :, 1] / n[kk]).tolist()}
    return out


def _config_summary(lab, kind, b, pred, std, std_model) -> np.ndarray:
    cfgs, first = np.unique(lab["config"], return_index=True)
    out = np.zeros(len(cfgs), CONFIG_DTYPE)
    out["config"] = cfgs
    out["group"] = lab["group"][first]
    out["test"] = lab["test"][first]
    for name in ("energy_error", "energy_std", "energy_std_model", "max_force_error",
                 "max_force_std", "max_force_std_model"):
        out[name] = np.nan
    pos = np.searchsorted(cfgs, lab["config"])
    err = pred - b
    e = np.flatnonzero(kind == 0)
    out["energy_error"][pos[e]] = err[e]
    out["energy_std"][pos[e]] = std[e]
    out["energy_std_model"][pos[e]] = std_model[e]
    f = np.flatnonzero(kind == 1)
    if f.size:
        out["natoms"] = np.bincount(pos[f], minlength=len(cfgs)) // 3
        for name, val in (("max_force_error", np.abs(err[f])), ("max_force_std", std[f]),
                          ("max_force_std_model", std_model[f])):
            col = np.full(len(cfgs), -np.inf)
            np.maximum.at(col, pos[f], val)
            col[np.isneginf(col)] = np.nan
            out[name] = col
    return out
