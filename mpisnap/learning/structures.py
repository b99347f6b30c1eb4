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
from ..frames import ase_configuration, read_ase
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


def _ase_frames(path: str, where: str) -> list:
    """Every frame of a file ASE reads (:func:`mpisnap.frames.read_ase`: a compressed file is
    decompressed once)."""
    try:
        frames = read_ase(path, ":")
    except ValueError as exc:
        raise FitError(f"{where}: {exc}") from None
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


def _labelled_frame(name: str, atoms, where: str) -> Configuration:
    """A configuration of an ASE frame with its attached labels, read as the ``ASE`` reader
    reads it (:func:`mpisnap.frames.ase_configuration`)."""
    try:
        return ase_configuration(atoms, name, "validation", name)
    except ValueError as exc:
        raise FitError(f"{where}: {exc}") from None


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
        out += [_labelled_frame(rel if len(frames) == 1 else f"{rel}#{i}", at, where)
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
