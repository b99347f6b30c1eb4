"""``<potential>_uq.h5``: the posterior and calibration of a fit, beside its LAMMPS files, and
:class:`Uncertainty`, which turns them into the standard deviations of any prediction.

File layout (HDF5, written with h5py; format ``mpisnap-uq`` version 1). Kinds are always in the
order energy, force, stress; label units are eV/atom, eV/Å and bar (LAMMPS ``metal``; stress in
the pressure convention)::

    /                    attrs: format, format_version, mpisnap_version, solver, potential,
                                model_form (the model-form plugin), settings (JSON of the
                                [BISPECTRUM] and [CALCULATOR] sections: the model is rebuilt
                                from them to compute design rows)
    /columns             (n,) column names (the design-matrix layout)
    /posterior/mean      (n,) the written coefficients (the posterior mean, orbit-averaged for
                              ChemSNAP)
    /posterior/covariance (n, n) their covariance, nugget included
    /posterior/factor    (n, q) F: for a design row a, aᵀΣa = |Fᵀa|² + nugget |a|²
                         attrs: nugget, prior_precision, log_evidence, effective_parameters
    /noise/std           (3,) label noise σ of a typical training row per kind (NaN: kind not
                              fitted); the noise of a new label
    /noise/precision     (3,) α per kind (of the weighted rows)
    /calibration/scale   (3,) the reported σ = scale × raw σ; also quantile (3,), scores (3,)
                         attrs: method, level, folds, seed
    /report              attrs: json (the summary of <metrics>_uq.json)
    /configurations      per-configuration summary (mpisnap.uq.analysis.CONFIG_DTYPE)
    /rows                per-row table (mpisnap.uq.analysis.ROW_DTYPE), when the fit kept rows
    /config_names, /group_names

The predictive standard deviation of a new label (:class:`Uncertainty`) is, for a design row a
of kind k, ``scale_k · √(aᵀΣa + noise_k²)``; the model (epistemic) part alone is ``√(aᵀΣa)``
(not calibrated: the calibration scales whole intervals per kind). For a configuration of N
atoms: ``energy_std`` is N × the per-atom energy row's (eV), ``forces_std`` (N, 3) per component
(eV/Å), ``stress_std`` (6,) Voigt xx yy zz yz xz xy in eV/Å³ (3-dimensional periodic cells).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from ..units import NKTV2P
from .posterior import KIND_NAMES

__all__ = ["FORMAT", "write_uq_file", "Uncertainty", "load_uncertainty", "uq_path", "predictor",
           "symmetrized_columns"]

FORMAT = "mpisnap-uq"
FORMAT_VERSION = 1


def uq_path(potential_path: str | os.PathLike) -> str:
    """``<stem>_uq.h5`` beside a potential file (``.mod``, ``.snapcoeff`` …)."""
    return os.path.splitext(os.fspath(potential_path))[0] + "_uq.h5"


def symmetrized_columns(model, X: np.ndarray) -> np.ndarray:
    """``P X`` for the model's coefficient symmetrisation P (identity except ChemSNAP), column
    by column."""
    X = np.asarray(X, dtype=float)
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        out[:, j] = model.symmetrize(X[:, j])
    return out


def _model_settings(settings) -> str:
    d = settings.to_dict()
    return json.dumps({"BISPECTRUM": d["BISPECTRUM"], "CALCULATOR": d["CALCULATOR"]})


def write_uq_file(path: str | os.PathLike, result) -> str:
    """Write ``result.uq`` (a fit's :class:`~mpisnap.uq.analysis.UQResult`) to ``path``
    atomically; returns the path."""
    import h5py

    from .. import __version__
    from ..io import atomic_path

    uq = result.uq
    model = result.model
    F = symmetrized_columns(model, uq.posterior.full_factor())
    nugget = float(uq.posterior.nugget)
    n = F.shape[0]
    cov = F @ F.T
    if nugget:
        cov += nugget * symmetrized_columns(model, np.eye(n))
    info = uq.info
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h:
            h.attrs["format"] = FORMAT
            h.attrs["format_version"] = FORMAT_VERSION
            h.attrs["mpisnap_version"] = str(__version__)
            h.attrs["solver"] = uq.solver
            h.attrs["potential"] = result.settings.outfile.potential
            h.attrs["model_form"] = str(model.name)
            h.attrs["settings"] = _model_settings(result.settings)
            text = h5py.string_dtype()
            h.create_dataset("columns", data=[str(c) for c in model.column_names()], dtype=text)
            p = h.create_group("posterior")
            p["mean"] = np.asarray(uq.coefficients, dtype=float)
            p["covariance"] = cov
            p["factor"] = F
            p.attrs["nugget"] = nugget
            for key in ("prior_precision", "log_evidence", "effective_parameters"):
                p.attrs[key] = float(info.get(key, np.nan))
            g = h.create_group("noise")
            g["std"] = np.sqrt(uq.noise_var)
            g["precision"] = np.array([float(info.get("alpha", {}).get(k, np.nan))
                                       for k in range(3)])
            g.attrs["kinds"] = " ".join(KIND_NAMES)
            g.attrs["units"] = "eV/atom eV/Angstrom bar"
            c = h.create_group("calibration")
            c["scale"] = uq.scale
            c["quantile"] = uq.quantile
            c["scores"] = uq.ncal
            opts = uq.options
            c.attrs["method"] = opts.calibration
            c.attrs["level"] = opts.level
            c.attrs["folds"] = opts.folds
            c.attrs["seed"] = opts.seed
            r = h.create_group("report")
            r.attrs["json"] = json.dumps(uq.summary(), default=float)
            h.create_dataset("config_names", data=list(uq.config_names), dtype=text)
            h.create_dataset("group_names", data=list(uq.group_names), dtype=text)
            if uq.configurations is not None:
                h["configurations"] = uq.configurations
            if uq.rows is not None:
                h.create_dataset("rows", data=uq.rows, compression="gzip", shuffle=True)
    return path


class Uncertainty:
    """The standard deviations of the predictions of a fitted linear model (see the module
    docstring): ``model`` makes the design rows, ``factor`` (n × q) and ``nugget`` give
    ``aᵀΣa``, ``noise_std`` (3,) and ``scale`` (3,) the label noise and calibration per kind
    (NaN: unknown)."""

    def __init__(self, model, factor: np.ndarray, nugget: float, noise_std: np.ndarray,
                 scale: np.ndarray, source: str = "") -> None:
        self.model = model
        self.factor = np.asarray(factor, dtype=float)
        self.nugget = float(nugget)
        self.noise_std = np.asarray(noise_std, dtype=float)
        self.scale = np.asarray(scale, dtype=float)
        self.source = source

    @classmethod
    def of_fit(cls, result) -> "Uncertainty":
        """From a fit with a Bayesian solver (``result.uq`` set)."""
        uq = result.uq
        if uq is None:
            raise ValueError("this fit has no uncertainty (use [SOLVER] solver = BAYES)")
        F = symmetrized_columns(result.model, uq.posterior.full_factor())
        return cls(result.model, F, uq.posterior.nugget, np.sqrt(uq.noise_var), uq.scale)

    def variances(self, A: np.ndarray) -> np.ndarray:
        """``aᵀΣa`` of each design row of ``A``."""
        S = A @ self.factor
        v = np.einsum("ij,ij->i", S, S)
        if self.nugget:
            v = v + self.nugget * np.einsum("ij,ij->i", A, A)
        return v

    def rows(self, config, threads: int | None = None):
        """``(A, kind)``: the design rows of ``config`` (labels are not needed)."""
        from ..records import Configuration

        n = len(config.symbols)
        pbc = tuple(bool(x) for x in np.broadcast_to(np.asarray(config.pbc, bool), (3,)))
        cell = np.zeros((3, 3)) if config.cell is None else np.asarray(config.cell, float)
        cfg = Configuration("predict", "", np.asarray(config.positions, float), cell, pbc,
                            tuple(config.symbols), 0.0, np.zeros((n, 3)), np.zeros((3, 3)))
        kw = {} if threads is None else {"threads": int(threads)}
        desc = self.model.descriptor.compute(positions=cfg.positions, cell=cfg.cell, pbc=pbc,
                                             symbols=cfg.symbols, **kw)
        A, _, kind, _, _ = self.model.rows(cfg, desc, None, 0.0)
        return A, kind

    def std(self, config, threads: int | None = None) -> dict[str, Any]:
        """``energy_std``, ``forces_std``, ``stress_std`` (predictive, calibrated; None where
        the noise of that kind is unknown) and the ``*_model`` parts, in ASE's units (eV, eV/Å,
        eV/Å³), of ``config`` (anything with ``positions``, ``cell``, ``pbc``, ``symbols``)."""
        A, kind = self.rows(config, threads)
        v = self.variances(A)
        n = len(config.symbols)
        per = {0: float(n), 1: 1.0, 2: 1.0 / NKTV2P}  # energy rows are per atom; stress in bar
        out: dict[str, Any] = {}
        for k, name, shape in ((0, "energy_std", None), (1, "forces_std", (n, 3)),
                               (2, "stress_std", (6,))):
            sel = kind == k
            if not sel.any():
                out[name] = out[name + "_model"] = None
                continue
            model = np.sqrt(v[sel]) * per[k]
            noise = self.noise_std[k]
            total = None
            if np.isfinite(noise) and np.isfinite(self.scale[k]):
                total = self.scale[k] * np.sqrt(v[sel] + noise * noise) * per[k]
            if shape is None:
                out[name + "_model"] = float(model[0])
                out[name] = None if total is None else float(total[0])
            else:
                out[name + "_model"] = model.reshape(shape)
                out[name] = None if total is None else total.reshape(shape)
        return out

    def add_to(self, prediction, config, threads: int | None = None):
        """``prediction`` (a :class:`mpisnap.models.Prediction`) with its ``*_std`` fields
        filled for ``config``."""
        return dataclasses.replace(prediction, **self.std(config, threads))


def _build_model(form: str, settings_json: str, threads: int | None, where: str):
    from ..pipeline.setup import _takes_threads
    from ..plugin_manager import build_registry, get_plugin_manager
    from ..settings import load_settings

    registry = build_registry(get_plugin_manager())
    rec = registry.get("model_forms", form, what=f"{where}: model_form")
    settings = load_settings(json.loads(settings_json))
    if threads and _takes_threads(rec.factory):
        return rec.factory(settings, threads=threads)
    return rec.factory(settings)


def load_uncertainty(path: str | os.PathLike, threads: int | None = None) -> Uncertainty:
    """An :class:`Uncertainty` from a ``<potential>_uq.h5`` file; a one-line ValueError naming
    the file when it is not one, or its model cannot be rebuilt with the installed plugins."""
    import h5py

    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as h:
            if h.attrs.get("format") != FORMAT:
                raise ValueError(f"{path}: not an mpisnap uncertainty file (format "
                                 f"{h.attrs.get('format')!r})")
            if int(h.attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise ValueError(f"{path}: format version {int(h.attrs['format_version'])} is "
                                 f"newer than this mpisnap reads ({FORMAT_VERSION})")
            form = str(h.attrs["model_form"])
            settings = str(h.attrs["settings"])
            columns = [c.decode() if isinstance(c, bytes) else str(c) for c in h["columns"][()]]
            factor = h["posterior/factor"][()]
            nugget = float(h["posterior"].attrs["nugget"])
            noise = h["noise/std"][()]
            scale = h["calibration/scale"][()]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the uncertainty file ({exc})") from None
    except KeyError as exc:
        raise ValueError(f"{path}: damaged uncertainty file (missing {exc.args[0]})") from None
    model = _build_model(form, settings, threads, path)
    if [str(c) for c in model.column_names()] != columns:
        raise ValueError(f"{path}: the model form {form!r} of the installed plugins makes "
                         "different columns than the file lists")
    return Uncertainty(model, factor, nugget, noise, scale, path)


class _UQPredictor:
    """A fitted linear model with its uncertainty: a :class:`mpisnap.models.Predictor` whose
    ``predict(config, uncertainty=True)`` fills the ``*_std`` fields."""

    def __init__(self, base, uncertainty: Uncertainty) -> None:
        self.base = base
        self.uncertainty = uncertainty
        self.elements = list(base.elements)

    def predict(self, config, *, uncertainty: bool = False):
        p = self.base.predict(config)
        return self.uncertainty.add_to(p, config) if uncertainty else p


def predictor(result):
    """The fit ``result`` (a Bayesian solver's) as a :class:`mpisnap.models.Predictor` with
    uncertainty: ``mpisnap.Calculator(mpisnap.uq.predictor(result))`` fills ``energy_std`` …"""
    return _UQPredictor(result.predictor(), Uncertainty.of_fit(result))
