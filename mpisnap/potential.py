"""LAMMPS potential files, and the parsed potential that predicts energies, forces and stresses.

Reading:

* :func:`read_snapcoeff`, :func:`read_snapparam`, :func:`snap_parameters` — the ``.snapcoeff``
  and ``.snapparam`` files of ``pair_style snap`` (formats: ``spec/snap.md`` §13), as strict as
  LAMMPS itself so that a file read here also runs there;
* :func:`read_potential` — a LAMMPS include file with ``pair_style``/``pair_coeff`` lines (the
  ``.mod`` that ``mpisnap fit`` writes, or a published ``.snap`` file such as ``Ta06A.snap``), or
  a ``.snapcoeff`` with its ``.snapparam`` beside it.

Writing (the inverse of the readers: what is written reads back bit for bit; every file is
written atomically, :func:`mpisnap.io.atomic_write`):

* :func:`write_snapcoeff`, :func:`write_snapparam`, :func:`write_mod` — one file each from plain
  data (element names, per-element radelem/wj, coefficient blocks; ``.snapparam`` keywords;
  the ``pair_style``/``pair_coeff`` lines with an optional reference potential overlaid); the
  ``*_text`` functions give the same text without writing;
* :func:`write_snap_potential` — all three files of a :class:`mpisnap.Descriptor` and its
  coefficients (what ``mpisnap fit`` writes through its ``snap`` writer plugin).

``pair_style mliap`` files (model, descriptor) belong here too (not yet supported).

The include-file subset understood: ``#`` comments, ``&`` continuation lines, ``variable NAME
equal|index|string VALUE`` with ``${NAME}``/``$x`` substitution (equal-style formulas of numbers,
``+ - * / ^``, parentheses and ``v_NAME``), ``include``, ``units metal``, ``pair_style`` and
``pair_coeff``; the commands ``mass``, ``neighbor``, ``neigh_modify``, ``comm_modify``,
``atom_style``, ``atom_modify`` and ``print`` are accepted and ignored (they do not change the
potential). Pair styles: ``snap`` (linear, quadratic, chem), ``zbl``, ``zero`` and their
combinations with ``hybrid/overlay`` or ``hybrid/scaled`` (constant factors); ``NULL`` in the
``snap`` element list. Anything else is a one-line :class:`PotentialError` naming the style or
command and the file. New styles plug in through :data:`STYLE_PARSERS` (``mliap`` has its entry
reserved there).

File names in ``pair_coeff`` resolve from the folder of the file that names them (then, for a
name with folder parts, from that folder's parents: ``mpisnap fit`` writes names relative to its
output folder).

The parsed :class:`Potential` is a predictor: :meth:`Potential.predict` gives the energy (eV),
per-atom energies, forces (eV/Å), the virial (eV) and, for 3-d cells, the stress in ASE's
convention (eV/Å³) for any configuration, with the SNAP part computed by the compiled core's
adjoint kernel (forces for one coefficient set, without per-component derivatives). Atoms are
matched to LAMMPS types by their chemical symbols: the element names of the ``snap``
``pair_coeff`` line (for a type that is ``NULL`` there, or without ``snap``, the element whose
atomic number the ``zbl`` line of that type gives).

Units: LAMMPS ``metal`` (Å, eV); only ``units metal`` potentials are accepted.
"""
from __future__ import annotations

import ast
import math
import operator
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .io import atomic_write
from .models import VOIGT
from .models import Prediction as _ModelPrediction

__all__ = [
    "PotentialError", "read_snapcoeff", "read_snapparam", "snap_parameters", "read_potential",
    "Potential", "Prediction", "SnapStyle", "ZBLStyle", "STYLE_PARSERS", "SNAPPARAM_DEFAULTS",
    "coefficient_labels", "snapcoeff_text", "snapparam_text", "descriptor_parameters",
    "snap_pair_commands", "mod_text", "write_snapcoeff", "write_snapparam", "write_mod",
    "write_snap_potential",
]


class PotentialError(ValueError):
    """A potential file that cannot be read: one line naming the file (and line) and the cause."""


# -- .snapcoeff / .snapparam --------------------------------------------------------------------

#: Keywords of a ``.snapparam`` file with LAMMPS's defaults (None: required, or no default).
SNAPPARAM_DEFAULTS: dict[str, Any] = {
    "rcutfac": None, "twojmax": None, "rfac0": 0.99363, "rmin0": 0.0, "switchflag": 1,
    "bzeroflag": 1, "quadraticflag": 0, "chemflag": 0, "bnormflag": 0, "wselfallflag": 0,
    "switchinnerflag": 0, "sinner": None, "dinner": None, "chunksize": None,
    "parallelthresh": None,
}
_INT_KEYS = ("twojmax", "switchflag", "bzeroflag", "quadraticflag", "chemflag", "bnormflag",
             "wselfallflag", "switchinnerflag")


def _read_text(path, what: str) -> str:
    p = Path(path)
    try:
        return p.read_text()
    except FileNotFoundError:
        raise PotentialError(f"{what} {p} not found") from None
    except OSError as exc:
        raise PotentialError(f"{what} {p} cannot be read: {exc.strerror or exc}") from None


def _number(tok: str, where: str, what: str) -> float:
    try:
        return float(tok)
    except ValueError:
        raise PotentialError(f"{where}: {what} must be a number, got {tok!r}") from None


def read_snapcoeff(path) -> tuple[list[str], dict[str, tuple[float, float]], dict[str, np.ndarray]]:
    """Read a ``.snapcoeff`` file: the elements in file order, ``{element: (radelem, wj)}`` and
    ``{element: coefficients}`` (β0 first, ``ncoeffall`` values).

    The format is LAMMPS's: comment and blank lines only before the ``nelem ncoeffall`` header;
    then per element a ``Symbol radelem wj`` line followed by one coefficient per line (a trailing
    ``# comment`` is allowed); lines after the last block are ignored."""
    text = _read_text(path, "SNAP coefficient file")
    lines = text.splitlines()
    k = 0
    while k < len(lines) and not lines[k].split("#")[0].strip():
        k += 1
    if k == len(lines):
        raise PotentialError(f"{path}: empty SNAP coefficient file (no 'nelem ncoeffall' line)")

    def words(n: int) -> list[str]:
        if n >= len(lines):
            raise PotentialError(f"{path}: file ends early (expected more coefficient lines)")
        return [w.strip("'\"") for w in lines[n].split("#")[0].split()]

    head = words(k)
    if len(head) != 2 or not all(h.isdigit() for h in head):
        raise PotentialError(f"{path} line {k + 1}: expected 'nelem ncoeffall', got {lines[k]!r}")
    nelem, ncoeff = int(head[0]), int(head[1])
    if nelem < 1 or ncoeff < 1:
        raise PotentialError(f"{path} line {k + 1}: nelem and ncoeffall must be >= 1")
    elements: list[str] = []
    params: dict[str, tuple[float, float]] = {}
    coeffs: dict[str, np.ndarray] = {}
    n = k + 1
    for _ in range(nelem):
        w = words(n)
        where = f"{path} line {n + 1}"
        if len(w) != 3:
            raise PotentialError(f"{where}: expected 'element radelem wj', got {lines[n]!r}")
        el = w[0]
        if el in params:
            raise PotentialError(f"{where}: element {el} is listed twice")
        params[el] = (_number(w[1], where, "radelem"), _number(w[2], where, "wj"))
        values = np.empty(ncoeff)
        for c in range(ncoeff):
            wc = words(n + 1 + c)
            if len(wc) != 1:
                raise PotentialError(f"{path} line {n + 2 + c}: expected one coefficient of "
                                     f"element {el}, got {lines[n + 1 + c]!r}")
            values[c] = _number(wc[0], f"{path} line {n + 2 + c}", "a coefficient")
        elements.append(el)
        coeffs[el] = values
        n += 1 + ncoeff
    return elements, params, coeffs


