"""The model contract: what the pipeline, the writers and the calculators expect of a model.

A model form plugin (:func:`mpisnap.hookspecs.mpisnap_model_forms`) returns a
:class:`~mpisnap.records.ModelForm` whose factory builds one of two kinds of model:

* a :class:`LinearModel` — linear in its coefficients: it turns one configuration's descriptors
  into design-matrix rows; the pipeline reduces the weighted rows by a tall-skinny QR and a solver
  plugin solves the compressed system (linear, quadratic and ChemSNAP SNAP);
* a :class:`TrainableModel` — trains itself on this rank's configurations, data-parallel over
  ``comm`` (the neural-network form).

Every fitted model is a :class:`Predictor`: energy, per-atom energies, forces and stress of any
configuration, with room for uncertainty (``predict(config, uncertainty=True)`` fills the
``*_std`` fields of :class:`Prediction` when the model has a posterior or an ensemble).

These are :class:`typing.Protocol` classes: a third-party model satisfies them by having the
methods, not by inheriting; the core checks them with ``isinstance`` (they are runtime
checkable), never with ``hasattr``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["Rows", "Prediction", "LinearModel", "RowsInPlace", "TrainableModel", "Predictor",
           "LinearPredictor", "VOIGT"]

#: Voigt order of stress and virial components everywhere in mpisnap: xx yy zz yz xz xy.
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@dataclass(frozen=True)
class Rows:
    """Design-matrix rows of one configuration: ``A`` (nrows, ncols), truth ``b`` and per row its
    ``kind`` (0 energy, 1 force, 2 stress), ``atom`` (force rows; -1 otherwise) and ``component``
    (x y z for forces, Voigt index for stress). Unpacks as the 5-tuple ``(A, b, kind, atom,
    component)``."""

    A: np.ndarray
    b: np.ndarray
    kind: np.ndarray
    atom: np.ndarray
    component: np.ndarray

    def __iter__(self):
        return iter((self.A, self.b, self.kind, self.atom, self.component))


@dataclass(frozen=True)
class Prediction:
    """What a predictor says about one configuration of N atoms.

    ``energy`` eV; ``energies`` (N,) eV per atom (they sum to ``energy``; None when a reference
    potential cannot split its energy by atom); ``forces`` (N, 3) eV/Å; ``stress`` (6,) eV/Å³ in
    Voigt order xx yy zz yz xz xy with ASE's sign, σ = (1/V) ∂E/∂ε (tensile positive: the
    negative of the pressure), None without a periodic cell. The ``*_std`` fields are one-sigma
    uncertainties in the same units, None unless asked for and available: ``energy_std``,
    ``forces_std`` (N, 3), ``stress_std`` (6,) of a new *label* (model and noise, calibrated),
    and the ``*_std_model`` fields, the model (epistemic) part alone (what active learning ranks
    candidates by; see :mod:`mpisnap.uq`)."""

    energy: float
    forces: np.ndarray
    energies: np.ndarray | None = None
    stress: np.ndarray | None = None
    energy_std: float | None = None
    forces_std: np.ndarray | None = None
    stress_std: np.ndarray | None = None
    energy_std_model: float | None = None
    forces_std_model: np.ndarray | None = None
    stress_std_model: np.ndarray | None = None


@runtime_checkable
class Predictor(Protocol):
    """Energy, forces and stress of any configuration (``mpisnap.records.Configuration`` or
    anything with ``positions``, ``cell``, ``pbc`` and ``symbols``)."""

    elements: Sequence[str]

    def predict(self, config: Any, *, uncertainty: bool = False) -> Prediction: ...


@runtime_checkable
class LinearModel(Protocol):
    """A model linear in its coefficients (fitted by TSQR and a solver plugin).

    ``ncols`` design-matrix columns named by ``column_names()``; ``row_count(config, kinds)`` the
    rows ``rows(...)`` will return (so the caller can preallocate); ``rows(config, descriptors,
    reference, eshift, kinds)`` a :class:`Rows` (see :class:`mpisnap.plugins.models.LinearSNAP`
    for the units); ``symmetrize(coefficients)`` the coefficients as written to files;
    ``coefficient_blocks(coefficients)`` per element, as the ``.snapcoeff`` lists them;
    ``predictor(coefficients, reference, eshift)`` the fitted model as a :class:`Predictor`."""

    name: str
    kind: str
    ncols: int
    descriptor: Any

    def column_names(self) -> list[str]: ...

    def row_count(self, config: Any, kinds: tuple[bool, bool, bool] = (True, True, True)) -> int: ...

    def rows(self, config: Any, descriptors: Any, reference: Any = None, eshift: float = 0.0,
             kinds: tuple[bool, bool, bool] = (True, True, True)) -> Rows: ...

    def symmetrize(self, coefficients: np.ndarray) -> np.ndarray: ...

    def coefficient_blocks(self, coefficients: np.ndarray) -> dict[str, np.ndarray]: ...


@runtime_checkable
class RowsInPlace(Protocol):
    """A linear model that can write one configuration's rows straight into caller-owned memory,
    computing its descriptors a block of atoms at a time (bounded memory for huge
    configurations): ``rows_into(A, config, reference, eshift, kinds)`` fills ``A`` (shape
    ``(row_count(config, kinds), ncols)``) and returns ``(b, kind, atom, component)`` as in
    :class:`Rows`."""

    def row_count(self, config: Any, kinds: tuple[bool, bool, bool] = (True, True, True)) -> int: ...

    def rows_into(self, A: np.ndarray, config: Any, reference: Any = None, eshift: float = 0.0,
                  kinds: tuple[bool, bool, bool] = (True, True, True)) -> tuple: ...


@runtime_checkable
class TrainableModel(Protocol):
    """A model that trains itself: ``train(comm, setup, partition, timer)`` gets the pieces of
    the fit (settings, reader, reference: :class:`mpisnap.pipeline.Setup`) and this rank's share
    of the configurations (:class:`mpisnap.pipeline.Partition`), trains data-parallel over
    ``comm`` and returns the :class:`mpisnap.results.FitResult` the writers receive.

    It may also define ``owners(costs, entries, nranks) -> owner rank per entry``, which then
    replaces the plan's cost balancing (:func:`mpisnap.pipeline.plan`; ``partition.costs`` holds
    the estimated costs), e.g. to share every training batch evenly between ranks."""

    name: str
    kind: str

    def train(self, comm: Any, setup: Any, partition: Any, timer: Any) -> Any: ...


class LinearPredictor:
    """A fitted :class:`LinearModel` as a :class:`Predictor`: ``A @ coefficients`` of the
    configuration's rows, plus the reference potential, minus the energy shifts (so energies are
    on the scale of the training data)."""

    def __init__(self, model: LinearModel, coefficients: np.ndarray, reference: Any = None,
                 eshift: Any = None) -> None:
        self.model = model
        self.coefficients = np.asarray(coefficients, float)
        self.reference = reference
        self.eshift = dict(eshift or {})
        self.elements = list(model.descriptor.elements)

    def predict(self, config: Any, *, uncertainty: bool = False) -> Prediction:
        if uncertainty:
            raise NotImplementedError(f"model {self.model.name!r} has no uncertainty estimate")
        from .records import Configuration
        from .units import NKTV2P

        n = len(config.symbols)
        pbc = tuple(bool(x) for x in config.pbc)
        cfg = Configuration("predict", "", np.asarray(config.positions, float),
                            np.asarray(config.cell, float), pbc, tuple(config.symbols), 0.0,
                            np.zeros((n, 3)), np.zeros((3, 3)))
        desc = self.model.descriptor.compute(positions=cfg.positions, cell=cfg.cell, pbc=pbc,
                                             symbols=cfg.symbols)
        ref = self.reference.compute(cfg) if self.reference is not None else None
        shifts = np.array([self.eshift.get(s, 0.0) for s in cfg.symbols])
        A, _, kind, _, _ = self.model.rows(cfg, desc, None, 0.0)
        y = A @ self.coefficients
        energy = n * y[kind == 0][0] - shifts.sum() + (ref.energy if ref else 0.0)
        energies = None
        if ref is None or getattr(ref, "energies", None) is not None:
            blocks = self.model.coefficient_blocks(self.coefficients)
            mask = self.model.descriptor.blank2J
            types = self.model.descriptor.type_indices(cfg.symbols)
            beta = np.array([blocks[e][1:] * mask[t] for t, e in enumerate(self.elements)])
            beta0 = np.array([blocks[e][0] for e in self.elements])
            energies = np.einsum("ik,ik->i", desc.B, beta[types]) + beta0[types] - shifts
            if ref is not None:
                energies = energies + np.asarray(ref.energies)
        forces = y[kind == 1].reshape(n, 3) + (np.asarray(ref.forces) if ref else 0.0)
        stress = None
        if np.any(kind == 2):
            # stress rows are bar, pressure convention (+ compressive); ASE wants eV/Å³, tensile +
            virial = y[kind == 2] * cfg.volume / NKTV2P + (np.asarray(ref.virial) if ref else 0.0)
            stress = -virial / cfg.volume
        return Prediction(float(energy), forces, energies, stress)
