"""Parsed data to :class:`~mpisnap.records.Configuration` records, shared by the reader plugins
and the features that read structures themselves (active learning's pool and validation set).

* :func:`fail`, :func:`floats`, :func:`number` — the checks of parsed values every reader makes:
  a one-line :class:`ValueError` naming the file (or frame) and the key.
* :func:`read_ase` — frames of any file :func:`ase.io.read` reads. A compressed file (``.gz``,
  ``.bz2``, ``.xz``) is decompressed once per file version (path, size, modification time) and
  its frames are parsed from memory: ASE's readers seek within the file they read, and a seek in
  a compressed stream decompresses it again from the start, so reading frame i of a file read
  each frame again and again.
* :func:`ase_configuration` — one ASE frame in mpisnap's units, in **ASE's conventions**: energy
  eV and forces eV/Å from the attached calculator (forces as stored: constraints are not
  applied), the stress converted from ASE's eV/Å³ (tensile positive) to bar, pressure convention
  (:func:`mpisnap.units.ase_stress_to_bar`). The ``ASE`` reader plugin is this function over
  :func:`read_ase`.
"""
from __future__ import annotations

import functools
import io
import math
import numbers
import os
from typing import Any, Mapping

import numpy as np

from .records import Configuration, check_configuration
from .units import ase_stress_to_bar

__all__ = ["fail", "floats", "number", "read_ase", "calc_results", "structure",
           "ase_configuration"]


def fail(where: str, msg: str) -> ValueError:
    """A one-line ValueError ``"<where>: <msg>"``."""
    return ValueError(f"{where}: {msg}".replace("\r", " ").replace("\n", " "))


def floats(where: str, key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``, or a one-line ValueError."""
    if isinstance(value, (str, bytes, Mapping)):
        raise fail(where, f"{key}: expected numbers, got {type(value).__name__}")
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond floats
        raise fail(where, f"{key}: expected an array of numbers of shape {shape}") from None
    if arr.shape != shape:
        raise fail(where, f"{key}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise fail(where, f"{key}: contains non-finite values (NaN, Infinity or null)")
    return arr


def number(where: str, key: str, value: Any) -> float:
    """``value`` as a finite float, or a one-line ValueError."""
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise fail(where, f"{key}: expected a number, got {value!r}"[:200])
    try:
        v = float(value)
    except OverflowError:  # an integer beyond floats
        v = math.copysign(math.inf, value)
    if not math.isfinite(v):
        raise fail(where, f"{key}: not finite ({v})")
    return v


# -- files ASE reads ------------------------------------------------------------------------------

def read_ase(path: str, index: Any = ":"):
    """``ase.io.read(path, index)`` (a list of frames for a slice or ``":"``, else one frame),
    a compressed file decompressed once per version (module docstring); any failure is a
    one-line ValueError naming the file."""
    from ase.io import read

    try:
        mem = _in_memory(path)
        if mem is None:
            return read(path, index=index)
        fmt, buf = mem
        return read(buf, index=index, format=fmt)
    except Exception as exc:  # unknown format, malformed file, ...: one line naming the file
        raise fail(path, f"ASE cannot read it: {type(exc).__name__}: {exc}") from None


def _in_memory(path: str):
    """``(format, file object over the decompressed content)`` of a compressed file that ASE's
    reader of its format reads from a file object, else None (ASE opens the file itself)."""
    from ase.io.formats import get_compression

    if get_compression(os.path.basename(path))[1] is None:
        return None
    st = os.stat(path)
    got = _decompressed(os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if got is None:
        return None
    fmt, binary, data = got
    buf = io.BytesIO(data)  # no copy of the content
    buf.name = path  # what the decompressing file object ASE opens tells its readers
    if binary:
        return fmt, buf
    # text as ase.io.formats.open_with_compression(path, "r") decodes it (gzip/bz2/lzma "rt")
    return fmt, io.TextIOWrapper(buf, encoding=io.text_encoding(None))


# the file being read (its frames are loaded one after another); the last one stays in memory
# until another compressed file is read or ``_decompressed.cache_clear()``
@functools.lru_cache(maxsize=1)
def _decompressed(path: str, size: int, mtime_ns: int):
    """``(format, binary, decompressed bytes)`` of a compressed file (the format as
    :func:`ase.io.read` finds it), or None for a format whose reader takes only a file name."""
    from ase.io.formats import filetype, get_ioformat, open_with_compression

    fmt = filetype(path)
    fmtio = get_ioformat(fmt)
    if not fmtio.acceptsfd:
        return None
    with open_with_compression(path, "rb") as fh:
        return fmt, fmtio.isbinary, fh.read()


def calc_results(atoms) -> dict:
    """The results of the calculator attached to an ASE frame ({} without one)."""
    calc = atoms.calc
    return dict(getattr(calc, "results", None) or {}) if calc is not None else {}


def structure(where: str, atoms) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """``(positions, cell, pbc, symbols)`` of an ASE frame, checked (at least one atom)."""
    n = len(atoms)
    if n == 0:
        raise fail(where, "no atoms")
    positions = floats(where, "positions", atoms.get_positions(), (n, 3))
    cell = floats(where, "cell", atoms.cell.array, (3, 3))
    pbc = tuple(bool(p) for p in atoms.pbc)
    return positions, cell, pbc, tuple(atoms.get_chemical_symbols())


def ase_configuration(atoms, name: str, group: str, where: str) -> Configuration:
    """Configuration ``name`` of ``group`` from an ASE frame, in ASE's conventions (module
    docstring); errors are one line starting with ``where``."""
    positions, cell, pbc, symbols = structure(where, atoms)
    n = len(symbols)
    res = calc_results(atoms)
    energy = forces = stress = None
    if res.get("energy") is not None:
        energy = number(where, "energy", res["energy"])
    if res.get("forces") is not None:
        forces = floats(where, "forces", res["forces"], (n, 3))
    if res.get("stress") is not None:
        s = np.asarray(res["stress"], dtype=float)
        if s.shape not in ((6,), (3, 3)):
            raise fail(where, f"stress: expected shape (6,) or (3, 3), got {s.shape}")
        stress = floats(where, "stress", ase_stress_to_bar(s), (3, 3))
    check_configuration(where, positions, cell, n, energy, forces, stress)
    return Configuration(name, group, positions, cell, pbc, symbols, energy, forces, stress)
