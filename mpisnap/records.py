"""Typed records passed between pipeline stages and returned by plugin hooks.

Units (converted by the readers, nowhere else): positions and cells in Å, energies in eV, forces in
eV/Å, stresses in bar in the pressure convention (positive = compressive, LAMMPS ``pxx``), virials
in eV.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

__all__ = [
    "ConfigRef", "Configuration", "Reader", "ModelForm", "Solver", "SolveResult", "Writer",
    "ReferencePotential", "ReferenceResult",
]


@dataclass(frozen=True)
class ConfigRef:
    """Where one configuration lives: ``source`` (a file) and ``index`` within it, its group and a
    unique ``name`` (``group/file`` or ``group/file#index``). Sorting refs by name is the
    deterministic order of the training set."""

    name: str
    group: str
    source: str
    index: int = 0


@dataclass(frozen=True, eq=False)
class Configuration:
    """One labelled structure (units in the module docstring). ``energy``, ``forces`` and
    ``stress`` may be None when the data has no such label."""

    name: str
    group: str
    positions: np.ndarray              # (N, 3) Å
    cell: np.ndarray                   # (3, 3) rows are lattice vectors, Å
    pbc: tuple[bool, bool, bool]
    symbols: tuple[str, ...]
    energy: float | None = None        # eV, total
    forces: np.ndarray | None = None   # (N, 3) eV/Å
    stress: np.ndarray | None = None   # (3, 3) bar, pressure convention

    @property
    def natoms(self) -> int:
        return len(self.symbols)

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))


@dataclass(frozen=True)
class Reader:
    """A training-data reader plugin.

    ``list_configs(data_path, group)`` returns the configurations of one group (deterministic
    order); ``load(ref)`` reads one. ``name`` is what ``[SCRAPER] scraper`` selects
    (case-insensitive)."""

    name: str
    list_configs: Callable[[str, str], Sequence[ConfigRef]]
    load: Callable[[ConfigRef], Configuration]
    description: str = ""


@dataclass(frozen=True)
class ModelForm:
    """A model-form plugin: ``factory(settings)`` returns the model object.

    ``kind`` is ``"linear"`` (the model turns descriptor blocks into design-matrix rows and is
    fitted by a linear solver on the compressed QR system) or ``"nonlinear"`` (the model trains
    itself through its own ``train`` method; see :mod:`mpisnap.hookspecs`)."""

    name: str
    kind: Literal["linear", "nonlinear"]
    factory: Callable[[Any], Any]
    description: str = ""


@dataclass(frozen=True)
class SolveResult:
    """Coefficients of a linear fit and what the solver knows about them."""

    coefficients: np.ndarray
    covariance: np.ndarray | None = None
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Solver:
    """A solver plugin. ``solve(R, qb, settings, *, nrows=None, rnorm2=0.0)`` minimises
    ``|R x - qb|^2`` (+ its penalty) for the upper-triangular R and Qᵀb of the weighted training
    rows (``nrows`` training rows in all, ``rnorm2`` the squared residual outside range(R)) and
    returns a :class:`SolveResult`. ``kinds`` says which model kinds it serves; ``name`` is what
    ``[SOLVER] solver`` selects (case-insensitive)."""

    name: str
    solve: Callable[[np.ndarray, np.ndarray, Any], SolveResult]
    kinds: frozenset = frozenset({"linear"})
    description: str = ""


@dataclass(frozen=True)
class Writer:
    """An output plugin: ``write(fit_result, output_dir)`` writes its files atomically and returns
    their paths. ``enabled(settings)`` says whether it runs for these settings."""

    name: str
    write: Callable[[Any, str], list]
    enabled: Callable[[Any], bool] = lambda settings: True
    description: str = ""


@dataclass(frozen=True)
class ReferenceResult:
    energy: float        # eV
    forces: np.ndarray   # (N, 3) eV/Å
    virial: np.ndarray   # (6,) eV, xx yy zz yz xz xy (W = -Σ r_ij ⊗ ∂E/∂r_ij)


@dataclass(frozen=True)
class ReferencePotential:
    """A reference-potential plugin: ``accepts(reference_settings)`` says whether it can evaluate
    the ``[REFERENCE]`` pair style; ``factory(settings)`` returns an object whose
    ``compute(configuration) -> ReferenceResult``."""

    name: str
    accepts: Callable[[Any], bool]
    factory: Callable[[Any], Any]
    priority: int = 100
    description: str = ""
