"""Built-in training-data readers: ``JSON`` (FitSNAP JSON), ``XYZ`` (FitSNAP extended XYZ) and
``ASE`` (any file ASE reads). ``[SCRAPER] scraper`` picks one by name (case-insensitive).

Every reader returns :class:`~mpisnap.records.Configuration` records in LAMMPS ``metal`` units:
positions and cells in Å (cell rows are the lattice vectors), energies in eV, forces in eV/Å and
stresses as 3×3 tensors in **bar, pressure convention** (positive = compressive, like LAMMPS
``pxx``). Units are converted here and nowhere else. Every user error (missing group, malformed
file, wrong shape, non-finite number, unknown unit, a value beyond the sanity bounds of
:func:`mpisnap.records.check_configuration` such as a coordinate beyond ±1e8 Å) is a
:class:`ValueError` with a one-line message that names the file and, where there is one, the key.

``JSON`` — one configuration per file, ``<dataPath>/<group>/*.json`` in file-name order (Python
string order, independent of the directory listing and the locale); other files in the folder are
ignored, as FitSNAP does. A first line that does not begin with ``{`` is a comment and skipped.
Schema (``spec/fitsnap-formats.md`` §2)::

    {"Dataset": {"Data": [{"Positions": [[x, y, z], ...], "Lattice": [[a1], [a2], [a3]],
                           "AtomTypes": ["In", ...], "NumAtoms": N, "Energy": E,
                           "Forces": [[fx, fy, fz], ...], "Stress": [[sxx, sxy, sxz], ...]}],
                 "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
                 "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
                 "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol"}}

``Data`` holds exactly one configuration. ``Energy``, ``Forces`` and ``Stress`` may be absent (or
``null``): the record then holds ``None``. ``NumAtoms`` (optional) must equal the number of
positions, atom types and force rows. The JSON stress is already in the pressure convention; it is
only scaled to bar. The ``*Style`` keys may sit in ``Dataset`` or in the configuration (not both)
and default to metal units. Recognised names (case-insensitive; spaces, ``_`` and ``-`` are
ignored and ``/`` reads as ``per``, so ``eV/Angstrom`` = ``electronvoltperangstrom``):

===============  =============================================================================
length           ``angstrom`` (``ang``, ``a``, ``å``) 1; ``bohr`` 0.529177210903 Å;
                 ``nm`` (``nanometer``) 10 Å; ``pm`` (``picometer``) 0.01 Å
energy           ``electronvolt`` (``ev``) 1; ``hartree`` (``ha``) 27.211386245988 eV;
                 ``rydberg`` (``ry``) 13.605693122994 eV; ``kcal/mol`` 4184/(N_A e) eV;
                 ``kJ/mol`` 1000/(N_A e) eV (thermochemical calorie 4.184 J, exact)
force            any ``<energy>per<length>`` of the two lists above, e.g.
                 ``electronvoltperangstrom``, ``hartreeperbohr``, ``kcal/mol/angstrom``
pressure         ``bar`` 1; ``kbar`` (``kB``, VASP's kilobar) 1000; ``GPa`` 1e4; ``MPa`` 10;
                 ``Pa`` 1e-5; ``atm`` 1.01325 (bar)
===============  =============================================================================

Constants: CODATA 2018 (Bohr radius, Hartree energy) and the exact SI values of e and N_A; the
conversion factors are :data:`LENGTH_UNITS`, :data:`ENERGY_UNITS` and :data:`PRESSURE_UNITS`.
``AtomTypeStyle`` must be ``chemicalsymbol``. JSON configurations are periodic in all three
directions. An unknown style is an error naming the file and the key.

``XYZ`` — FitSNAP's extended XYZ: one file per group, ``<dataPath>/<group>.extxyz`` or
``<group>.xyz`` (``.extxyz`` wins when both exist, as in FitSNAP), any number of frames. The
comment line carries ``Lattice`` (the cell vectors, as in every extended XYZ file), ``Properties``
(``species:S:1:pos:R:3:forces:R:3``), ``energy`` (eV) and ``stress`` (9 numbers, bar, **pressure
convention**, in the extended-XYZ Fortran order that FitSNAP and ASE both use; for the symmetric
stress tensor the order does not matter). The file is parsed with ASE's extxyz reader, but
``energy`` and ``stress`` are taken from the comment line as raw numbers, before ASE's
calculator sees them, so no sign or unit is changed. Configuration ``i`` of the file is
``ConfigRef(name="<group>/<file>#<i>", index=i)``; ``i`` is zero-padded to the width of the
largest index in that file so that sorting by name keeps the file order. Frames without
``Lattice`` are non-periodic (``pbc`` and zero cell as ASE reads them). A force column named
``force`` (FitSNAP's alias) is read like ``forces``. Listing finds the frames from the atom-count
lines alone; the byte offsets are memoised per file version (path, size, modification time), so
loading frame i reads that frame only.

``ASE`` — any file :func:`ase.io.read` reads (format guessed from the name/content), every
regular file of ``<dataPath>/<group>/`` (hidden files skipped) in file-name order, all frames of
each (names as for ``XYZ``). Labels come from the calculator results ASE attaches (a
``SinglePointCalculator`` for trajectories, OUTCARs, extxyz …): ``energy`` (eV), ``forces`` (eV/Å,
as stored: constraints are not applied) and ``stress``. Here the stress is in **ASE's
convention** (eV/Å³, tensile positive) and is converted to bar, pressure convention:
``σ_bar = −1.602176634e6 · σ_ASE`` (1 eV/Å³ = 1.602176634e11 Pa = 1.602176634e6 bar, exact).
Note the difference from ``XYZ``: an ``.extxyz`` file read by the ``ASE`` reader has its
``stress=`` read in ASE's convention (eV/Å³, tensile positive), by the ``XYZ`` reader in
FitSNAP's (bar, compressive positive). A compressed file (``.gz``, ``.bz2``, ``.xz``) is
decompressed once per file version, not once per frame. The frames and their conversion are
:func:`mpisnap.frames.read_ase` and :func:`mpisnap.frames.ase_configuration`, which active
learning's labelled sets use too.
"""
from __future__ import annotations