def read_snapparam(path) -> dict[str, str]:
    """The ``keyword value`` lines of a ``.snapparam`` file as strings (comments and blank lines
    skipped; an unknown keyword or a keyword without a value is a :class:`PotentialError`)."""
    out: dict[str, str] = {}
    for n, line in enumerate(_read_text(path, "SNAP parameter file").splitlines(), 1):
        w = line.split("#")[0].split()
        if not w:
            continue
        if w[0] not in SNAPPARAM_DEFAULTS:
            raise PotentialError(f"{path} line {n}: unknown keyword {w[0]!r} (known: "
                                 f"{', '.join(SNAPPARAM_DEFAULTS)})")
        if len(w) < 2:
            raise PotentialError(f"{path} line {n}: keyword {w[0]!r} needs a value")
        out[w[0]] = " ".join(w[1:])
    return out


def snap_parameters(path) -> dict[str, Any]:
    """The typed parameters of a ``.snapparam`` file with LAMMPS's defaults filled in: ints for
    the flags and ``twojmax``, floats otherwise, lists of floats for ``sinner``/``dinner``."""
    raw = read_snapparam(path)
    out: dict[str, Any] = dict(SNAPPARAM_DEFAULTS)
    for key in ("rcutfac", "twojmax"):
        if key not in raw:
            raise PotentialError(f"{path}: required keyword {key!r} is missing")
    for key, val in raw.items():
        where = f"{path}: {key}"
        if key in ("sinner", "dinner"):
            out[key] = [_number(v, where, "each value") for v in val.split()]
            continue
        if len(val.split()) != 1:
            raise PotentialError(f"{where} takes one value, got {val!r}")
        x = _number(val, path, key)
        if key in _INT_KEYS or key in ("chunksize", "parallelthresh"):
            if x != int(x):
                raise PotentialError(f"{where} must be an integer, got {val!r}")
            x = int(x)
            if key != "twojmax" and key in _INT_KEYS and x not in (0, 1):
                raise PotentialError(f"{where} must be 0 or 1, got {val!r}")
        out[key] = x
    if out["switchinnerflag"] and (out["sinner"] is None or out["dinner"] is None):
        raise PotentialError(f"{path}: switchinnerflag 1 needs sinner and dinner")
    return out


# -- writing: .snapcoeff, .snapparam, .mod ------------------------------------------------------

def _version() -> str:
    from . import __version__

    return str(__version__)


def _f(x) -> str:
    """A float that reads back bit-for-bit (shortest repr)."""
    return repr(float(x))


def _comment(text: str | None, default: str) -> list[str]:
    return [f"# {ln}" for ln in (text or default).splitlines()]


def coefficient_labels(descriptor) -> list[str]:
    """One label per descriptor value of a block (``nvalues`` of them, β0 not included):
    ``B[k, j1, j2, j]`` (k counts from 1; β0 is ``B[0]``), with chemflag followed by the element
    triple, and for the quadratic terms ``0.5*B[k]^2`` and ``B[k]*B[l]``."""
    triples = [tuple(int(v) for v in t) for t in descriptor.triples]
    lin: list[str] = []
    if getattr(descriptor, "chemflag", False):
        els = list(descriptor.elements)
        for a in els:
            for b in els:
                for c in els:
                    for (j1, j2, j) in triples:
                        lin.append(f"B[{len(lin) + 1}, {j1}, {j2}, {j}] {a}-{b}-{c}")
    else:
        lin = [f"B[{i + 1}, {j1}, {j2}, {j}]" for i, (j1, j2, j) in enumerate(triples)]
    labels = list(lin)
    if getattr(descriptor, "quadraticflag", False):
        n = len(lin)
        for k in range(n):
            labels.append(f"0.5*B[{k + 1}]^2")
            labels.extend(f"B[{k + 1}]*B[{m + 1}]" for m in range(k + 1, n))
    nvalues = int(descriptor.nvalues)
    if len(labels) != nvalues:  # unknown layout: plain indices
        labels = [f"B[{i + 1}]" for i in range(nvalues)]
    return labels


def snapcoeff_text(elements: Sequence[str], radelem: Sequence[float], wj: Sequence[float],
                   blocks, *, labels: Sequence[str] | None = None,
                   comment: str | None = None) -> str:
    """The ``.snapcoeff`` file that :func:`read_snapcoeff` reads back exactly: comment lines, one
    blank line, ``nelem ncoeffall``, then per element ``Symbol radelem wj`` followed by one
    coefficient per line (β0 first, shortest round-trip repr, a ``#  label`` comment). Nothing
    blank or comment-only after the header line (LAMMPS rejects it).

    ``radelem``, ``wj``: one value per element; ``blocks``: ``{element: coefficients}`` or an
    array with one row per element (β0 then the ``ncoeffall - 1`` others); ``labels``: one per
    coefficient after β0 (default ``B[k]``; :func:`coefficient_labels` gives LAMMPS's)."""
    els = [str(e) for e in elements]
    for el in els:
        if el.split() != [el] or "#" in el or el == "NULL":
            raise ValueError(f"element name {el!r} cannot be written to a .snapcoeff file")
    if len(set(els)) != len(els):
        raise ValueError(f"element names must be distinct, got {' '.join(els)}")
    radelem, wj = np.asarray(radelem, float).reshape(-1), np.asarray(wj, float).reshape(-1)
    if len(radelem) != len(els) or len(wj) != len(els):
        raise ValueError(f"{len(els)} elements need {len(els)} radelem and wj values, got "
                         f"{len(radelem)} and {len(wj)}")
    if not (np.all(np.isfinite(radelem)) and np.all(np.isfinite(wj))):
        raise ValueError("radelem and wj must be finite")
    if hasattr(blocks, "keys"):
        missing = [el for el in els if el not in blocks]
        if missing:
            raise ValueError(f"no coefficient block for element(s) {' '.join(missing)}")
        rows = [np.asarray(blocks[el], dtype=float).reshape(-1) for el in els]
    else:
        arr = np.asarray(blocks, dtype=float)
        if arr.ndim != 2 or len(arr) != len(els):
            raise ValueError(f"coefficients must be one row per element ({len(els)}), got shape "
                             f"{arr.shape}")
        rows = list(arr)
    ncoeffall = len(labels) + 1 if labels is not None else rows[0].size
    labels = ["B[0]"] + (list(labels) if labels is not None
                         else [f"B[{k}]" for k in range(1, ncoeffall)])
    lines = _comment(comment, f"mpisnap {_version()} SNAP potential")
    lines += ["", f"{len(els)} {ncoeffall}"]
    for el, r, w, c in zip(els, radelem, wj, rows):
        if c.size != ncoeffall or ncoeffall < 1:
            raise ValueError(f"coefficient block of {el} has {c.size} values, expected {ncoeffall}")
        if not np.all(np.isfinite(c)):
            raise ValueError(f"coefficient block of {el} has non-finite values")
        lines.append(f"{el} {_f(r)} {_f(w)}")
        lines += [f"{_f(x):<25} #  {lab}" for x, lab in zip(c, labels)]
    return "\n".join(lines) + "\n"


