"""Reading the structures of a campaign: the unlabelled pool, the MD starting structures and the
labelled validation set. Each is a folder or a file: ``*.json`` files are FitSNAP JSON (read by
the ``JSON`` reader plugin, every unit style converted); any other file is read by
:func:`ase.io.read` (all frames). A folder is searched recursively (hidden files skipped), in
file-name order. Names are ``<relative path>`` or ``<relative path>#<frame>``."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import FitError
from ..records import ConfigRef, Configuration

__all__ = ["list_files", "read_structures", "read_labelled", "to_atoms"]


def list_files(path: str, where: str) -> tuple[str, list[str]]:
    """``(base folder, files)`` of a folder (recursively, sorted, hidden skipped) or one file."""
    if os.path.isfile(path):
        return os.path.dirname(path), [path]
    if not os.path.isdir(path):
        raise FitError(f"{where}: no such file or folder: {path}")
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [os.path.join(root, f) for f in names if not f.startswith(".")]
    files.sort(key=lambda f: os.path.relpath(f, path))
    if not files:
        raise FitError(f"{where}: no files in {path}")
    return path, files


def to_atoms(c: Configuration):
    """An ``ase.Atoms`` of a configuration's structure (no labels)."""
    from ase import Atoms

    return Atoms(symbols=list(c.symbols), positions=c.positions, cell=c.cell, pbc=c.pbc)


_COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _ase_frames(path: str, where: str) -> list:
    """Every frame of a file ASE reads. A compressed file (``.gz``, ``.bz2``, ``.xz``) is
    decompressed into memory first: ASE's readers seek within it, which costs a decompression
    per seek."""
    import importlib
    import io

    from ase.io import read

    try:
        ext = os.path.splitext(path)[1].lower()
        if ext in _COMPRESSED:
            from ase.io.formats import filetype

            fmt = filetype(path, guess=False)
            with importlib.import_module(_COMPRESSED[ext]).open(path, "rt") as fh:
                frames = read(io.StringIO(fh.read()), ":", format=fmt)
        else:
            frames = read(path, ":")
    except Exception as exc:  # any ASE failure: the file is not readable as given
        raise FitError(f"{where}: ASE cannot read {path}: {type(exc).__name__}: {exc}"
                       .replace("\n", " ")) from None
    if not frames:
        raise FitError(f"{where}: no structures in {path}")
    return frames


def read_structures(path: str, where: str, json_reader: Any) -> list[tuple[str, Any]]:
    """``[(name, ase.Atoms)]`` of every structure under ``path`` (labels dropped), in order."""
    base, files = list_files(path, where)
    out = []
    for f in files:
        rel = os.path.relpath(f, base) if base else os.path.basename(f)
        if f.endswith(".json"):
            c = json_reader.load(ConfigRef(rel, "pool", f, 0))
            out.append((rel, to_atoms(c)))
            continue
        frames = _ase_frames(f, where)
        for i, at in enumerate(frames):
            name = rel if len(frames) == 1 else f"{rel}#{i}"
            out.append((name, at.__class__(symbols=at.get_chemical_symbols(),
                                            positions=at.get_positions(), cell=at.get_cell(),
                                            pbc=at.get_pbc())))
    return out


def _labelled_frame(name: str, atoms) -> Configuration:
    """A configuration of an ASE frame with its attached labels, in the ``ASE`` reader's
    conventions: energy eV, forces eV/Å, the stress converted from ASE's eV/Å³ (tensile +) to
    bar, pressure convention (:func:`mpisnap.oracle.ase_stress_to_bar`)."""
    from ..oracle import ase_stress_to_bar

    res = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    stress = res.get("stress")
    try:
        return Configuration(name, "validation", np.asarray(atoms.get_positions(), float),
                             np.asarray(atoms.get_cell(), float),
                             tuple(bool(p) for p in atoms.get_pbc()),
                             tuple(atoms.get_chemical_symbols()), res.get("energy"),
                             res.get("forces"),
                             None if stress is None else ase_stress_to_bar(stress))
    except ValueError as exc:
        raise FitError(" ".join(str(exc).split())) from None


def read_labelled(path: str, where: str, registry) -> list[Configuration]:
    """The labelled structures under ``path`` as configurations (``JSON`` reader for ``*.json``;
    anything else through :func:`ase.io.read`, in the ``ASE`` reader's conventions)."""
    base, files = list_files(path, where)
    json_reader = registry.get("readers", "JSON")
    out = []
    for f in files:
        rel = os.path.relpath(f, base) if base else os.path.basename(f)
        if f.endswith(".json"):
            out.append(json_reader.load(ConfigRef(rel, "validation", f, 0)))
            continue
        frames = _ase_frames(f, where)
        out += [_labelled_frame(rel if len(frames) == 1 else f"{rel}#{i}", at)
                for i, at in enumerate(frames)]
    for c in out:
        if c.energy is None and c.forces is None:
            raise FitError(f"{where}: {c.name} has no energy or forces (the validation set "
                           "must be labelled)")
    return out


def check_structure(name: str, atoms, elements, where: str) -> None:
    """A candidate must be periodic in 3-D (its label is a FitSNAP JSON file) and of the
    fit's elements."""
    bad = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if bad:
        raise FitError(f"{where}: {name}: element {bad[0]!r} is not in [BISPECTRUM] type "
                       f"({' '.join(elements)})")
    if not all(atoms.get_pbc()) or abs(np.linalg.det(np.asarray(atoms.get_cell()))) <= 0:
        raise FitError(f"{where}: {name}: not periodic in 3 directions (labels are written as "
                       "FitSNAP JSON, which is periodic; put molecules and clusters in a box "
                       "with pbc)")