import functools
import io
from itertools import chain as _chain
import json
import math
import os
import re
from typing import Any, Mapping

import numpy as np

try:
    import orjson as _orjson
except ImportError:  # optional: json's own parser then
    _orjson = None

from mpisnap import units as _units
from mpisnap.frames import (ase_configuration, calc_results as _calc_results, fail as _fail,
                            floats as _floats, number as _number, read_ase,
                            structure as _structure)
from mpisnap.hookspecs import hookimpl
from mpisnap.records import (MAX_COORDINATE, MAX_ENERGY_PER_ATOM, MAX_FORCE, MAX_STRESS, ConfigRef,
                             Configuration, Reader, check_configuration)

__all__ = [
    "ENERGY_UNITS", "EV_PER_A3_IN_BAR", "LENGTH_UNITS", "PRESSURE_UNITS",
    "ase_stress_to_bar", "force_unit", "mpisnap_readers",
]

# -- units (CODATA 2018; e and N_A exact since the 2019 SI) ---------------------------------------
_E_CHARGE = 1.602176634e-19          # C, exact
_AVOGADRO = 6.02214076e23            # 1/mol, exact
_BOHR = 0.529177210903               # Å, CODATA 2018
_HARTREE = 27.211386245988           # eV, CODATA 2018
_RYDBERG = _HARTREE / 2.0            # eV (13.605693122994)
_KCAL_PER_MOL = 4184.0 / (_AVOGADRO * _E_CHARGE)   # eV, thermochemical calorie
_KJ_PER_MOL = 1000.0 / (_AVOGADRO * _E_CHARGE)     # eV

#: 1 eV/Å³ in bar (exact: e · 1e30 Pa / 1e5); its one home is :mod:`mpisnap.units`.
EV_PER_A3_IN_BAR = _units.EV_PER_A3_IN_BAR
ase_stress_to_bar = _units.ase_stress_to_bar

#: length unit name -> Å
LENGTH_UNITS = {"angstrom": 1.0, "bohr": _BOHR, "nm": 10.0, "pm": 0.01}
#: energy unit name -> eV
ENERGY_UNITS = {"electronvolt": 1.0, "hartree": _HARTREE, "rydberg": _RYDBERG,
                "kcalpermol": _KCAL_PER_MOL, "kjpermol": _KJ_PER_MOL}
#: pressure unit name -> bar
PRESSURE_UNITS = {"bar": 1.0, "kbar": 1000.0, "gpa": 1.0e4, "mpa": 10.0, "pa": 1.0e-5,
                  "atm": 1.01325}

_LENGTH_ALIASES = {"angstrom": "angstrom", "angstroms": "angstrom", "ang": "angstrom",
                   "a": "angstrom", "å": "angstrom", "bohr": "bohr",
                   "nm": "nm", "nanometer": "nm", "nanometers": "nm", "pm": "pm",
                   "picometer": "pm", "picometers": "pm"}
_ENERGY_ALIASES = {"electronvolt": "electronvolt", "electronvolts": "electronvolt",
                   "ev": "electronvolt", "hartree": "hartree", "ha": "hartree",
                   "rydberg": "rydberg", "ry": "rydberg", "kcalpermol": "kcalpermol",
                   "kjpermol": "kjpermol"}
_PRESSURE_ALIASES = {"bar": "bar", "bars": "bar", "kbar": "kbar", "kb": "kbar",
                     "kilobar": "kbar", "gpa": "gpa", "mpa": "mpa", "pa": "pa", "atm": "atm"}


@functools.lru_cache(maxsize=1024)
def _norm_unit(name: str) -> str:
    s = name.strip().lower()
    for ch in (" ", "_", "-", "\t"):
        s = s.replace(ch, "")
    return s.replace("/", "per")


def _length_unit(name: str) -> float | None:
    key = _LENGTH_ALIASES.get(_norm_unit(name))
    return None if key is None else LENGTH_UNITS[key]


def _energy_unit(name: str) -> float | None:
    key = _ENERGY_ALIASES.get(_norm_unit(name))
    return None if key is None else ENERGY_UNITS[key]


def _pressure_unit(name: str) -> float | None:
    key = _PRESSURE_ALIASES.get(_norm_unit(name))
    return None if key is None else PRESSURE_UNITS[key]


def force_unit(name: str) -> float | None:
    """eV/Å per one unit called ``name`` (``<energy>per<length>``), or None when unknown."""
    s = _norm_unit(name)
    # kcal/mol/Å normalises to "kcalpermolperangstrom": try every "per" as the split point.
    start = 0
    while (i := s.find("per", start)) >= 0:
        e = _ENERGY_ALIASES.get(s[:i])
        length = _LENGTH_ALIASES.get(s[i + 3:])
        if e is not None and length is not None:
            return ENERGY_UNITS[e] / LENGTH_UNITS[length]
        start = i + 1
    return None