_PARAM_ORDER = ("rcutfac", "twojmax", "rfac0", "rmin0", "bzeroflag", "quadraticflag",
                "wselfallflag", "chemflag", "bnormflag", "switchflag", "switchinnerflag")


def snapparam_text(params, *, comment: str | None = None) -> str:
    """The ``.snapparam`` file that :func:`snap_parameters` reads back exactly: ``keyword value``
    lines in a fixed order, every flag written (LAMMPS's default where ``params`` has none),
    ``sinner``/``dinner`` (one value per element) when ``switchinnerflag = 1``, ``chunksize``
    and ``parallelthresh`` when given.

    ``params``: a mapping of ``.snapparam`` keywords (:data:`SNAPPARAM_DEFAULTS`) to values; None
    values count as absent, ``rcutfac`` and ``twojmax`` are required."""
    unknown = [k for k in params if k not in SNAPPARAM_DEFAULTS]
    if unknown:
        raise ValueError(f"unknown .snapparam keyword(s) {', '.join(map(repr, unknown))} (known: "
                         f"{', '.join(SNAPPARAM_DEFAULTS)})")
    p = dict(SNAPPARAM_DEFAULTS)
    p.update((k, v) for k, v in params.items() if v is not None)
    for key in ("rcutfac", "twojmax"):
        if p[key] is None:
            raise ValueError(f".snapparam keyword {key!r} is required")

    def integer(key):
        x = p[key]
        if isinstance(x, str) or float(x) != int(x):
            raise ValueError(f".snapparam {key} must be an integer, got {x!r}")
        x = int(x)
        if key in _INT_KEYS and key != "twojmax" and x not in (0, 1):
            raise ValueError(f".snapparam {key} must be 0 or 1, got {p[key]!r}")
        return x

    lines = _comment(comment, f"mpisnap {_version()} SNAP parameters")
    for key in _PARAM_ORDER:
        lines.append(f"{key} {integer(key) if key in _INT_KEYS else _f(p[key])}")
    if integer("switchinnerflag"):
        for key in ("sinner", "dinner"):
            if p[key] is None:
                raise ValueError(f".snapparam switchinnerflag 1 needs {key}")
            lines.append(f"{key} " + " ".join(_f(v) for v in np.atleast_1d(p[key])))
    for key in ("chunksize", "parallelthresh"):
        if p[key] is not None:
            lines.append(f"{key} {integer(key)}")
    return "\n".join(lines) + "\n"


def descriptor_parameters(descriptor) -> dict[str, Any]:
    """The ``.snapparam`` keywords of a :class:`mpisnap.Descriptor` (the inverse of
    :attr:`SnapStyle.descriptor`): ``sinner``/``dinner`` only with ``switchinnerflag``."""
    d = descriptor
    out: dict[str, Any] = {"rcutfac": float(d.rcutfac), "twojmax": int(d.twojmax),
                           "rfac0": float(d.rfac0), "rmin0": float(d.rmin0)}
    for key in _PARAM_ORDER[4:]:
        out[key] = int(bool(getattr(d, key)))
    if out["switchinnerflag"]:
        out["sinner"] = [float(v) for v in d.sinner]
        out["dinner"] = [float(v) for v in d.dinner]
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _drop_zero_styles(tokens: Sequence[str]) -> list[str]:
    """Remove every ``zero <cutoff> [nocoeff] [full]`` sub-style from hybrid arguments."""
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] == "zero":
            i += 1
            while i < len(tokens) and (_is_number(tokens[i]) or tokens[i] in ("nocoeff", "full")):
                i += 1
            continue
        out.append(tokens[i])
        i += 1
    return out


def _coeff_words(line: str) -> list[str]:
    t = line.split()
    return t[1:] if t and t[0] == "pair_coeff" else t


def _mixed_pairs(style: str, lines: list[list[str]], ntypes: int) -> list[str]:
    """Explicit ``pair_coeff`` lines for the type pairs a single reference style leaves to
    LAMMPS's mixing, which it does not do inside ``hybrid/overlay`` (there every pair is set by
    the ``snap`` line): ``zbl`` mixes as LAMMPS does (Z_I and Z_J of the pairs I I and J J);
    any other style with unset pairs is an error."""
    from .zbl import _type_bounds

    covered: set[tuple[int, int]] = set()
    z: dict[int, str] = {}
    for t in lines:
        try:
            (ilo, ihi), (jlo, jhi) = (_type_bounds(x, ntypes) for x in t[:2])
        except ValueError as exc:
            raise ValueError(f"[REFERENCE] pair_coeff {' '.join(t)}: {exc}") from None
        for i in range(ilo, ihi + 1):
            for j in range(jlo, jhi + 1):
                covered.add((min(i, j), max(i, j)))
                if i == j and len(t) >= 3:
                    z[i] = t[2]
    unset = [(i, j) for i in range(1, ntypes + 1) for j in range(i + 1, ntypes + 1)
             if (i, j) not in covered]
    if not unset:
        return []
    if style != "zbl" or any(i not in z or j not in z for i, j in unset):
        pairs = ", ".join(f"{i} {j}" for i, j in unset)
        raise ValueError(f"[REFERENCE] pair_style {style} leaves type pair(s) {pairs} to LAMMPS's "
                         "mixing, which hybrid/overlay with snap does not do: give their "
                         "pair_coeff lines")
    return [f"pair_coeff {i} {j} zbl {z[i]} {z[j]}" for i, j in unset]


