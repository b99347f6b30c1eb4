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
FitSNAP's (bar, compressive positive).
"""
from __future__ import annotations

import functools
import io
import json
import math
import numbers
import os
from typing import Any, Mapping

import numpy as np

from mpisnap import units as _units
from mpisnap.hookspecs import hookimpl
from mpisnap.records import ConfigRef, Configuration, Reader, check_configuration

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


def ase_stress_to_bar(stress: np.ndarray) -> np.ndarray:
    """ASE stress (Voigt 6 ``xx yy zz yz xz xy`` or 3×3; eV/Å³, tensile positive) as a 3×3 tensor
    in bar, pressure convention (compressive positive): ``−1.602176634e6 · σ_ASE``."""
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    elif s.shape != (3, 3):
        raise ValueError(f"ASE stress must have shape (6,) or (3, 3), got {s.shape}")
    return -EV_PER_A3_IN_BAR * s


_STYLES = {  # JSON key -> (converter, the metal default)
    "PositionsStyle": (_length_unit, "angstrom"),
    "LatticeStyle": (_length_unit, "angstrom"),
    "EnergyStyle": (_energy_unit, "electronvolt"),
    "ForcesStyle": (force_unit, "electronvoltperangstrom"),
    "StressStyle": (_pressure_unit, "bar"),
}


# -- shared helpers -------------------------------------------------------------------------------

def _fail(where: str, msg: str) -> ValueError:
    return ValueError(f"{where}: {msg}".replace("\r", " ").replace("\n", " "))  # one line


def _group_folder(data_path: str, group: str) -> str:
    folder = os.path.join(os.fspath(data_path), group)
    if not os.path.isdir(folder):
        raise ValueError(f"group {group!r}: no folder {folder}")
    return folder


def _files(folder: str, group: str, suffix: str = "") -> list[str]:
    names = sorted(f for f in os.listdir(folder)
                   if not f.startswith(".") and f.endswith(suffix)
                   and os.path.isfile(os.path.join(folder, f)))
    if not names:
        what = f"*{suffix} files" if suffix else "files"
        raise ValueError(f"group {group!r}: no {what} in {folder}")
    return names


def _frame_names(group: str, fname: str, nframes: int) -> list[str]:
    width = len(str(max(nframes - 1, 0)))
    return [f"{group}/{fname}#{i:0{width}d}" for i in range(nframes)]


def _floats(where: str, key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``, or a one-line ValueError."""
    if isinstance(value, (str, bytes, Mapping)):
        raise _fail(where, f"{key}: expected numbers, got {type(value).__name__}")
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise _fail(where, f"{key}: expected an array of numbers of shape {shape}") from None
    if arr.shape != shape:
        raise _fail(where, f"{key}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise _fail(where, f"{key}: contains non-finite values (NaN, Infinity or null)")
    return arr


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(where, f"{key}: expected a number, got {value!r}"[:200])
    v = float(value)
    if not math.isfinite(v):
        raise _fail(where, f"{key}: not finite ({v})")
    return v


# -- JSON -----------------------------------------------------------------------------------------

def _json_list(data_path: str, group: str) -> list[ConfigRef]:
    folder = _group_folder(data_path, group)
    return [ConfigRef(f"{group}/{f}", group, os.path.join(folder, f), 0)
            for f in _files(folder, group, ".json")]


def _json_parse(path: str) -> dict:
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
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"invalid JSON at line {exc.lineno + skipped} column {exc.colno}: "
                          f"{exc.msg}") from None
    except RecursionError:
        raise _fail(path, "invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict) or set(doc) != {"Dataset"}:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise _fail(path, f"expected one top-level object {{\"Dataset\": ...}}, got {keys}")
    ds = doc["Dataset"]
    if not isinstance(ds, dict):
        raise _fail(path, f"Dataset: expected an object, got {type(ds).__name__}")
    data = ds.get("Data")
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
    return merged


def _json_style(path: str, d: dict, key: str) -> float:
    convert, default = _STYLES[key]
    name = d.get(key, default)
    if not isinstance(name, str):
        raise _fail(path, f"{key}: expected a unit name, got {name!r}")
    factor = convert(name)
    if factor is None:
        raise _fail(path, f"{key}: unknown unit {name!r}")
    return factor


#: The JSON keys of the checked quantities (error messages name the key of the file).
_JSON_KEYS = {"positions": "Positions", "cell": "Lattice", "energy": "Energy", "forces": "Forces",
              "stress": "Stress"}


def _json_load(ref: ConfigRef) -> Configuration:
    path = ref.source
    d = _json_parse(path)
    ats = d.get("AtomTypeStyle", "chemicalsymbol")
    if not isinstance(ats, str) or _norm_unit(ats) != "chemicalsymbol":
        raise _fail(path, f"AtomTypeStyle: unknown style {ats!r} (only 'chemicalsymbol')")
    for key in ("Positions", "Lattice", "AtomTypes"):
        if d.get(key) is None:
            raise _fail(path, f"{key}: missing")
    types = d["AtomTypes"]
    if not isinstance(types, list) or not all(isinstance(t, str) and t.strip() for t in types):
        raise _fail(path, "AtomTypes: expected a list of chemical symbols")
    n = len(types)
    if n == 0:
        raise _fail(path, "AtomTypes: no atoms")
    if "NumAtoms" in d:
        na = d["NumAtoms"]
        if (isinstance(na, bool) or not isinstance(na, (int, float)) or not math.isfinite(na)
                or na != int(na)):
            raise _fail(path, f"NumAtoms: expected a whole number, got {na!r}")
        if int(na) != n:
            raise _fail(path, f"NumAtoms: {int(na)} but AtomTypes lists {n} atoms")
    unit = {key: _json_style(path, d, key) for key in _STYLES}  # every style, even if unused
    positions = _floats(path, "Positions", d["Positions"], (n, 3)) * unit["PositionsStyle"]
    cell = _floats(path, "Lattice", d["Lattice"], (3, 3)) * unit["LatticeStyle"]
    check_configuration(path, positions, cell, n, keys=_JSON_KEYS)  # sane before the volume
    if abs(np.linalg.det(cell)) <= 1e-12 * max(1.0, float(np.abs(cell).max())) ** 3:
        raise _fail(path, "Lattice: the cell vectors are linearly dependent (zero volume)")
    energy = forces = stress = None
    if d.get("Energy") is not None:
        energy = _number(path, "Energy", d["Energy"]) * unit["EnergyStyle"]
    if d.get("Forces") is not None:
        forces = _floats(path, "Forces", d["Forces"], (n, 3)) * unit["ForcesStyle"]
    if d.get("Stress") is not None:
        stress = _floats(path, "Stress", d["Stress"], (3, 3)) * unit["StressStyle"]
    check_configuration(path, positions, cell, n, energy, forces, stress, keys=_JSON_KEYS)
    return Configuration(ref.name, ref.group, positions, cell, (True, True, True),
                         tuple(t.strip() for t in types), energy, forces, stress)


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


def _calc_results(atoms) -> dict:
    calc = atoms.calc
    return dict(getattr(calc, "results", None) or {}) if calc is not None else {}


def _structure(where: str, atoms) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    n = len(atoms)
    if n == 0:
        raise _fail(where, "no atoms")
    positions = _floats(where, "positions", atoms.get_positions(), (n, 3))
    cell = _floats(where, "cell", atoms.cell.array, (3, 3))
    pbc = tuple(bool(p) for p in atoms.pbc)
    return positions, cell, pbc, tuple(atoms.get_chemical_symbols())


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

def _ase_read(path: str, index):
    from ase.io import read

    try:
        return read(path, index=index)
    except Exception as exc:  # unknown format, malformed file, ...: one line naming the file
        raise _fail(path, f"ASE cannot read it: {type(exc).__name__}: {exc}") from None


def _ase_list(data_path: str, group: str) -> list[ConfigRef]:
    folder = _group_folder(data_path, group)
    refs: list[ConfigRef] = []
    for fname in _files(folder, group):
        path = os.path.join(folder, fname)
        frames = _ase_read(path, ":")
        if not frames:
            raise _fail(path, "no configurations")
        refs += [ConfigRef(name, group, path, i)
                 for i, name in enumerate(_frame_names(group, fname, len(frames)))]
    return refs


def _ase_load(ref: ConfigRef) -> Configuration:
    where = f"{ref.source}: frame {ref.index}"
    atoms = _ase_read(ref.source, ref.index)
    positions, cell, pbc, symbols = _structure(where, atoms)
    n = len(symbols)
    res = _calc_results(atoms)
    energy = forces = stress = None
    if res.get("energy") is not None:
        energy = _number(where, "energy", res["energy"])
    if res.get("forces") is not None:
        forces = _floats(where, "forces", res["forces"], (n, 3))
    if res.get("stress") is not None:
        s = np.asarray(res["stress"], dtype=float)
        if s.shape not in ((6,), (3, 3)):
            raise _fail(where, f"stress: expected shape (6,) or (3, 3), got {s.shape}")
        stress = _floats(where, "stress", ase_stress_to_bar(s), (3, 3))
    check_configuration(where, positions, cell, n, energy, forces, stress)
    return Configuration(ref.name, ref.group, positions, cell, pbc, symbols, energy, forces,
                         stress)


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