_STYLES = {  # JSON key -> (converter, the metal default)
    "PositionsStyle": (_length_unit, "angstrom"),
    "LatticeStyle": (_length_unit, "angstrom"),
    "EnergyStyle": (_energy_unit, "electronvolt"),
    "ForcesStyle": (force_unit, "electronvoltperangstrom"),
    "StressStyle": (_pressure_unit, "bar"),
}


# -- shared helpers -------------------------------------------------------------------------------

def _group_folder(data_path: str, group: str) -> str:
    folder = os.path.join(os.fspath(data_path), group)
    if not os.path.isdir(folder):
        raise ValueError(f"group {group!r}: no folder {folder}")
    return folder


def _files(folder: str, group: str, suffix: str = "") -> list[str]:
    with os.scandir(folder) as entries:  # is_file() needs no stat where the listing says
        names = sorted(e.name for e in entries
                       if not e.name.startswith(".") and e.name.endswith(suffix) and e.is_file())
    if not names:
        what = f"*{suffix} files" if suffix else "files"
        raise ValueError(f"group {group!r}: no {what} in {folder}")
    return names


def _frame_names(group: str, fname: str, nframes: int) -> list[str]:
    width = len(str(max(nframes - 1, 0)))
    return [f"{group}/{fname}#{i:0{width}d}" for i in range(nframes)]


# -- JSON -----------------------------------------------------------------------------------------

def _json_list(data_path: str, group: str) -> list[ConfigRef]:
    folder = _group_folder(data_path, group)
    return [ConfigRef(f"{group}/{f}", group, os.path.join(folder, f), 0)
            for f in _files(folder, group, ".json")]


# -- JSON: a bounded-memory parse -----------------------------------------------------------------
#
# json.loads makes a Python float object and a list slot for every number of the whole document
# (~570 B per atom while it lives). _FastJSON gives the same document with bounded extra memory:
# a file of at most _SMALL_FILE bytes is parsed at once by _loads (orjson when installed, else
# json: the same document for every file orjson accepts); a larger file is read a chunk at a time
# and parsed token by token (a FitSNAP file has a few dozen tokens besides its arrays), each large
# array of numbers (1-D or 2-D: Positions, Forces, any other per-atom array) becoming one float64
# ndarray, parsed a piece of rows at a time by _loads and np.array (the numbers and the checks of
# np.array on the whole list, one piece at a time) into an array grown in place, and an array of
# plain names (AtomTypes) becoming a list whose equal names are one object. Whatever it is not
# sure of (escapes in names, a ragged or non-numeric array, malformed JSON ...) raises _Fallback,
# and the file is parsed by json.loads as before: same values, same errors.

class _Fallback(Exception):
    """The bounded parse cannot vouch for this file: parse it with json.loads."""


_SMALL_FILE = 1 << 20      # a file up to this size is read and parsed at once
_READ_CHUNK = 1 << 18      # bytes read at a time from a larger file
_PIECE = 1 << 17           # bytes of an array's text parsed at a time
_BIG_ARRAY = 4096          # arrays of numbers with at least this many bytes become ndarrays
_MAX_COMMENT = 1 << 20     # a longer first line is left to json.loads

_WS = b" \t\n\r"
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b",[]")
_WS_RE = re.compile(rb"[ \t\n\r]*")
_LINE_SPACE_RE = re.compile(r"[^\S\n]*")  # whitespace (str.isspace) but a newline
_NUMBER_RE = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_CONTROL_RE = re.compile(rb"[\x00-\x1f]")
_ARRAY_START_RE = re.compile(rb"\[[ \t\n\r]*(\[[ \t\n\r]*)?[-0-9]")  # numbers, 1-D or 2-D
_END_2D_RE = re.compile(rb"\][ \t\n\r]*\]")
_NAME_ITEM_RE = re.compile(rb'[ \t\n\r]*"([A-Za-z0-9_ .+-]*)"[ \t\n\r]*')
_NAME_ARRAY_TEXT = b' \t\n\r,"0123456789_.+-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
_LITERALS = ((b"null", None), (b"true", True), (b"false", False), (b"NaN", float("nan")),
             (b"Infinity", float("inf")), (b"-Infinity", float("-inf")))