def snap_pair_commands(coeff_file: str, param_file: str, elements: Sequence[str], *,
                       reference_style: str | None = None,
                       reference_coeffs: Sequence[str] = ()) -> list[str]:
    """``pair_style``/``pair_coeff`` commands of a SNAP potential with a reference potential
    overlaid (``reference_style``: a ``pair_style`` argument string such as ``[REFERENCE]``
    gives it, None or empty: SNAP alone; ``reference_coeffs``: its ``pair_coeff`` lines, with or
    without the leading ``pair_coeff``).

    ``hybrid``/``hybrid/overlay`` references keep their sub-styles except ``zero`` (a fitting
    placeholder), and their ``pair_coeff`` lines except those of ``zero``; ``hybrid/scaled``
    ones get SNAP with factor 1.0; a single (non-hybrid) reference style becomes a sub-style and
    its ``pair_coeff`` lines get the style name, plus the cross pairs it left to mixing (see
    :func:`_mixed_pairs`: ``hybrid/overlay`` would leave them out)."""
    els = " ".join(elements)
    tokens = reference_style.split() if reference_style else []
    if tokens and tokens[0] == "pair_style":
        tokens = tokens[1:]
    ref_coeffs: list[str] = []
    sub: list[str] = []
    prefix = "hybrid/overlay"
    if tokens and tokens[0] in ("hybrid", "hybrid/overlay"):
        sub = _drop_zero_styles(tokens[1:])
        for line in reference_coeffs:
            t = _coeff_words(line)
            if len(t) >= 3 and t[2] != "zero":
                ref_coeffs.append("pair_coeff " + " ".join(t))
    elif tokens and tokens[0] == "hybrid/scaled":
        prefix = "hybrid/scaled"
        sub = tokens[1:] + ["1.0"]
        for line in reference_coeffs:
            t = _coeff_words(line)
            if t:
                ref_coeffs.append("pair_coeff " + " ".join(t))
    elif tokens and tokens[0] != "zero":
        sub = list(tokens)
        lines = [t for t in map(_coeff_words, reference_coeffs) if len(t) >= 2]
        ref_coeffs = ["pair_coeff " + " ".join(t[:2] + [tokens[0]] + t[2:]) for t in lines]
        ref_coeffs += _mixed_pairs(tokens[0], lines, len(elements))
    if not sub:
        return ["pair_style snap", f"pair_coeff * * {coeff_file} {param_file} {els}"]
    return ([f"pair_style {prefix} {' '.join(sub)} snap"] + ref_coeffs
            + [f"pair_coeff * * snap {coeff_file} {param_file} {els}"])


def mod_text(coeff_file: str, param_file: str, elements: Sequence[str], *,
             reference_style: str | None = None, reference_coeffs: Sequence[str] = (),
             comment: str | None = None) -> str:
    """The ``.mod`` file (LAMMPS ``include``-able; :func:`read_potential` reads it): comment
    lines, then :func:`snap_pair_commands`. LAMMPS resolves the file names from the folder it
    runs in, :func:`read_potential` from the ``.mod``'s folder (and its parents)."""
    lines = _comment(comment, f"mpisnap {_version()} SNAP potential for {' '.join(elements)}")
    lines += snap_pair_commands(coeff_file, param_file, elements,
                                reference_style=reference_style,
                                reference_coeffs=reference_coeffs)
    return "\n".join(lines) + "\n"


def _write(path, text: str) -> str:
    path = os.fspath(path)
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(text)
    return path


def write_snapcoeff(path, elements: Sequence[str], radelem: Sequence[float], wj: Sequence[float],
                    blocks, *, labels: Sequence[str] | None = None,
                    comment: str | None = None) -> str:
    """Write :func:`snapcoeff_text` to ``path`` atomically; returns the path."""
    return _write(path, snapcoeff_text(elements, radelem, wj, blocks, labels=labels,
                                       comment=comment))


def write_snapparam(path, params, *, comment: str | None = None) -> str:
    """Write :func:`snapparam_text` to ``path`` atomically; returns the path."""
    return _write(path, snapparam_text(params, comment=comment))


def write_mod(path, coeff_file: str, param_file: str, elements: Sequence[str], *,
              reference_style: str | None = None, reference_coeffs: Sequence[str] = (),
              comment: str | None = None) -> str:
    """Write :func:`mod_text` to ``path`` atomically; returns the path."""
    return _write(path, mod_text(coeff_file, param_file, elements,
                                 reference_style=reference_style,
                                 reference_coeffs=reference_coeffs, comment=comment))


def write_snap_potential(prefix, descriptor, blocks, *, reference_style: str | None = None,
                         reference_coeffs: Sequence[str] = (), names_as: str | None = None,
                         comment: str | None = None, mod_comment: str | None = None) -> list[str]:
    """Write the potential of ``descriptor`` (a :class:`mpisnap.Descriptor`) with coefficient
    ``blocks`` (``{element: β0 then nvalues coefficients}`` or one row per element) as
    ``<prefix>.snapcoeff``, ``<prefix>.snapparam`` and ``<prefix>.mod``; returns the three paths.

    All three texts are made before any file is written, and each file is written atomically.
    The ``.mod`` names the other two as ``<names_as>.snapcoeff``/``.snapparam`` (default: the
    prefix as given) and overlays the reference potential (see :func:`snap_pair_commands`).
    ``comment`` heads the ``.snapcoeff`` and ``.snapparam`` (default: version, kind, elements,
    twojmax), ``mod_comment`` the ``.mod``."""
    prefix = os.fspath(prefix)
    names = prefix if names_as is None else os.fspath(names_as)
    d = descriptor
    els = [str(e) for e in d.elements]
    kind = "quadratic" if d.quadraticflag else "linear"
    if d.chemflag:
        kind += " chem"
    comment = comment or (f"mpisnap {_version()} SNAP potential ({kind}), elements "
                          f"{' '.join(els)}, twojmax {int(d.twojmax)}")
    texts = (
        (".snapcoeff", snapcoeff_text(els, d.radelem, d.wj, blocks, labels=coefficient_labels(d),
                                      comment=comment)),
        (".snapparam", snapparam_text(descriptor_parameters(d), comment=comment)),
        (".mod", mod_text(names + ".snapcoeff", names + ".snapparam", els,
                          reference_style=reference_style, reference_coeffs=reference_coeffs,
                          comment=mod_comment)),
    )
    return [_write(prefix + suffix, text) for suffix, text in texts]


