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

    ``A`` (nrows, ncols) unweighted; ``b`` truth minus reference (and ESHIFT); ``w`` row weights
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
        return int(self.A.shape[0])

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
    ``timings`` maps stage name to seconds; ``files`` lists what the writers wrote."""

    settings: Any
    model: Any
    coefficients: np.ndarray
    solve_info: dict
    metrics: list[MetricRow]
    shard: DesignShard | None
    timings: dict[str, float] = field(default_factory=dict)
    covariance: np.ndarray | None = None
    files: list[str] = field(default_factory=list)

    def metric(self, group: str = "*ALL", weighting: str = "Unweighted", split: str = "Training",
               kind: str = "Energy") -> MetricRow:
        for m in self.metrics:
            if (m.group, m.weighting, m.split, m.kind) == (group, weighting, split, kind):
                return m
        raise KeyError((group, weighting, split, kind))
