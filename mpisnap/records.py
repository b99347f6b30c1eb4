"""Typed records passed between pipeline stages and returned by plugin hooks.

Units (converted by the readers, nowhere else): positions and cells in Å, energies in eV, forces in
eV/Å, stresses in bar in the pressure convention (positive = compressive, LAMMPS ``pxx``), virials
in eV.

Sanity bounds. A :class:`Configuration` checks its own numbers when it is made (whichever reader
made it): every value must be finite and shapes must agree, and values far beyond anything
physical are refused as corrupt data or a wrong unit — coordinates (positions and cell entries)
beyond ±:data:`MAX_COORDINATE` Å (1 cm), energies beyond :data:`MAX_ENERGY_PER_ATOM` eV per atom
in magnitude (all-electron total energies stay below ~1e6 eV/atom), force components beyond
:data:`MAX_FORCE` eV/Å, stress components beyond :data:`MAX_STRESS` bar (1e8 GPa). Together with
the weight bound of :data:`mpisnap.training_set.MAX_WEIGHT` this keeps every weighted, squared row of the
least-squares problem far inside the double range.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

__all__ = [
    "ConfigRef", "Configuration", "Reader", "ModelForm", "Solver", "SolveResult", "Writer",
    "ReferencePotential", "ReferenceResult", "SettingsSection", "check_configuration",
    "MAX_COORDINATE", "MAX_ENERGY_PER_ATOM", "MAX_FORCE", "MAX_STRESS",
]

#: Largest accepted |coordinate| (positions, cell entries), Å: 1 cm.
MAX_COORDINATE = 1e8
#: Largest accepted |energy| per atom, eV.
MAX_ENERGY_PER_ATOM = 1e8
#: Largest accepted |force component|, eV/Å.
MAX_FORCE = 1e8
#: Largest accepted |stress component|, bar (1e8 GPa).
MAX_STRESS = 1e12

_LABELS = {"positions": "positions", "cell": "cell", "energy": "energy", "forces": "forces",
           "stress": "stress"}


def _array(where: str, key: str, value: Any, shape: tuple[int, ...], bound: float, unit: str,
           item: Callable[[int, int], str]) -> None:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {key}: expected numbers of shape {shape}") from None
    if arr.shape != shape:
        raise ValueError(f"{where}: {key}: expected shape {shape}, got {arr.shape}")
    if not arr.size or -bound <= arr.min() and arr.max() <= bound:  # NaN fails: no temporaries
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{where}: {key}: {item(*idx)} is not finite ({arr[idx]})")
    big = np.abs(arr) > bound
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0])
        raise ValueError(f"{where}: {key}: {item(*idx)} is {arr[idx]:.6g} {unit}; beyond "
                         f"±1e{math.log10(bound):.0f} {unit} it is not physical (corrupt data "
                         "or a wrong unit?)")


def check_configuration(where: str, positions: Any, cell: Any, natoms: int,
                        energy: Any = None, forces: Any = None, stress: Any = None,
                        keys: Mapping[str, str] | None = None) -> None:
    """Check the numbers of one configuration (shapes, finiteness and the sanity bounds of the
    module docstring); a ValueError starting with ``where`` (a file or configuration name) and
    the offending key (``keys`` renames ``positions``, ``cell``, ``energy``, ``forces``,
    ``stress``, e.g. to a file format's own key names)."""
    k = {**_LABELS, **(keys or {})}
    _array(where, k["positions"], positions, (natoms, 3), MAX_COORDINATE, "Å",
           lambda i, a: f"atom {i} {'xyz'[a]}")
    _array(where, k["cell"], cell, (3, 3), MAX_COORDINATE, "Å",
           lambda i, a: f"cell vector {i} {'xyz'[a]}")
    if energy is not None:
        if isinstance(energy, bool) or not isinstance(energy, (int, float, np.integer,
                                                               np.floating)):
            raise ValueError(f"{where}: {k['energy']}: expected a number, got {energy!r}"[:200])
        e = float(energy)
        if not math.isfinite(e):
            raise ValueError(f"{where}: {k['energy']}: not finite ({e})")
        if abs(e) > MAX_ENERGY_PER_ATOM * max(natoms, 1):
            raise ValueError(f"{where}: {k['energy']}: {e:.6g} eV for {natoms} atoms; beyond "
                             f"±1e{math.log10(MAX_ENERGY_PER_ATOM):.0f} eV per atom it is not "
                             "physical (corrupt data or a wrong unit?)")
    if forces is not None:
        _array(where, k["forces"], forces, (natoms, 3), MAX_FORCE, "eV/Å",
               lambda i, a: f"atom {i} {'xyz'[a]}")
    if stress is not None:
        _array(where, k["stress"], stress, (3, 3), MAX_STRESS, "bar",
               lambda i, a: "component " + "xyz"[i] + "xyz"[a])


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

    def __post_init__(self) -> None:
        if len(self.pbc) != 3:
            raise ValueError(f"{self.name}: pbc must have 3 entries, got {self.pbc!r}")
        check_configuration(self.name, self.positions, self.cell, len(self.symbols),
                            self.energy, self.forces, self.stress)

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
    itself through its own ``train`` method; see :mod:`mpisnap.hookspecs`). The objects satisfy
    :class:`mpisnap.models.LinearModel` or :class:`mpisnap.models.TrainableModel`.

    ``[CALCULATOR] model = auto`` (the default) picks, among the forms whose ``accepts(settings)``
    is true, the one with the lowest ``priority`` (then name) — as reference potentials are
    chosen. A form without ``accepts`` is only used when named explicitly."""

    name: str
    kind: Literal["linear", "nonlinear"]
    factory: Callable[[Any], Any]
    description: str = ""
    accepts: Callable[[Any], bool] | None = None
    priority: int = 100


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
    ``[SOLVER] solver`` selects (case-insensitive).

    ``posterior`` marks a Bayesian solver: the fit compresses the training rows per
    cross-validation fold and row kind and calls ``solve(None, None, settings, nrows=...,
    rnorm2=..., blocks=...)`` with the :class:`mpisnap.pipeline.solving.Blocks`; it returns the
    posterior mean as ``coefficients``, its ``covariance`` and, in ``info``, the
    hyper-parameters :mod:`mpisnap.uq` reads; the fit then runs the uncertainty stage."""

    name: str
    solve: Callable[[np.ndarray, np.ndarray, Any], SolveResult]
    kinds: frozenset = frozenset({"linear"})
    description: str = ""
    posterior: bool = False


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