# -- parsed styles ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SnapStyle:
    """``pair_style snap`` with its ``pair_coeff * * coeff param El1 El2 ...`` line.

    ``type_elements`` has one entry per LAMMPS type (None for ``NULL``); ``elements`` the distinct
    names in that order (the SNAP element order, also of chem labels); ``coefficients`` one row
    per element of ``elements``: β0 then the ``nvalues`` coefficients."""

    coeff_file: Path
    param_file: Path
    type_elements: tuple[str | None, ...]
    elements: tuple[str, ...]
    parameters: dict[str, Any] = field(repr=False)
    radelem: tuple[float, ...] = field(repr=False)
    wj: tuple[float, ...] = field(repr=False)
    coefficients: np.ndarray = field(repr=False)

    name = "snap"

    @property
    def cutoff(self) -> float:
        """Largest pair cutoff (Å): 2·max(radelem)·rcutfac."""
        return 2.0 * max(self.radelem) * float(self.parameters["rcutfac"])

    @cached_property
    def descriptor(self):
        """The :class:`mpisnap.Descriptor` of this potential (types = :attr:`elements`)."""
        from .descriptors import Descriptor

        p = self.parameters
        nel = len(self.elements)
        kw = {}
        if p["switchinnerflag"]:
            kw = {"sinner": p["sinner"], "dinner": p["dinner"]}
        return Descriptor(type=list(self.elements), twojmax=p["twojmax"], rcutfac=p["rcutfac"],
                          rfac0=p["rfac0"], rmin0=p["rmin0"], radelem=list(self.radelem),
                          wj=list(self.wj), bzeroflag=p["bzeroflag"],
                          quadraticflag=p["quadraticflag"], chemflag=p["chemflag"],
                          bnormflag=p["bnormflag"], wselfallflag=p["wselfallflag"],
                          switchflag=p["switchflag"], switchinnerflag=p["switchinnerflag"],
                          numTypes=nel, **kw)

    def evaluate(self, positions, cell, pbc, types, threads):
        """(energies, forces, virial) of the atoms; ``types`` are 0-based LAMMPS types; atoms of
        ``NULL`` types take no part."""
        from . import _core

        emap = np.array([-1 if e is None else self.elements.index(e) for e in self.type_elements])
        el = emap[types]
        keep = el >= 0
        n = len(types)
        energies, forces = np.zeros(n), np.zeros((n, 3))
        if not keep.any():
            return energies, forces, np.zeros(6)
        d = self.descriptor
        out = _core.potential(d._tables, np.ascontiguousarray(positions[keep]), cell,
                              [bool(x) for x in pbc], el[keep].astype(np.int32),
                              self.coefficients, threads=int(threads))
        energies[keep] = out["energies"]
        forces[keep] = out["forces"]
        return energies, forces, out["virial"]


@dataclass(frozen=True, eq=False)
class ZBLStyle:
    """``pair_style zbl inner outer`` with per type-pair charges ``{(i, j): (Z_i, Z_j)}`` over
    0-based LAMMPS types (i <= j). Inside ``hybrid``, only the pairs listed act (``assigned``);
    alone, unset cross pairs are mixed from the diagonal as LAMMPS does."""

    inner: float
    outer: float
    ntypes: int
    charges: dict[tuple[int, int], tuple[float, float]]
    assigned: frozenset[tuple[int, int]]

    name = "zbl"

    @property
    def cutoff(self) -> float:
        return self.outer

    @cached_property
    def zbl(self):
        from .zbl import ZBL

        z = dict(self.charges)
        for t in range(self.ntypes):  # pairs without zbl get placeholder charges, never used
            z.setdefault((t, t), (1.0, 1.0))
        return ZBL(self.inner, self.outer, z)

    @cached_property
    def _active(self) -> np.ndarray:
        act = np.zeros((self.ntypes, self.ntypes), dtype=bool)
        for i, j in self.assigned:
            act[i, j] = act[j, i] = True
        return act

    def evaluate(self, positions, cell, pbc, types, threads):
        n = len(types)
        energies, forces, virial = np.zeros(n), np.zeros((n, 3)), np.zeros(6)
        i, j, D = self.zbl.pairs(positions, cell, pbc)
        act = self._active[types[i], types[j]]
        i, j, D = i[act], j[act], D[act]
        ti, tj = types[i], types[j]
        if len(i) == 0:
            return energies, forces, virial
        r = np.sqrt(np.einsum("pa,pa->p", D, D))
        e, de, _ = self.zbl.pair(r, ti, tj)
        g = (de / r)[:, None] * D  # ∂E/∂r_ij, r_ij = r_j − r_i
        energies += 0.5 * (np.bincount(i, e, minlength=n) + np.bincount(j, e, minlength=n))
        for a in range(3):
            forces[:, a] = np.bincount(i, g[:, a], minlength=n) - np.bincount(j, g[:, a],
                                                                               minlength=n)
        va, vb = zip(*VOIGT)  # (not np.dot on strided columns: BLAS threads cost more)
        virial = -(D[:, va] * g[:, vb]).sum(axis=0)
        return energies, forces, virial


# -- the predictor --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction(_ModelPrediction):
    """:class:`mpisnap.models.Prediction` (``energy`` eV, ``forces`` (N, 3) eV/Å, ``energies``
    (N,) eV per atom — pair terms split half and half as LAMMPS ``compute pe/atom`` — and
    ``stress`` (6,) eV/Å³ in ASE's convention ``-W/V``, None unless the cell is 3-dimensional)
    plus the ``virial`` (6,) eV, ``W = -Σ r_ij ⊗ ∂E/∂r_ij``, defined for any configuration.
    Voigt order xx yy zz yz xz xy throughout."""

    virial: np.ndarray | None = None


def _default_threads() -> int:
    from .descriptors import _default_threads as dt

    return dt()