def _numbers(seg: bytes, first: bool, last: bool, ndim: int, ncols: int):
    """(float64 ndarray, row length) of a piece of the text of a 1-D or 2-D JSON array of
    numbers: the whole array, its start (``first``: from its '['), a middle piece or its end
    (``last``: up to its ']'); a piece that is not the first starts with the ',' before its first
    row (2-D) or number (1-D). ``ncols``: the row length of the pieces before. The brackets are
    checked to make rows of one length; the numbers between them are parsed as one flat JSON
    array (np.array converts each as it would in the nested list). Raises _Fallback unless the
    piece is that."""
    if first:
        seg = seg[1:]
    else:
        seg = seg.lstrip(_WS)
        if not seg.startswith(b","):
            raise _Fallback("structure")
        seg = seg[1:]
    if last:
        seg = seg[:-1]
    st = seg.translate(None, _NOT_STRUCTURE)  # its ',', '[' and ']' in order
    if ndim == 1:
        if st != b"," * len(st):
            raise _Fallback("structure")
        shape: tuple = (len(st) + 1,)
    else:
        if not ncols:
            ncols = st.find(b"]")
        row = b"[" + b"," * (ncols - 1) + b"],"
        if ncols < 1 or st + b"," != row * ((len(st) + 1) // len(row)):
            raise _Fallback("not rows of one length")
        shape = ((len(st) + 1) // len(row), ncols)
    try:
        vals = np.array(_loads(b"[" + seg.translate(None, b"[]") + b"]"), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise _Fallback("not an array of numbers") from None
    if vals.shape != (math.prod(shape),):
        raise _Fallback("not an array of numbers")
    vals.shape = shape  # in place: the array keeps owning its data, so it can grow
    return vals, ncols


def _first_line_is_comment(buf: bytes, start: int) -> bool:
    """Whether the first line (from ``start``) is a comment: it does not begin with '{' after
    whitespace, as str.lstrip sees it, so _json_text_document skips it."""
    head = buf[start:start + 4096].decode("utf-8", "replace")
    k = _LINE_SPACE_RE.match(head).end()
    if k == len(head):
        raise _Fallback("no first line to decide on")
    return head[k] != "{"


def _after_comment(buf: bytes, start: int, whole: bool) -> int:
    """Where the text after the first line starts, when that line is a comment (``whole``: the
    buffer holds the rest of the file)."""
    if not _first_line_is_comment(buf, start):
        return start
    nl = buf.find(b"\n", start)
    if nl < 0:
        raise _Fallback("the whole file is one comment line" if whole else "a long first line")
    try:
        buf[start:nl].decode("utf-8")
    except UnicodeDecodeError:
        raise _Fallback("not UTF-8") from None
    return nl + 1


def _loads(text: bytes):
    """json.loads' document of ``text`` (orjson's parse when it is installed: the same document
    for every text it accepts; _json_document falls back to json for the rest)."""
    if _orjson is not None:
        return _orjson.loads(text)
    return json.loads(bytes(text).decode("utf-8"))


class _FastJSON:
    """Parse one JSON document from a binary file (see the comment above)."""

    def __init__(self, fh):
        self.fh = fh
        self.buf = b""
        self.pos = 0
        self.eof = False

    # -- the buffer
    def need(self, n: int) -> bool:
        """At least ``n`` bytes from ``pos`` in the buffer (and the byte before it), unless the
        file ends first."""
        while len(self.buf) - self.pos < n and not self.eof:
            more = self.fh.read(max(_READ_CHUNK, n - (len(self.buf) - self.pos)))
            if not more:
                self.eof = True
            else:
                keep = max(self.pos - 1, 0)
                self.buf = self.buf[keep:] + more
                self.pos -= keep
        return len(self.buf) - self.pos >= n

    def peek(self) -> int:
        """The next byte after JSON whitespace (``pos`` left on it)."""
        while True:
            self.pos = _WS_RE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.need(1):
                raise _Fallback("unexpected end")

    # -- the document
    def document(self):
        self.need(_READ_CHUNK)
        if self.buf.startswith(b"\xef\xbb\xbf"):  # utf-8-sig
            self.pos = 3
        if _first_line_is_comment(self.buf, self.pos):
            while (self.buf.find(b"\n", self.pos) < 0 and not self.eof
                   and len(self.buf) - self.pos < _MAX_COMMENT):
                self.need(len(self.buf) - self.pos + _READ_CHUNK)
            self.pos = _after_comment(self.buf, self.pos, self.eof)
        value = self.value(False)
        while True:  # only whitespace may follow
            self.pos = _WS_RE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                raise _Fallback("extra data")
            if not self.need(1):
                return value

    def value(self, member: bool):
        c = self.peek()
        if c == 0x7B:  # {
            return self.object()
        if c == 0x5B:  # [
            return self.array(member)
        if c == 0x22:  # "
            return self.string()
        return self.scalar()

    def object(self) -> dict:
        self.pos += 1
        d: dict = {}
        c = self.peek()
        if c == 0x7D:  # }
            self.pos += 1
            return d
        while True:
            if c != 0x22:
                raise _Fallback("expected a key")
            key = self.string()
            if self.peek() != 0x3A:  # :
                raise _Fallback("expected ':'")
            self.pos += 1
            d[key] = self.value(True)
            c = self.peek()
            self.pos += 1
            if c == 0x7D:
                return d
            if c != 0x2C:  # ,
                raise _Fallback("expected ',' or '}'")
            c = self.peek()

    def string(self) -> str:
        end = self.pos  # on the opening quote
        while True:
            end = self.buf.find(b'"', end + 1)
            if end < 0:  # read on; the search goes on where it stopped
                have = len(self.buf) - self.pos
                if not self.need(have + _READ_CHUNK):
                    raise _Fallback("unterminated string")
                end = self.pos + have - 1
                continue
            k = end - 1
            while self.buf[k] == 0x5C:  # backslashes before it: an odd run escapes it
                k -= 1
            if (end - 1 - k) % 2 == 0:
                break
        raw = self.buf[self.pos + 1:end]
        self.pos = end + 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Fallback("not UTF-8") from None
        if b"\\" not in raw and not _CONTROL_RE.search(raw):
            return text
        value, stop = json.decoder.scanstring('"' + text + '"', 1, True)
        if stop != len(text) + 2:
            raise _Fallback("string")
        return value

    def scalar(self):
        self.need(64)
        for lit, val in _LITERALS:
            if self.buf.startswith(lit, self.pos):
                self.pos += len(lit)
                return val
        while True:
            m = _NUMBER_RE.match(self.buf, self.pos)
            if m is None:
                raise _Fallback("expected a value")
            if m.end() < len(self.buf) or self.eof:
                break
            self.need(len(self.buf) - self.pos + _READ_CHUNK)
        self.pos = m.end()
        return float(m.group()) if m.group(1) or m.group(2) else int(m.group())

    # -- arrays
    def array(self, member: bool):
        if member:
            self.need(_READ_CHUNK)
            if self.buf.startswith(b'"', _WS_RE.match(self.buf, self.pos + 1).end()):
                names = self.name_array()
                if names is not None:
                    return names
            m = _ARRAY_START_RE.match(self.buf, self.pos)
            if m is not None:
                return self.numeric_array(2 if m.group(1) else 1)
        self.pos += 1
        out: list = []
        c = self.peek()
        if c == 0x5D:  # ]
            self.pos += 1
            return out
        while True:
            out.append(self.value(False))
            c = self.peek()
            self.pos += 1
            if c == 0x5D:
                return out
            if c != 0x2C:
                raise _Fallback("expected ',' or ']'")

    def name_array(self) -> list | None:
        """An array of strings of letters, digits and ``_ .+-`` (chemical symbols), equal
        strings one object; None (nothing consumed) when it is not one."""
        memo: dict[bytes, str] = {}
        out: list[str] = []
        first = True
        while True:
            self.need(_PIECE)
            stop = min(len(self.buf), self.pos + _PIECE)
            close = cut = self.buf.find(b"]", self.pos, stop)
            if close < 0 and not (self.eof and stop == len(self.buf)):
                cut = self.buf.rfind(b",", self.pos + 1, stop)  # a piece ends before a ','
            seg = self.buf[self.pos + 1:cut] if cut > self.pos else None
            ok = seg is not None and not seg.translate(None, _NAME_ARRAY_TEXT)
            if ok:
                items = seg.split(b",")
                for item in set(items):
                    m = _NAME_ITEM_RE.fullmatch(item)
                    if m is None:
                        ok = False
                        break
                    memo[item] = m.group(1).decode("ascii")
            if not ok:
                if first:
                    return None
                raise _Fallback("not an array of names")
            out += map(memo.__getitem__, items)
            first = False
            self.pos = cut
            if close >= 0:
                self.pos += 1
                return out

    def numeric_array(self, ndim: int):
        """The array of numbers at ``pos``: json's list when its text is shorter than _BIG_ARRAY
        bytes, else one float64 ndarray, parsed _PIECE bytes of rows at a time."""
        out: np.ndarray | None = None
        ncols = 0
        first = True
        while True:
            self.need(_PIECE)
            stop = min(len(self.buf), self.pos + _PIECE)
            if ndim == 1:
                end = self.buf.find(b"]", self.pos, stop) + 1
            else:  # from the ']' ending the last piece: the array may end right after it
                e = _END_2D_RE.search(self.buf, self.pos - (not first), stop)
                end = e.end() if e else 0
            last = end > 0
            if not last:
                if self.eof and stop == len(self.buf):
                    raise _Fallback("unterminated array")
                if ndim == 1:
                    end = self.buf.rfind(b",", self.pos + 1, stop)
                else:
                    end = self.buf.rfind(b"]", self.pos, stop) + 1
                if end <= self.pos:
                    raise _Fallback("a row or number longer than a piece")
            seg = self.buf[self.pos:end]
            if first and last and len(seg) < _BIG_ARRAY:
                self.pos = end
                return json.loads(seg)
            if not first and last and seg.strip(_WS) == b"]":
                self.pos = end
                return out
            vals, ncols = _numbers(seg, first, last, ndim, ncols)
            del seg
            if out is None:
                out = vals
            else:  # realloc: grows in place where it can; the peak is the array plus a piece
                r = len(out)
                out.resize((r + len(vals),) + out.shape[1:], refcheck=False)
                out[r:] = vals
            del vals
            self.pos = end
            first = False
            if last:
                return out


def _json_document(path: str, fast: bool = True) -> tuple[Any, bool]:
    """(the parsed JSON document of ``path``, whether the bounded parse made it): by
    :class:`_FastJSON` when ``fast`` and it can vouch for the file, else by
    :func:`_json_text_document` (json.loads; its errors)."""
    if fast:
        try:
            with open(path, "rb", buffering=0) as fh:
                if os.fstat(fh.fileno()).st_size > _SMALL_FILE:
                    return _FastJSON(fh).document(), True
                buf = fh.readall()  # a small file: one read, one C parse (bounded transient)
            start = 3 if buf.startswith(b"\xef\xbb\xbf") else 0  # utf-8-sig
            if buf[start:start + 1] != b"{":  # else the first line is not a comment
                start = _after_comment(buf, start, True)
            return _loads(memoryview(buf)[start:]), True
        except Exception:  # noqa: BLE001 - anything unusual: json.loads decides, with its errors
            pass
    return _json_text_document(path), False


def _json_text_document(path: str):
    """The whole file decoded and parsed by json.loads (one-line errors naming the file)."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise _fail(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    first, _, rest = text.partition("\n")
    skipped = 0
    if not first.lstrip().startswith("{"):
        text, skipped = rest, 1
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"invalid JSON at line {exc.lineno + skipped} column {exc.colno}: "
                          f"{exc.msg}") from None
    except RecursionError:
        raise _fail(path, "invalid JSON: nested too deeply") from None


#: Keys whose large numeric arrays stay ndarrays; any other value is as json.loads makes it.
_ARRAY_KEYS = frozenset({"Positions", "Forces", "Lattice", "Stress"})
#: Values nested this deep are left to json.loads (which stops at Python's recursion limit).
_MAX_DEPTH = 256


def _plain(value):
    """json.loads' value for a value of the bounded parse (a list for an ndarray)."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def _depth(value, limit: int) -> int:
    """Nesting depth of lists and dicts in ``value``, counted up to ``limit``."""
    if limit <= 0 or not isinstance(value, (list, dict)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items if isinstance(v, (list, dict))),
                   default=0)


def _json_parse(path: str, fast: bool = True) -> tuple[dict, bool]:
    """(the configuration's keys, Dataset's and Data[0]'s merged, whether the bounded parse made
    them). Structure errors are one line naming the file."""
    doc, fast = _json_document(path, fast)
    if not isinstance(doc, dict) or set(doc) != {"Dataset"}:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise _fail(path, f"expected one top-level object {{\"Dataset\": ...}}, got {keys}")
    ds = _plain(doc["Dataset"])
    if not isinstance(ds, dict):
        raise _fail(path, f"Dataset: expected an object, got {type(ds).__name__}")
    data = _plain(ds.get("Data"))
    if not isinstance(data, list):
        raise _fail(path, "Dataset.Data: missing or not a list")
    if len(data) != 1:
        raise _fail(path, f"Dataset.Data: expected exactly one configuration per file, "
                          f"found {len(data)}")
    cfg = data[0]
    if not isinstance(cfg, dict):
        raise _fail(path, f"Dataset.Data[0]: expected an object, got {type(cfg).__name__}")
    dup = sorted(set(cfg) & (set(ds) - {"Data"}))
    if dup:
        raise _fail(path, f"key {dup[0]!r} is given both in Dataset and in Dataset.Data[0]")
    merged = {k: v for k, v in ds.items() if k != "Data"}
    merged.update(cfg)
    for k, v in merged.items():
        if k in _ARRAY_KEYS:  # checked by shape in _json_config
            continue
        if isinstance(v, np.ndarray):
            merged[k] = v.tolist()
        elif (fast and k != "AtomTypes" and isinstance(v, (list, dict))
              and _depth(v, _MAX_DEPTH) >= _MAX_DEPTH):
            return _json_parse(path, False)  # json.loads may find it nested too deeply
    return merged, fast


@functools.lru_cache(maxsize=256)
def _style_factor(key: str, name: str) -> float | None:
    return _STYLES[key][0](name)


def _json_style(path: str, d: dict, key: str) -> float:
    name = d.get(key, _STYLES[key][1])
    if not isinstance(name, str):
        raise _fail(path, f"{key}: expected a unit name, got {name!r}")
    factor = _style_factor(key, name)
    if factor is None:
        raise _fail(path, f"{key}: unknown unit {name!r}")
    return factor


#: Unit factors of the *Style names seen (in _STYLES order).
_UNITS: dict[tuple, dict[str, float]] = {}
_ABSENT = object()

#: The JSON keys of the checked quantities (error messages name the key of the file).
_JSON_KEYS = {"positions": "Positions", "cell": "Lattice", "energy": "Energy", "forces": "Forces",
              "stress": "Stress"}


def _json_floats(path: str, key: str, value: Any, shape: tuple[int, ...],
                 factor: float) -> tuple[np.ndarray, float, float]:
    """(``value`` as in :func:`_floats`, times the unit ``factor``; its smallest and largest
    value). An ndarray comes from the bounded parse (float64, owned here): scaled in place."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        if type(value) is not list and isinstance(value, (str, bytes, Mapping)):
            raise _fail(path, f"{key}: expected numbers, got {type(value).__name__}")
        try:
            arr = np.array(value, dtype=float)
        except (TypeError, ValueError, OverflowError):
            raise _fail(path, f"{key}: expected an array of numbers of shape {shape}") from None
    if arr.shape != shape:
        raise _fail(path, f"{key}: expected shape {shape}, got {arr.shape}")
    lo = float(np.minimum.reduce(arr, axis=None))  # NaN if any value is
    hi = float(np.maximum.reduce(arr, axis=None))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise _fail(path, f"{key}: contains non-finite values (NaN, Infinity or null)")
    if factor != 1.0:  # x * 1.0 == x: no copy; scaling by a positive factor keeps the order
        arr *= factor
        lo, hi = lo * factor, hi * factor
    return arr, lo, hi


def _list_arrays(d: dict, n: int):
    """(positions, forces, cell, stress) of a configuration whose Positions and Forces (and
    Lattice and Stress) are lists of rows of 3, each pair converted in one go (element by
    element as np.array converts them; forces or stress None when absent); None when they are
    not lists of the right shapes."""
    p, f, c, s = (d.get(k) for k in ("Positions", "Forces", "Lattice", "Stress"))
    if (type(p) is not list or len(p) != n or type(c) is not list or len(c) != 3
            or not (f is None or type(f) is list and len(f) == n)
            or not (s is None or type(s) is list and len(s) == 3)):
        return None
    out = []
    for rows in ((p,) if f is None else (p, f)), ((c,) if s is None else (c, s)):
        rows = list(_chain(*rows))
        try:
            if set(map(type, rows)) != {list} or set(map(len, rows)) != {3}:
                return None
            a = np.fromiter(_chain.from_iterable(rows), np.float64, 3 * len(rows))
        except (TypeError, ValueError, OverflowError):
            return None
        out.append(a)
    pf, cs = out
    pf, cs = pf.reshape(-1, n, 3), cs.reshape(-1, 3, 3)
    return pf[0], None if f is None else pf[1], cs[0], None if s is None else cs[1]


def _zero_volume(cell: np.ndarray) -> bool:
    """Cell vectors linearly dependent: |det| <= 1e-12 max(1, max|entry|)^3 (the LU determinant
    decides near that threshold; the cofactor sum, far above it)."""
    flat = cell.ravel().tolist()
    a, b, c, d, e, f, g, h, i = flat
    scale = max(1.0, max(map(abs, flat))) ** 3
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if abs(det) > 1e-9 * scale:
        return False
    return bool(abs(np.linalg.det(cell)) <= 1e-12 * scale)


def _json_load(ref: ConfigRef) -> Configuration:
    fast = True
    try:
        d, fast = _json_parse(ref.source)
        return _json_config(ref, d)
    except ValueError:
        if not fast:
            raise
    # The bounded parse's document was refused: the error is json.loads' document's, word for
    # word.
    return _json_config(ref, _json_parse(ref.source, False)[0])


def _json_config(ref: ConfigRef, d: dict) -> Configuration:
    path = ref.source
    ats = d.get("AtomTypeStyle", "chemicalsymbol")
    if not isinstance(ats, str) or _norm_unit(ats) != "chemicalsymbol":
        raise _fail(path, f"AtomTypeStyle: unknown style {ats!r} (only 'chemicalsymbol')")
    for key in ("Positions", "Lattice", "AtomTypes"):
        if d.get(key) is None:
            raise _fail(path, f"{key}: missing")
    types = d["AtomTypes"]
    try:
        distinct = set(types) if isinstance(types, list) else None
    except TypeError:  # unhashable items
        distinct = None
    if distinct is None or not all(isinstance(t, str) and t.strip() for t in distinct):
        raise _fail(path, "AtomTypes: expected a list of chemical symbols")
    n = len(types)
    if n == 0:
        raise _fail(path, "AtomTypes: no atoms")
    if "NumAtoms" in d:
        na = d["NumAtoms"]
        if (isinstance(na, bool) or not isinstance(na, (int, float))
                or isinstance(na, float) and (not math.isfinite(na) or na != int(na))):
            raise _fail(path, f"NumAtoms: expected a whole number, got {na!r}")
        if int(na) != n:
            raise _fail(path, f"NumAtoms: {int(na)} but AtomTypes lists {n} atoms")
    names = tuple(d.get(key, _ABSENT) for key in _STYLES)
    try:
        unit = _UNITS[names]
    except (KeyError, TypeError):  # every style, even if unused
        unit = {key: _json_style(path, d, key) for key in _STYLES}
        if len(_UNITS) < 256:
            _UNITS[names] = unit
    stripped = {t: t.strip() for t in distinct}  # equal names stay one object
    symbols = tuple(map(stripped.__getitem__, types))
    e = d.get("Energy")
    arrays = _list_arrays(d, n) if e is None or type(e) is float else None
    if arrays is not None:  # the common case: the record checks the numbers (one pass)
        styles = ("PositionsStyle", "ForcesStyle", "LatticeStyle", "StressStyle")
        for a, key in zip(arrays, styles):
            if a is not None and unit[key] != 1.0:  # x * 1.0 == x: no copy
                a *= unit[key]
        positions, forces, cell, stress = arrays
        energy = None if e is None else e * unit["EnergyStyle"]
        try:
            c = Configuration(ref.name, ref.group, positions, cell, (True, True, True), symbols,
                              energy, forces, stress)
        except ValueError:
            c = None
        if c is not None and not _zero_volume(cell):
            return c
    # One quantity at a time, in this order: the first problem is the error (and the path of the
    # bounded parse's ndarrays, scaled in place).
    positions, lo, hi = _json_floats(path, "Positions", d["Positions"], (n, 3),
                                     unit["PositionsStyle"])
    cell, clo, chi = _json_floats(path, "Lattice", d["Lattice"], (3, 3), unit["LatticeStyle"])
    if not -MAX_COORDINATE <= min(lo, clo) <= max(hi, chi) <= MAX_COORDINATE:
        check_configuration(path, positions, cell, n, keys=_JSON_KEYS)  # names the value
    if _zero_volume(cell):
        raise _fail(path, "Lattice: the cell vectors are linearly dependent (zero volume)")
    energy = forces = stress = None
    ok = True
    if d.get("Energy") is not None:
        energy = _number(path, "Energy", d["Energy"]) * unit["EnergyStyle"]
        ok = abs(energy) <= MAX_ENERGY_PER_ATOM * n
    if d.get("Forces") is not None:
        forces, lo, hi = _json_floats(path, "Forces", d["Forces"], (n, 3), unit["ForcesStyle"])
        ok = ok and -MAX_FORCE <= lo and hi <= MAX_FORCE
    if d.get("Stress") is not None:
        stress, lo, hi = _json_floats(path, "Stress", d["Stress"], (3, 3), unit["StressStyle"])
        ok = ok and -MAX_STRESS <= lo and hi <= MAX_STRESS
    if not ok:
        check_configuration(path, positions, cell, n, energy, forces, stress, keys=_JSON_KEYS)
    d.clear()  # the parse's lists go before the record checks the arrays
    del types
    return Configuration(ref.name, ref.group, positions, cell, (True, True, True), symbols,
                         energy, forces, stress)


# -- extended XYZ (FitSNAP convention) ------------------------------------------------------------

_RAW = "_mpisnap_raw_"  # info keys that keep energy/stress away from ASE's calculator


def _xyz_properties_parser(line: str) -> dict:
    from ase.io.extxyz import key_val_str_to_dict

    info = key_val_str_to_dict(line)
    for key in ("energy", "stress"):
        if key in info:
            info[_RAW + key] = info.pop(key)
    return info


def _xyz_file(data_path: str, group: str) -> str:
    base = os.path.join(os.fspath(data_path), group)
    for ext in (".extxyz", ".xyz"):
        if os.path.isfile(base + ext):
            return base + ext
    raise ValueError(f"group {group!r}: no file {base}.extxyz or {base}.xyz")


def _scan_xyz(path: str) -> tuple[int, ...]:
    """Byte offsets of the frames of an (extended) XYZ file, from the atom-count lines alone."""
    offsets: list[int] = []
    lineno = 0
    try:
        with open(path, "rb") as fh:
            while True:
                pos = fh.tell()
                line = fh.readline()
                lineno += 1
                if not line:
                    return tuple(offsets)
                if not line.strip():
                    if fh.read().strip():
                        raise _fail(path, f"line {lineno}: blank line between frames")
                    return tuple(offsets)
                try:
                    natoms = int(line)
                except ValueError:
                    text = line.decode("utf-8", "replace").strip()[:40]
                    raise _fail(path, f"line {lineno}: expected the number of atoms of frame "
                                      f"{len(offsets)}, got {text!r}") from None
                if natoms < 1:
                    raise _fail(path, f"line {lineno}: frame {len(offsets)} has {natoms} atoms")
                for _ in range(natoms + 1):
                    if not fh.readline():
                        raise _fail(path, f"frame {len(offsets)}: file ends before its "
                                          f"{natoms} atom lines")
                    lineno += 1
                offsets.append(pos)
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None


@functools.lru_cache(maxsize=16)
def _scan_xyz_cached(path: str, size: int, mtime_ns: int) -> tuple[int, ...]:
    return _scan_xyz(path)


def _xyz_offsets(path: str) -> tuple[int, ...]:
    """:func:`_scan_xyz`, memoised per file version (path, size, mtime): loading frame i of a
    large file then costs one frame, not a scan of the i frames before it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    return _scan_xyz_cached(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _xyz_list(data_path: str, group: str) -> list[ConfigRef]:
    path = _xyz_file(data_path, group)
    nframes = len(_xyz_offsets(path))
    if nframes == 0:
        raise ValueError(f"group {group!r}: no configurations in {path}")
    fname = os.path.basename(path)
    return [ConfigRef(name, group, path, i)
            for i, name in enumerate(_frame_names(group, fname, nframes))]


def _xyz_frame_text(where: str, path: str, index: int) -> str:
    offsets = _xyz_offsets(path)
    if not 0 <= index < len(offsets):
        raise _fail(where, f"no such frame (the file has {len(offsets)})")
    try:
        with open(path, "rb") as fh:
            fh.seek(offsets[index])
            head = fh.readline()
            lines = [head] + [fh.readline() for _ in range(int(head) + 1)]
    except (OSError, ValueError) as exc:
        raise _fail(where, f"cannot read: {exc}") from None
    try:
        return b"".join(lines).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(where, f"not UTF-8 text ({exc.reason})") from None


def _xyz_load(ref: ConfigRef) -> Configuration:
    from ase.io import read

    where = f"{ref.source}: frame {ref.index}"
    text = _xyz_frame_text(where, ref.source, ref.index)
    try:
        atoms = read(io.StringIO(text), index=0, format="extxyz",
                     properties_parser=_xyz_properties_parser)
    except Exception as exc:  # ASE raises many kinds; all mean "this frame is malformed"
        raise _fail(where, f"cannot parse: {type(exc).__name__}: {exc}") from None
    positions, cell, pbc, symbols = _structure(where, atoms)
    n = len(symbols)
    energy = forces = stress = None
    if _RAW + "energy" in atoms.info:
        energy = _number(where, "energy", atoms.info[_RAW + "energy"])
    if _RAW + "stress" in atoms.info:
        stress = _floats(where, "stress", atoms.info[_RAW + "stress"], (3, 3))
    f = _calc_results(atoms).get("forces")
    if f is None:  # FitSNAP also accepts the column name "force"
        f = atoms.arrays.get("force")
    if f is not None:
        forces = _floats(where, "forces", f, (n, 3))
    check_configuration(where, positions, cell, n, energy, forces, stress,
                        keys={"cell": "Lattice"})
    return Configuration(ref.name, ref.group, positions, cell, pbc, symbols, energy, forces,
                         stress)


# -- anything ASE reads (ASE conventions) ---------------------------------------------------------

def _ase_list(data_path: str, group: str) -> list[ConfigRef]:
    folder = _group_folder(data_path, group)
    refs: list[ConfigRef] = []
    for fname in _files(folder, group):
        path = os.path.join(folder, fname)
        frames = read_ase(path, ":")
        if not frames:
            raise _fail(path, "no configurations")
        refs += [ConfigRef(name, group, path, i)
                 for i, name in enumerate(_frame_names(group, fname, len(frames)))]
    return refs


def _ase_load(ref: ConfigRef) -> Configuration:
    return ase_configuration(read_ase(ref.source, ref.index), ref.name, ref.group,
                             f"{ref.source}: frame {ref.index}")


@hookimpl
def mpisnap_readers():
    return [
        Reader("JSON", _json_list, _json_load,
               "FitSNAP JSON: <dataPath>/<group>/*.json, one configuration per file; *Style "
               "units converted to metal; stress in bar, pressure convention"),
        Reader("XYZ", _xyz_list, _xyz_load,
               "FitSNAP extended XYZ: <dataPath>/<group>.extxyz or .xyz, many frames; energy "
               "eV, forces eV/Å, stress bar in the pressure convention (read raw)"),
        Reader("ASE", _ase_list, _ase_load,
               "any file ase.io.read reads: <dataPath>/<group>/*, all frames; labels from the "
               "attached calculator, stress converted from ASE's eV/Å³ (tensile +) to bar "
               "(compressive +)"),
    ]