_SECTION_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_VERB = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class SettingsSection:
    """A section of the input file, ``[NAME]`` (see :mod:`mpisnap.settings`).

    ``parse(raw, ctx)`` gets the section's keys and values as strings (``raw``, empty when the
    input has no such section: return the defaults) and a
    :class:`mpisnap.settings.SectionContext` (``ctx.get(key, p_float, default)`` types a value,
    ``ctx.fail(key, problem)`` raises the one-line ``<file>: [NAME] key: problem`` error); it
    returns a frozen record (a frozen dataclass), which code reads as
    ``settings.section("NAME")``. Before it is called every key is checked against ``keys``
    (an entry ending in ``*`` allows every key with that prefix; None: any key, ``parse`` checks
    them); ``legacy`` keys are accepted and ignored with a notice. ``verb`` (e.g. ``"learn"``)
    makes it the section of one command: the others accept it and keep it unparsed. ``name``
    is in capitals (``[A-Z][A-Z0-9_]*``)."""

    name: str
    parse: Callable[[Mapping[str, str], Any], Any]
    keys: tuple[str, ...] | None
    verb: str | None = None
    description: str = ""
    legacy: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SECTION_NAME.fullmatch(self.name):
            raise ValueError(f"settings section name {self.name!r}: expected capitals, digits "
                             "and '_' (e.g. 'LEARN')")
        if self.verb is not None and not (isinstance(self.verb, str)
                                           and _VERB.fullmatch(self.verb)):
            raise ValueError(f"settings section [{self.name}]: verb {self.verb!r} must be a "
                             "lower-case command name (e.g. 'learn') or None")
        for attr in ("keys", "legacy"):
            value = getattr(self, attr)
            if value is None and attr == "keys":
                continue
            if not isinstance(value, (tuple, list)) or not all(isinstance(k, str) and k
                                                                for k in value):
                raise ValueError(f"settings section [{self.name}]: {attr} must be a sequence of "
                                 f"key names, got {value!r}")
            object.__setattr__(self, attr, tuple(value))