@dataclass(frozen=True, eq=False)
class Potential:
    """A parsed LAMMPS potential: ``terms`` are (scale, style) pairs summed as ``hybrid/overlay``
    (``hybrid/scaled``) does; ``type_elements`` names the element of each LAMMPS type (None where
    no style says it). It is a :class:`mpisnap.models.Predictor`: :meth:`predict`."""

    source: Path
    terms: tuple[tuple[float, Any], ...]
    type_elements: tuple[str | None, ...]

    @property
    def elements(self) -> list[str]:
        """Elements the potential handles, in type order."""
        return list(dict.fromkeys(e for e in self.type_elements if e is not None))

    @property
    def cutoff(self) -> float:
        return max((s.cutoff for _, s in self.terms), default=0.0)

    def types_of(self, symbols: Sequence[str]) -> np.ndarray:
        """0-based LAMMPS type of each symbol (the first type of that element)."""
        first: dict[str, int] = {}
        for t, e in enumerate(self.type_elements):
            if e is not None:
                first.setdefault(e, t)
        try:
            return np.array([first[s] for s in symbols], dtype=np.int32)
        except KeyError as exc:
            raise ValueError(f"element {exc.args[0]!r} is not in the potential {self.source} "
                             f"(elements: {' '.join(self.elements)})") from None

    def predict(self, config, *, uncertainty: bool = False,
                threads: int | None = None) -> Prediction:
        """Energy, per-atom energies, forces, virial and stress of ``config`` (an ``ase.Atoms``
        or any record with ``positions``, ``cell``, ``pbc`` and ``symbols``, e.g.
        :class:`mpisnap.records.Configuration`). ``threads``: OpenMP threads of the SNAP kernel
        (default: ``OMP_NUM_THREADS`` or all cores)."""
        if uncertainty:
            raise NotImplementedError(f"potential {self.source}: no uncertainty estimate (a "
                                      "LAMMPS potential file has no coefficient covariance)")
        if hasattr(config, "get_positions"):
            pos = np.asarray(config.get_positions(), dtype=float)
            cell = np.array(config.get_cell(), dtype=float)
            pbc = np.asarray(config.get_pbc(), dtype=bool)
            symbols = config.get_chemical_symbols()
        else:
            pos = np.asarray(config.positions, dtype=float)
            cell = np.zeros((3, 3)) if config.cell is None else np.array(config.cell, float)
            pbc = np.broadcast_to(np.asarray(config.pbc, dtype=bool), (3,))
            symbols = list(config.symbols)
        pos = np.ascontiguousarray(pos.reshape(-1, 3))
        cell = np.ascontiguousarray(cell.reshape(3, 3))
        types = self.types_of(symbols)
        threads = _default_threads() if threads is None else int(threads)
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        n = len(pos)
        energies, forces, virial = np.zeros(n), np.zeros((n, 3)), np.zeros(6)
        for scale, style in self.terms:
            e, f, w = style.evaluate(pos, cell, pbc, types, threads)
            energies += scale * e
            forces += scale * f
            virial += scale * w
        stress = None
        vol = abs(float(np.linalg.det(cell)))
        if vol > 0.0 and np.linalg.matrix_rank(cell) == 3:
            stress = -virial / vol
        return Prediction(float(energies.sum()), forces, energies, stress, virial=virial)


# -- include files ------------------------------------------------------------------------------

@dataclass
class _Reader:
    """State while reading one potential (variables are shared with nested include files)."""

    variables: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (style, value)
    style: tuple[str, list[str]] | None = None       # (style, args) of the last pair_style
    style_where: str = ""
    # (where, folder, words) of every pair_coeff line after the last pair_style
    coeffs: list[tuple[str, Path, list[str]]] = field(default_factory=list)
    depth: int = 0


_IGNORED = {"mass", "neighbor", "neigh_modify", "comm_modify", "atom_style", "atom_modify",
            "print"}


def _logical_lines(text: str):
    """(line number, text) with ``&`` continuations joined and comments removed."""
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        line = raw.rstrip()
        if line.endswith("&"):
            buf += line[:-1] + " "
            continue
        buf += line
        yield start, _strip_comment(buf)
        buf = ""
    if buf:
        yield start, _strip_comment(buf)


def _strip_comment(line: str) -> str:
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:k]
    return line


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}


