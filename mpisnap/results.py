"""What a fit produces: the design shard of each rank, the metrics table and the fit result.

Row kinds: 0 energy (eV/atom), 1 force (eV/Å), 2 stress (bar, pressure convention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ROW_KINDS", "LABEL_DTYPE", "DesignShard", "MetricRow", "FitResult"]

ROW_KINDS = ("Energy", "Force", "Stress")

#: Per-row labels: configuration index (into ``config_names``), group index (into
#: ``group_names``), row kind (0 energy, 1 force, 2 stress), atom (force rows; -1 otherwise),
#: component (x y z for forces; 0..5 = xx yy zz yz xz xy for stress; 0 for energy), test flag.
LABEL_DTYPE = np.dtype([("config", np.int32), ("group", np.int16), ("kind", np.int8),
                        ("atom", np.int32), ("component", np.int8), ("test", np.bool_)])


@dataclass
class DesignShard:
    """The design-matrix rows one rank owns (FitSNAP layout, see the README).

    ``A`` (nrows, ncols) unweighted (None in the per-row table rank 0 gathers in a parallel
    run); ``b`` truth minus reference (and ESHIFT); ``w`` row weights
    (the fit minimises Σ_train (w (A x - b))²); ``labels`` a structured array of
    :data:`LABEL_DTYPE`; ``config_names`` and ``group_names`` resolve its indices (global lists,
    identical on every rank)."""

    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    labels: np.ndarray
    config_names: list[str]
    group_names: list[str]
    predictions: np.ndarray | None = None

    @property
    def nrows(self) -> int:
        return int(len(self.b))

    @property
    def train(self) -> np.ndarray:
        return ~self.labels["test"]


@dataclass(frozen=True)
class MetricRow:
    """One line of the metrics table (FitSNAP's columns)."""

    group: str        # a group name or "*ALL"
    weighting: str    # "Unweighted" | "Weighted"
    split: str        # "Training" | "Testing"
    kind: str         # "Energy" | "Force" | "Stress"
    ncount: int
    mae: float
    rmse: float
    rsq: float


@dataclass
class FitResult:
    """Everything a fit produced, handed to the writer plugins and returned by :func:`mpisnap.fit`.

    ``coefficients`` are in design-matrix column order; ``model.coefficient_blocks(coefficients)``
    gives them per element as the ``.snapcoeff`` file lists them (β0 first). ``shard`` holds this
    rank's rows with ``predictions``; ``metrics`` is the reduced table (identical on all ranks);
    ``timings`` maps stage name to seconds; ``files`` lists what the writers wrote;
    ``thread_pools`` the size of each thread pool (OpenMP, BLAS, …) this rank ran with."""

    settings: Any
    model: Any
    coefficients: np.ndarray
    solve_info: dict
    metrics: list[MetricRow]
    shard: DesignShard | None
    timings: dict[str, float] = field(default_factory=dict)
    covariance: np.ndarray | None = None
    files: list[str] = field(default_factory=list)
    reference: Any = None
    thread_pools: dict = field(default_factory=dict)  # pool kind -> threads in effect on this rank
    uq: Any = None  # mpisnap.uq.UQResult of a Bayesian solver (posterior, calibration), else None

    def predict(self, atoms=None, *, positions=None, cell=None, pbc=True, symbols=None) -> dict:
        """Energy (eV), forces (N, 3) eV/Å and stress (3, 3) bar (pressure convention, periodic
        cells only) of a structure: the fitted model plus the reference potential, on the scale
        of the training data (ESHIFT removed again). ``atoms`` is an ``ase.Atoms`` or give
        ``positions``, ``cell``, ``pbc`` and ``symbols``."""
        from .descriptors import pbc_flags
        from .records import Configuration

        if atoms is not None:
            if positions is not None or symbols is not None:
                raise ValueError("predict: give either an ase.Atoms or positions and symbols, "
                                 "not both")
            if not all(hasattr(atoms, m) for m in ("get_positions", "get_cell", "get_pbc",
                                                   "get_chemical_symbols")):
                text = repr(atoms) if len(repr(atoms)) <= 60 else repr(atoms)[:57] + "..."
                raise TypeError(f"predict: atoms must be an ase.Atoms (or give positions=..., "
                                f"symbols=...), got {type(atoms).__name__} {text}")
            positions, cell, pbc = atoms.get_positions(), np.array(atoms.get_cell()), atoms.get_pbc()
            symbols = atoms.get_chemical_symbols()
        if positions is None or symbols is None:
            raise ValueError("predict: give an ase.Atoms, or positions (N, 3) Å and symbols")
        if isinstance(symbols, str) or not all(isinstance(s, str) for s in symbols):
            raise TypeError(f"predict: symbols must be a list of element names, got "
                            f"{symbols!r}"[:200])
        n = len(symbols)
        if n == 0:
            raise ValueError("predict: the structure has no atoms")
        pbc = pbc_flags(pbc, "predict: pbc")
        cfg = Configuration("predict", "", np.asarray(positions, float),
                            np.zeros((3, 3)) if cell is None else np.asarray(cell, float), pbc,
                            tuple(symbols), 0.0, np.zeros((n, 3)), np.zeros((3, 3)))
        pred = self.predictor().predict(cfg)
        out = {"energy": pred.energy, "forces": pred.forces}
        if pred.stress is not None:  # ASE's eV/Å³, tensile positive -> LAMMPS bar, pressure
            from .units import NKTV2P

            s = -NKTV2P * pred.stress
            out["stress"] = np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])
        return out

    def predictor(self):
        """The fitted model as a :class:`mpisnap.models.Predictor` (energy, per-atom energies,
        forces and stress in ASE's units of any configuration; ``mpisnap.Calculator`` wraps
        it for ASE)."""
        from .models import LinearModel, LinearPredictor, Predictor

        if isinstance(self.model, Predictor):  # a trained (nonlinear) model predicts itself
            return self.model
        if isinstance(self.model, LinearModel):
            return LinearPredictor(self.model, self.coefficients, self.reference,
                                   self.settings.eshift)
        raise TypeError(f"model {getattr(self.model, 'name', self.model)!r} is neither a "
                        f"linear model nor a predictor (see mpisnap.models)")

    def metric(self, group: str = "*ALL", weighting: str = "Unweighted", split: str = "Training",
               kind: str = "Energy") -> MetricRow:
        for m in self.metrics:
            if (m.group, m.weighting, m.split, m.kind) == (group, weighting, split, kind):
                return m
        raise KeyError((group, weighting, split, kind))