def _evaluate(expr: str, rd: _Reader, where: str, seen: tuple[str, ...] = ()) -> float:
    """An equal-style formula of numbers, + - * / ^, parentheses and v_NAME references."""
    def node(n):
        if isinstance(n, ast.Expression):
            return node(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) \
                and not isinstance(n.value, bool):
            return float(n.value)
        if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
            return _BINOPS[type(n.op)](node(n.left), node(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            v = node(n.operand)
            return -v if isinstance(n.op, ast.USub) else v
        if isinstance(n, ast.Name) and n.id.startswith("v_"):
            return float(_variable_value(n.id[2:], rd, where, seen))
        raise ValueError
    try:
        value = node(ast.parse(expr.replace("^", "**"), mode="eval"))
    except PotentialError:
        raise
    except (ValueError, SyntaxError, TypeError, ZeroDivisionError, OverflowError):
        raise PotentialError(f"{where}: cannot evaluate the equal-style formula {expr!r} (only "
                             "numbers, + - * / ^, parentheses and v_NAME are supported)") from None
    if not math.isfinite(value):
        raise PotentialError(f"{where}: the formula {expr!r} is not finite")
    return value


def _variable_value(name: str, rd: _Reader, where: str, seen: tuple[str, ...] = ()) -> str:
    if name not in rd.variables:
        raise PotentialError(f"{where}: variable {name!r} is not defined")
    if name in seen:
        raise PotentialError(f"{where}: variable {name!r} refers to itself")
    style, value = rd.variables[name]
    if style == "equal":
        return f"{_evaluate(value, rd, where, seen + (name,)):.15g}"
    return value


def _substitute(line: str, rd: _Reader, where: str) -> str:
    """Replace ``${NAME}`` and ``$x`` (outside quotes) by the variables' values."""
    def repl(m):
        if m.group(0).startswith("$("):
            raise PotentialError(f"{where}: immediate expressions $(...) are not supported")
        return _variable_value(m.group(1) or m.group(2), rd, where)
    return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_])|\$\(", repl, line)


def _words(line: str) -> list[str]:
    out, cur, quote, has = [], "", None, False
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "'\"":
            quote, has = ch, True
        elif ch.isspace():
            if cur or has:
                out.append(cur)
            cur, has = "", False
        else:
            cur += ch
    if cur or has:
        out.append(cur)
    return out


def _read_include(path: Path, rd: _Reader) -> None:
    if rd.depth > 20:
        raise PotentialError(f"{path}: include files nested too deeply (a loop?)")
    text = _read_text(path, "potential file")
    folder = path.parent
    for n, line in _logical_lines(text):
        where = f"{path} line {n}"
        w = _words(_substitute(line, rd, where))
        if not w:
            continue
        cmd, args = w[0], w[1:]
        if cmd == "variable":
            if len(args) < 3:
                raise PotentialError(f"{where}: variable needs NAME STYLE VALUE")
            name, style = args[0], args[1]
            if style == "equal":
                rd.variables[name] = ("equal", " ".join(args[2:]))
            elif style in ("index", "string"):
                if style == "index" and name in rd.variables:
                    continue  # LAMMPS keeps the first definition of an index variable
                rd.variables[name] = (style, args[2])
            else:
                raise PotentialError(f"{where}: variable style {style!r} is not supported "
                                     "(equal, index, string)")
        elif cmd == "pair_style":
            if not args:
                raise PotentialError(f"{where}: pair_style needs a style")
            rd.style, rd.style_where, rd.coeffs = (args[0], args[1:]), where, []
        elif cmd == "pair_coeff":
            if rd.style is None:
                raise PotentialError(f"{where}: pair_coeff before pair_style")
            rd.coeffs.append((where, folder, args))
        elif cmd == "include":
            if len(args) != 1:
                raise PotentialError(f"{where}: include needs one file name")
            rd.depth += 1
            _read_include(_resolve(args[0], folder, where), rd)
            rd.depth -= 1
        elif cmd == "units":
            if args != ["metal"]:
                raise PotentialError(f"{where}: units {' '.join(args)} — only metal units are "
                                     "supported")
        elif cmd in _IGNORED:
            continue
        else:
            raise PotentialError(f"{where}: command {cmd!r} is not supported in a potential file")


def _resolve(name: str, folder: Path, where: str) -> Path:
    p = Path(name)
    if p.is_absolute():
        cands = [p]
    else:
        cands = [folder / p] + [a / p for a in list(folder.parents)[:len(p.parts) - 1]]
    for c in cands:
        if c.is_file():
            return c
    raise PotentialError(f"{where}: file {name!r} not found (looked in {folder})")


# -- pair styles ------------------------------------------------------------------------------

@dataclass
class _StyleSpec:
    """One (sub-)style of a pair_style line while parsing: its name, arguments and pair_coeffs."""

    name: str
    args: list[str]
    coeffs: list[tuple[str, Path, list[str]]] = field(default_factory=list)
    scale: float = 1.0


def _type_range(spec: str, ntypes: int, where: str) -> range:
    from .zbl import _type_bounds

    try:
        lo, hi = _type_bounds(spec, ntypes)
    except ValueError as exc:
        raise PotentialError(f"{where}: {exc}") from None
    return range(lo - 1, hi)


def _parse_snap(spec: _StyleSpec, ntypes: int | None, where: str, hybrid: bool) -> SnapStyle:
    if spec.args:
        raise PotentialError(f"{where}: pair_style snap takes no arguments, got {spec.args}")
    if len(spec.coeffs) != 1:
        raise PotentialError(f"{where}: pair_style snap needs exactly one pair_coeff line, "
                             f"got {len(spec.coeffs)}")
    cw, folder, words = spec.coeffs[0]
    if len(words) < 4 or words[0] != "*" or words[1] != "*":
        raise PotentialError(f"{cw}: snap needs 'pair_coeff * * file.snapcoeff file.snapparam "
                             "El1 El2 ...'")
    cfile, pfile = _resolve(words[2], folder, cw), _resolve(words[3], folder, cw)
    type_elements = tuple(None if e == "NULL" else e for e in words[4:])
    if not type_elements:
        raise PotentialError(f"{cw}: snap needs one element name per atom type")
    if ntypes is not None and len(type_elements) != ntypes:
        raise PotentialError(f"{cw}: {len(type_elements)} element names for {ntypes} types")
    return snap_style(cfile, pfile, type_elements, where=cw)


def snap_style(coeff_file, param_file, type_elements: Sequence[str | None],
               where: str | None = None) -> SnapStyle:
    """A :class:`SnapStyle` from its two files and the element of each type (None: NULL)."""
    coeff_file, param_file = Path(coeff_file), Path(param_file)
    where = where or str(coeff_file)
    params = snap_parameters(param_file)
    file_elements, rw, blocks = read_snapcoeff(coeff_file)
    elements = tuple(dict.fromkeys(e for e in type_elements if e is not None))
    if not elements:
        raise PotentialError(f"{where}: every type is NULL: snap has nothing to compute")
    missing = [e for e in elements if e not in blocks]
    if missing:
        raise PotentialError(f"{coeff_file}: no coefficients for element(s) {' '.join(missing)} "
                             f"(the file has {' '.join(file_elements)})")
    nel = len(elements)
    twojmax = params["twojmax"]
    K = sum(1 for j1 in range(twojmax + 1) for j2 in range(j1 + 1)
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2) if j >= j1)  # spec §8.2
    ncoeff = K * nel ** 3 if params["chemflag"] else K
    nvalues = ncoeff + ncoeff * (ncoeff + 1) // 2 if params["quadraticflag"] else ncoeff
    have = len(blocks[elements[0]])
    if have != 1 + nvalues:
        kind = ("quadratic " if params["quadraticflag"] else "") + \
               (f"chem ({nel} elements) " if params["chemflag"] else "")
        raise PotentialError(f"{coeff_file}: {have} coefficients per element, but a {kind}SNAP "
                             f"with twojmax {twojmax} (from {param_file.name}) needs 1 + "
                             f"{nvalues} = {1 + nvalues}")
    if params["switchinnerflag"]:
        for key in ("sinner", "dinner"):
            if len(params[key]) != nel:
                raise PotentialError(f"{param_file}: {key} needs one value per element "
                                     f"({nel}), got {len(params[key])}")
    style = SnapStyle(coeff_file, param_file, tuple(type_elements), elements, params,
                      tuple(rw[e][0] for e in elements), tuple(rw[e][1] for e in elements),
                      np.array([blocks[e] for e in elements]))
    try:
        style.descriptor  # validates the parameters once, with the file named on failure
    except ValueError as exc:
        raise PotentialError(f"{param_file}: {exc}") from None
    return style


def _parse_zbl(spec: _StyleSpec, ntypes: int | None, where: str, hybrid: bool) -> ZBLStyle:
    if len(spec.args) != 2:
        raise PotentialError(f"{where}: pair_style zbl needs 'inner outer', got {spec.args}")
    inner = _number(spec.args[0], where, "zbl inner")
    outer = _number(spec.args[1], where, "zbl outer")
    if not spec.coeffs:
        raise PotentialError(f"{where}: pair_style zbl has no pair_coeff lines")
    if ntypes is None:  # zbl alone: the largest type named (wildcards need a snap line)
        ntypes = 1
        for _, _, words in spec.coeffs:
            for tok in words[:2]:
                ntypes = max([ntypes] + [int(x) for x in re.findall(r"\d+", tok)])
    charges: dict[tuple[int, int], tuple[float, float]] = {}
    for cw, _, words in spec.coeffs:
        if len(words) != 4:
            raise PotentialError(f"{cw}: zbl needs 'pair_coeff I J Z_I Z_J', got {words}")
        si, sj = words[0], words[1]
        za, zb = (_number(x, cw, "Z") for x in words[2:4])
        if si.isdigit() and sj.isdigit() and int(si) > int(sj):
            si, sj, za, zb = sj, si, zb, za
        for i in _type_range(si, ntypes, cw):
            for j in _type_range(sj, ntypes, cw):
                if j < i:
                    continue
                if i == j and za != zb:
                    raise PotentialError(f"{cw}: zbl pair {i + 1} {i + 1} needs Z_I == Z_J")
                charges[(i, j)] = (za, zb)
    if not hybrid:  # plain zbl mixes unset cross pairs from the diagonal
        for i in range(ntypes):
            for j in range(i + 1, ntypes):
                if (i, j) not in charges and (i, i) in charges and (j, j) in charges:
                    charges[(i, j)] = (charges[(i, i)][0], charges[(j, j)][0])
        unset = [t + 1 for t in range(ntypes) if (t, t) not in charges]
        if unset:
            raise PotentialError(f"{where}: zbl has no pair_coeff for type(s) {unset}")
    try:
        style = ZBLStyle(inner, outer, ntypes, charges, frozenset(charges))
        style.zbl  # validates inner/outer and the charges
    except ValueError as exc:
        raise PotentialError(f"{where}: zbl: {exc}") from None
    return style


def _parse_zero(spec: _StyleSpec, ntypes: int | None, where: str, hybrid: bool) -> None:
    return None  # no energy, no forces


def _parse_mliap(spec: _StyleSpec, ntypes: int | None, where: str, hybrid: bool):
    # The hook for the neural-network (and linear/quadratic mliap) models: read the model and
    # descriptor files named in spec.args and return a style object with `cutoff`, the element
    # of each type (`type_elements`) and `evaluate(positions, cell, pbc, types, threads)`.
    raise PotentialError(f"{where}: pair_style mliap is not supported yet (use pair_style snap "
                         "files for linear and quadratic SNAP)")


#: Parsers of the supported pair styles: ``parser(spec, ntypes, where, hybrid)`` returns a style
#: object (``cutoff``, ``evaluate(positions, cell, pbc, types, threads) -> (energies, forces,
#: virial)``) or None for a style without energy. ``ntypes`` is known (from the snap line) or None.
#: ``snap`` is parsed first, as it fixes the number of types and their elements.
STYLE_PARSERS: dict[str, Callable] = {
    "snap": _parse_snap, "zbl": _parse_zbl, "zero": _parse_zero, "mliap": _parse_mliap,
}
_SUPPORTED = "snap, zbl, zero and hybrid/overlay or hybrid/scaled of them"
_SUFFIXES = ("omp", "opt", "kk", "intel", "gpu")


def _base_style(name: str) -> str:
    """The style without an accelerator suffix (``snap/kk`` computes what ``snap`` does)."""
    head, _, tail = name.rpartition("/")
    return head if head and tail in _SUFFIXES else name


def _split_hybrid(kind: str, args: list[str], where: str, source: Path) -> list[_StyleSpec]:
    specs: list[_StyleSpec] = []
    k = 0
    while k < len(args):
        scale = 1.0
        if kind == "hybrid/scaled":
            tok = args[k]
            if tok.startswith("v_"):
                raise PotentialError(f"{where}: hybrid/scaled with variable factors ({tok}) is "
                                     "not supported")
            scale = _number(tok, where, "a hybrid/scaled factor")
            k += 1
            if k == len(args):
                raise PotentialError(f"{where}: hybrid/scaled factor {tok} without a style")
        name = _base_style(args[k])
        if name not in STYLE_PARSERS:
            raise PotentialError(f"pair_style {name} is not supported ({source}); supported: "
                                 f"{_SUPPORTED}")
        k += 1
        sub: list[str] = []
        if name == "mliap":  # keyword arguments up to the next style name
            while k < len(args) and _base_style(args[k]) not in STYLE_PARSERS:
                sub.append(args[k])
                k += 1
        elif name == "zbl":
            sub, k = args[k:k + 2], k + 2
        elif name == "zero":
            sub, k = args[k:k + 1], k + 1
            while k < len(args) and args[k] in ("nocoeff", "full"):
                k += 1
        if any(s.name == name for s in specs):
            raise PotentialError(f"{where}: pair_style {name} appears twice in {kind} (not "
                                 "supported)")
        specs.append(_StyleSpec(name, sub, scale=scale))
    if not specs:
        raise PotentialError(f"{where}: pair_style {kind} without sub-styles")
    return specs


def _build(rd: _Reader, source: Path) -> Potential:
    if rd.style is None:
        raise PotentialError(f"{source}: no pair_style line")
    kind, args = rd.style
    kind = _base_style(kind)
    where = rd.style_where
    hybrid = kind in ("hybrid/overlay", "hybrid/scaled")
    if kind == "hybrid":
        raise PotentialError(f"pair_style hybrid is not supported ({source}); use hybrid/overlay")
    if hybrid:
        specs = _split_hybrid(kind, args, where, source)
        by_name = {s.name: s for s in specs}
        for cw, folder, words in rd.coeffs:
            if len(words) >= 3:
                words = words[:2] + [_base_style(words[2])] + words[3:]
            if len(words) < 3 or words[2] not in by_name:
                raise PotentialError(f"{cw}: pair_coeff in {kind} needs 'I J style ...' with a "
                                     f"style of the pair_style line ({', '.join(by_name)})")
            by_name[words[2]].coeffs.append((cw, folder, words[:2] + words[3:]))
    else:
        if kind not in STYLE_PARSERS:
            raise PotentialError(f"pair_style {kind} is not supported ({source}); supported: "
                                 f"{_SUPPORTED}")
        specs = [_StyleSpec(kind, list(args), list(rd.coeffs))]
    order = sorted(specs, key=lambda s: s.name != "snap")
    ntypes = None
    terms: list[tuple[float, Any]] = []
    type_elements: list[str | None] | None = None
    for spec in order:
        style = STYLE_PARSERS[spec.name](spec, ntypes, where, hybrid)
        if style is None:
            continue
        if spec.name == "snap":
            type_elements = list(style.type_elements)
            ntypes = len(type_elements)
        terms.append((spec.scale, style))
    zbl = next((s for _, s in terms if isinstance(s, ZBLStyle)), None)
    if type_elements is None:
        ntypes = zbl.ntypes if zbl is not None else 1
        type_elements = [None] * ntypes
    if zbl is not None:  # types without an element name: from the zbl atomic numbers
        from ase.data import chemical_symbols

        for t in range(len(type_elements)):
            z = zbl.charges.get((t, t))
            if type_elements[t] is None and z is not None and float(z[0]).is_integer() \
                    and 0 < z[0] < len(chemical_symbols):
                type_elements[t] = chemical_symbols[int(z[0])]
    if not terms:
        raise PotentialError(f"{source}: the potential has no energy terms (only zero)")
    return Potential(source, tuple(terms), tuple(type_elements))


def read_potential(path) -> Potential:
    """Read a potential: a LAMMPS include file (``pair_style``/``pair_coeff``), or a
    ``.snapcoeff`` file whose ``.snapparam`` lies beside it (all its elements, file order)."""
    path = Path(path)
    if path.suffix == ".snapcoeff":
        param = path.with_suffix(".snapparam")
        if not param.is_file():
            raise PotentialError(f"{path}: its parameter file {param.name} is not beside it")
        elements, _, _ = read_snapcoeff(path)
        style = snap_style(path, param, elements)
        return Potential(path, ((1.0, style),), tuple(elements))
    rd = _Reader()
    _read_include(path, rd)
    return _build(rd, path)
