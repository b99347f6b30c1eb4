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

``pair_style mliap`` files: :func:`read_mliap_descriptor` (``descriptor sna``),
:func:`read_mliap_model` (``model linear``, ``quadratic`` and ``nn``: :class:`MliapNN`), and
:func:`write_mliap_potential` (``<prefix>.mliap.model``, ``.mliap.descriptor`` and ``.mod``).
LAMMPS's ML-IAP readers are strict and silent (1,024-character lines, at most 30 numbers per
coefficient line, unknown activations computed as linear, ``bzeroflag`` defaulting to 1): the
readers here refuse what LAMMPS would misread and the writers write only what it reads as meant.

The include-file subset understood: ``#`` comments, ``&`` continuation lines, ``variable NAME
equal|index|string VALUE`` with ``${NAME}``/``$x`` substitution (equal-style formulas of numbers,
``+ - * / ^``, parentheses and ``v_NAME``), ``include``, ``units metal``, ``pair_style`` and
``pair_coeff``; the commands ``mass``, ``neighbor``, ``neigh_modify``, ``comm_modify``,
``atom_style``, ``atom_modify`` and ``print`` are accepted and ignored (they do not change the
potential). Pair styles: ``snap`` (linear, quadratic, chem), ``mliap`` (``model linear``,
``quadratic`` or ``nn`` with ``descriptor sna``), ``zbl``, ``zero`` and their combinations with
``hybrid/overlay`` or ``hybrid/scaled`` (constant factors); ``NULL`` in the ``snap``/``mliap``
element list. Anything else is a one-line :class:`PotentialError` naming the style or command
and the file. New styles plug in through :data:`STYLE_PARSERS`.

File names in ``pair_coeff`` (and the ``mliap`` files of a ``pair_style`` line) resolve from the
folder of the file that names them (then, for a
name with folder parts, from that folder's parents: ``mpisnap fit`` writes names relative to its
output folder).

The parsed :class:`Potential` is a predictor: :meth:`Potential.predict` gives the energy (eV),
per-atom energies, forces (eV/Å), the virial (eV) and, for 3-d cells, the stress in ASE's
convention (eV/Å³) for any configuration, with the SNAP part computed by the compiled core's
adjoint kernel (forces for one coefficient set, without per-component derivatives). Atoms are
matched to LAMMPS types by their chemical symbols: the element names of the ``snap`` or
``mliap`` ``pair_coeff`` line (for a type that is ``NULL`` there, or without ``snap``, the element whose
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
    "write_snap_potential", "MliapStyle", "MliapNN", "MliapLinearModel", "read_mliap_descriptor",
    "read_mliap_model", "mliap_descriptor", "mliap_style", "mliap_descriptor_text",
    "mliap_nn_model_text", "mliap_linear_model_text", "mliap_pair_commands",
    "overlay_pair_commands", "write_mliap_potential", "nn_energies_forces", "MLIAP_ACTIVATIONS",
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
    return overlay_pair_commands("snap", "snap", f"{coeff_file} {param_file}", elements,
                                 reference_style=reference_style,
                                 reference_coeffs=reference_coeffs)


def overlay_pair_commands(style: str, name: str, files: str, elements: Sequence[str], *,
                          reference_style: str | None = None,
                          reference_coeffs: Sequence[str] = ()) -> list[str]:
    """``pair_style``/``pair_coeff`` commands of a machine-learned pair style ``style`` (its
    ``pair_style`` words, e.g. ``"snap"`` or ``"mliap model nn M descriptor sna D"``; ``name``
    its style name) whose ``pair_coeff * *`` line takes ``files`` (may be empty) and one element
    per type, with a reference potential overlaid as :func:`snap_pair_commands` describes."""
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
    args = f"{files} {els}" if files else els
    if not sub:
        return [f"pair_style {style}", f"pair_coeff * * {args}"]
    return ([f"pair_style {prefix} {' '.join(sub)} {style}"] + ref_coeffs
            + [f"pair_coeff * * {name} {args}"])


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


# -- pair_style mliap: model and descriptor files -----------------------------------------------
#
# LAMMPS reads these files with fixed 1,024-character line buffers (a longer line is split
# silently, so a number may be cut in two), at most 30 numbers per coefficient line of a
# ``model nn`` file, an unknown activation name silently as ``linear``, and ``descriptor sna``
# with ``bzeroflag`` defaulting to 1. The readers below refuse what LAMMPS would misread; the
# writers write only what it reads as meant (every flag explicit, short lines).

#: LAMMPS's fgets buffer in the ML-IAP readers: lines must be shorter than this.
MLIAP_MAXLINE = 1024
#: Numbers per coefficient line of a ``model nn`` file that LAMMPS accepts.
MLIAP_MAX_PER_LINE = 30
#: The activations LAMMPS ``model nn`` knows (any other name it computes as ``linear``).
MLIAP_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")
#: ``descriptor sna`` keywords with one value and LAMMPS's defaults (None: required).
MLIAP_SNA_DEFAULTS: dict[str, Any] = {
    "rcutfac": None, "twojmax": None, "rfac0": 0.99363, "rmin0": 0.0, "switchflag": 1,
    "bzeroflag": 1, "chemflag": 0, "bnormflag": 0, "wselfallflag": 0, "switchinnerflag": 0,
}
_SNA_PER_ELEMENT = ("elems", "radelems", "welems", "sinnerelems", "dinnerelems")
_SNA_FLAGS = ("switchflag", "bzeroflag", "chemflag", "bnormflag", "wselfallflag",
              "switchinnerflag")


def _mliap_lines(path, what: str):
    """(line number, words) of the non-blank lines of an ML-IAP file, comments stripped; a line
    LAMMPS would split (1,024 characters or more) is an error."""
    for n, line in enumerate(_read_text(path, what).splitlines(), 1):
        if len(line) + 1 >= MLIAP_MAXLINE:
            raise PotentialError(f"{path} line {n}: {len(line)} characters; LAMMPS reads lines "
                                 f"of at most {MLIAP_MAXLINE - 2} (a longer one is silently cut)")
        w = line.split("#")[0].replace("'", " ").replace('"', " ").split()
        if w:
            yield n, w


def read_mliap_descriptor(path) -> dict[str, Any]:
    """Read a ``descriptor sna`` file of ``pair_style mliap``: the keywords typed, with LAMMPS's
    defaults (:data:`MLIAP_SNA_DEFAULTS`: note ``bzeroflag`` 1), plus ``elements``, ``radelem``,
    ``wj`` and, with ``switchinnerflag 1``, ``sinner``/``dinner`` (one per element). As strict as
    LAMMPS: an unknown keyword (e.g. ``quadraticflag``, which ``descriptor sna`` does not have),
    a per-element keyword before ``nelems`` or with the wrong count, or a missing required one
    is a :class:`PotentialError` naming the file and line."""
    out: dict[str, Any] = dict(MLIAP_SNA_DEFAULTS)
    per: dict[str, list] = {}
    nelems = None
    for n, w in _mliap_lines(path, "ML-IAP descriptor file"):
        key, vals, where = w[0], w[1:], f"{path} line {n}"
        if key in _SNA_PER_ELEMENT:
            if nelems is None:
                raise PotentialError(f"{where}: {key} before nelems")
            if len(vals) != nelems:
                raise PotentialError(f"{where}: {key} needs {nelems} values (nelems), got "
                                     f"{len(vals)}")
            per[key] = vals if key == "elems" else [_number(v, where, key) for v in vals]
            continue
        if key != "nelems" and key not in MLIAP_SNA_DEFAULTS:
            raise PotentialError(f"{where}: unknown keyword {key!r} for descriptor sna (known: "
                                 f"nelems, {', '.join(_SNA_PER_ELEMENT)}, "
                                 f"{', '.join(MLIAP_SNA_DEFAULTS)})")
        if len(vals) != 1:
            raise PotentialError(f"{where}: {key} takes one value, got {len(vals)}")
        x = _number(vals[0], where, key)
        if key in ("nelems", "twojmax") + _SNA_FLAGS:
            if x != int(x):
                raise PotentialError(f"{where}: {key} must be an integer, got {vals[0]!r}")
            x = int(x)
            if key in _SNA_FLAGS and x not in (0, 1):
                raise PotentialError(f"{where}: {key} must be 0 or 1, got {vals[0]!r}")
            if key == "nelems":
                if x < 1:
                    raise PotentialError(f"{where}: nelems must be >= 1")
                nelems = x
                continue
        out[key] = x
    for key in ("rcutfac", "twojmax"):
        if out[key] is None:
            raise PotentialError(f"{path}: required keyword {key!r} is missing")
    for key in ("elems", "radelems", "welems"):
        if key not in per:
            raise PotentialError(f"{path}: required keyword {key!r} is missing")
    if len(set(per["elems"])) != len(per["elems"]):
        raise PotentialError(f"{path}: elems lists an element twice")
    inner = [k for k in ("sinnerelems", "dinnerelems") if k in per]
    if out["switchinnerflag"] and len(inner) != 2:
        raise PotentialError(f"{path}: switchinnerflag 1 needs sinnerelems and dinnerelems")
    if not out["switchinnerflag"] and inner:
        raise PotentialError(f"{path}: {inner[0]} without switchinnerflag 1 (LAMMPS refuses it)")
    out.update(elements=list(per["elems"]), radelem=per["radelems"], wj=per["welems"],
               sinner=per.get("sinnerelems"), dinner=per.get("dinnerelems"))
    return out


def mliap_descriptor(params: dict[str, Any], quadratic: bool = False):
    """The :class:`mpisnap.Descriptor` of :func:`read_mliap_descriptor`'s parameters (with
    ``quadratic``, its values include the products a ``model quadratic`` multiplies)."""
    from .descriptors import Descriptor

    p = params
    kw = {"sinner": p["sinner"], "dinner": p["dinner"]} if p["switchinnerflag"] else {}
    return Descriptor(type=list(p["elements"]), twojmax=p["twojmax"], rcutfac=p["rcutfac"],
                      rfac0=p["rfac0"], rmin0=p["rmin0"], radelem=list(p["radelem"]),
                      wj=list(p["wj"]), bzeroflag=p["bzeroflag"], chemflag=p["chemflag"],
                      bnormflag=p["bnormflag"], wselfallflag=p["wselfallflag"],
                      switchflag=p["switchflag"], switchinnerflag=p["switchinnerflag"],
                      quadraticflag=int(quadratic), **kw)


def mliap_descriptor_text(descriptor, *, comment: str | None = None) -> str:
    """The ``descriptor sna`` file of a :class:`mpisnap.Descriptor` that LAMMPS reads as meant:
    every keyword written (LAMMPS's ``bzeroflag`` default is 1, FitSNAP's 0), inner cutoffs as
    ``sinnerelems``/``dinnerelems``. ValueError for what ``descriptor sna`` cannot express:
    ``quadraticflag`` (it has none) or a ``twojmax`` per element (it has one)."""
    d = descriptor
    if d.quadraticflag:
        raise ValueError("pair_style mliap descriptor sna has no quadraticflag: a quadratic "
                         "descriptor cannot be exported (use pair_style snap)")
    if len(set(int(t) for t in d.twojmax_per_type)) != 1:
        raise ValueError(f"pair_style mliap descriptor sna has one twojmax for all elements, got "
                         f"{' '.join(str(int(t)) for t in d.twojmax_per_type)}")
    els = [str(e) for e in d.elements]
    for el in els:
        if el.split() != [el] or "#" in el or el == "NULL" or "'" in el or '"' in el:
            raise ValueError(f"element name {el!r} cannot be written to an ML-IAP file")
    lines = _comment(comment, f"mpisnap {_version()} ML-IAP SNAP descriptor")
    lines += [f"rcutfac {_f(d.rcutfac)}", f"twojmax {int(d.twojmax)}", f"nelems {len(els)}",
              "elems " + " ".join(els), "radelems " + " ".join(_f(x) for x in d.radelem),
              "welems " + " ".join(_f(x) for x in d.wj), f"rfac0 {_f(d.rfac0)}",
              f"rmin0 {_f(d.rmin0)}"]
    lines += [f"{k} {int(bool(getattr(d, k)))}" for k in _SNA_FLAGS]
    if d.switchinnerflag:
        lines += ["sinnerelems " + " ".join(_f(x) for x in d.sinner),
                  "dinnerelems " + " ".join(_f(x) for x in d.dinner)]
    text = "\n".join(lines) + "\n"
    if max(len(ln) for ln in text.splitlines()) + 1 >= MLIAP_MAXLINE:
        raise ValueError("a line of the ML-IAP descriptor file would be too long for LAMMPS")
    return text


def _activation(name: str):
    """(f, f') of a LAMMPS ``model nn`` activation; f' takes (x, f(x))."""
    if name == "linear":
        return (lambda x: x), (lambda x, y: np.ones_like(x))
    if name == "sigmoid":
        from scipy.special import expit

        return expit, (lambda x, y: y * (1.0 - y))
    if name == "tanh":
        return np.tanh, (lambda x, y: 1.0 - y * y)
    if name == "relu":
        return (lambda x: np.maximum(x, 0.0)), (lambda x, y: (x > 0).astype(x.dtype))
    raise ValueError(f"activation {name!r}: LAMMPS model nn knows only "
                     f"{', '.join(MLIAP_ACTIVATIONS)} (it computes any other name as linear)")


@dataclass(frozen=True, eq=False)
class MliapLinearModel:
    """``model linear`` or ``model quadratic`` of ``pair_style mliap``: one row per element of
    β0, the linear coefficients and (quadratic) the ½·diagonal and upper-triangular products,
    in ``pair_style snap``'s order (so the SNAP adjoint kernel evaluates it)."""

    kind: str
    coefficients: np.ndarray  # (nelements, nparams)

    @property
    def nelements(self) -> int:
        return int(self.coefficients.shape[0])


@dataclass(frozen=True, eq=False)
class MliapNN:
    """``model nn`` of ``pair_style mliap``: per element, E_i = net((B_i − scale0) / scale1).

    ``layers``: (nodes, activation) per layer after the input of ``ndescriptors`` (the last
    layer has 1 node, its value is E_i in eV); ``scale`` (nelements, 2, ndescriptors): the
    shift (row 0) and divisor (row 1) of the descriptors; ``coefficients`` (nelements, nparams):
    layer after layer, node after node, its bias then its weights over the previous layer (the
    order of the file)."""

    ndescriptors: int
    layers: tuple[tuple[int, str], ...]
    scale: np.ndarray
    coefficients: np.ndarray

    def __post_init__(self) -> None:
        nd = int(self.ndescriptors)
        if nd < 1 or not self.layers:
            raise ValueError("model nn needs ndescriptors >= 1 and at least one layer")
        for nodes, act in self.layers:
            if int(nodes) < 1:
                raise ValueError(f"model nn: a layer of {nodes} nodes")
            _activation(act)
        if int(self.layers[-1][0]) != 1:
            raise ValueError(f"model nn: the last layer gives the energy and must have 1 node, "
                             f"got {self.layers[-1][0]}")
        scale = np.asarray(self.scale, float)
        coef = np.asarray(self.coefficients, float)
        nel = coef.shape[0] if coef.ndim == 2 else 0
        if coef.ndim != 2 or coef.shape[1] != self.nparams(nd, self.layers) or nel < 1:
            raise ValueError(f"model nn: coefficients must have shape (nelements, "
                             f"{self.nparams(nd, self.layers)}), got {coef.shape}")
        if scale.shape != (nel, 2, nd):
            raise ValueError(f"model nn: scale must have shape ({nel}, 2, {nd}), got "
                             f"{scale.shape}")
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(coef))):
            raise ValueError("model nn: scale and coefficients must be finite")
        if np.any(scale[:, 1] == 0.0):
            raise ValueError("model nn: a scale1 (divisor) value is 0")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "coefficients", coef)
        object.__setattr__(self, "layers", tuple((int(n), str(a)) for n, a in self.layers))

    kind = "nn"

    @staticmethod
    def nparams(ndescriptors: int, layers) -> int:
        """Parameters per element: Σ over layers of nodes × (inputs + 1)."""
        total, nin = 0, int(ndescriptors)
        for nodes, _ in layers:
            total += int(nodes) * (nin + 1)
            nin = int(nodes)
        return total

    @property
    def nelements(self) -> int:
        return int(self.coefficients.shape[0])

    def weights(self, element: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W (nodes, inputs), b (nodes,)) per layer of element ``element`` (0-based)."""
        out, k, nin = [], 0, self.ndescriptors
        c = self.coefficients[element]
        for nodes, _ in self.layers:
            block = c[k:k + nodes * (nin + 1)].reshape(nodes, nin + 1)
            out.append((block[:, 1:], block[:, 0]))
            k += nodes * (nin + 1)
            nin = nodes
        return out

    @classmethod
    def from_weights(cls, layers, weights, scale) -> "MliapNN":
        """From per-element lists of (W, b) per layer (``weights[e][l]``) and ``scale``."""
        rows = []
        for per_layer in weights:
            parts = [np.concatenate([np.asarray(b, float)[:, None], np.asarray(W, float)],
                                    axis=1).ravel() for W, b in per_layer]
            rows.append(np.concatenate(parts))
        nd = np.asarray(weights[0][0][0]).shape[1]
        return cls(nd, tuple(layers), np.asarray(scale, float), np.array(rows))

    def evaluate(self, B: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom energies E_i (eV) and dE_i/dB_i of descriptors ``B`` (N, ndescriptors) of
        atoms of 0-based ``elements`` (N,)."""
        B = np.asarray(B, float)
        n = len(B)
        energies, beta = np.zeros(n), np.zeros((n, self.ndescriptors))
        for e in np.unique(elements):
            sel = np.flatnonzero(elements == e)
            s0, s1 = self.scale[e]
            h = (B[sel] - s0) / s1
            derivs = []
            for (W, b), (_, act) in zip(self.weights(int(e)), self.layers):
                f, df = _activation(act)
                z = h @ W.T + b
                h = f(z)
                derivs.append((W, df(z, h)))
            energies[sel] = h[:, 0]
            g = np.ones((len(sel), 1))
            for W, d in reversed(derivs):
                g = (g * d) @ W
            beta[sel] = g / s1
        return energies, beta


def _mliap_model_header(path) -> tuple[int, int, int, list]:
    """``(header line number, nelements, nparams, the numbered lines after the header)`` of an
    ML-IAP model file."""
    lines = list(_mliap_lines(path, "ML-IAP model file"))
    if not lines:
        raise PotentialError(f"{path}: empty ML-IAP model file")
    (n0, head), rest = lines[0], lines[1:]
    if len(head) != 2 or not all(h.isdigit() for h in head) or min(map(int, head)) < 1:
        raise PotentialError(f"{path} line {n0}: expected 'nelements nparams', got "
                             f"{' '.join(head)!r}")
    return n0, int(head[0]), int(head[1]), rest


def _mliap_simple_model(path, kind: str) -> MliapLinearModel:
    """``model linear``/``quadratic`` file: ``nelements nparams`` then one number per line."""
    _, nel, npar, rest = _mliap_model_header(path)
    if len(rest) < nel * npar:
        raise PotentialError(f"{path}: {len(rest)} coefficient lines, {nel} elements × {npar} "
                             f"parameters need {nel * npar}")
    values = []
    for n, w in rest[:nel * npar]:
        if len(w) != 1:
            raise PotentialError(f"{path} line {n}: expected one coefficient per line (LAMMPS "
                                 f"model {kind}), got {len(w)}")
        values.append(_number(w[0], f"{path} line {n}", "a coefficient"))
    return MliapLinearModel(kind, np.array(values).reshape(nel, npar))


def read_mliap_model(path, kind: str = "nn"):
    """Read a ``pair_style mliap`` model file of ``kind`` ``nn`` (:class:`MliapNN`), ``linear``
    or ``quadratic`` (:class:`MliapLinearModel`), as strict as LAMMPS and stricter where LAMMPS
    misreads silently: an unknown activation, a coefficient line of more than 30 numbers, a
    number block overflowing its section, numbers left over, or a scale divisor of 0 is a
    :class:`PotentialError` naming the file and line."""
    if kind in ("linear", "quadratic"):
        return _mliap_simple_model(path, kind)
    if kind != "nn":
        raise PotentialError(f"{path}: model {kind!r} is not supported (linear, quadratic, nn)")
    n0, nel, npar, rest = _mliap_model_header(path)
    if not rest or rest[0][1][0] != "NET":
        raise PotentialError(f"{path}: expected the 'NET ndescriptors nlayers activation nodes "
                             "...' line after the header")
    n1, net = rest[0]
    where = f"{path} line {n1}"
    try:
        nd, nl = int(net[1]), int(net[2])
        layers = [(int(net[4 + 2 * k]), net[3 + 2 * k]) for k in range(nl)]
    except (IndexError, ValueError):
        raise PotentialError(f"{where}: expected 'NET ndescriptors nlayers' and an activation "
                             f"and a node count per layer, got {' '.join(net)!r}") from None
    if len(net) != 3 + 2 * nl:
        raise PotentialError(f"{where}: {len(net) - 3} words for {nl} layers (activation and "
                             "node count per layer)")
    for _, act in layers:
        if act not in MLIAP_ACTIVATIONS:
            raise PotentialError(f"{where}: activation {act!r} is not one LAMMPS model nn knows "
                                 f"({', '.join(MLIAP_ACTIVATIONS)}); LAMMPS would compute it as "
                                 "linear")
    expect = MliapNN.nparams(nd, layers) if nd >= 1 and min(n for n, _ in layers) >= 1 else -1
    if expect != npar:
        raise PotentialError(f"{path} line {n0}: nparams {npar}, but the network of {where} "
                             f"has {expect} parameters per element")
    sizes = [nd, nd, npar]
    names = ("scale0", "scale1", "coefficients")
    blocks = [[[], [], []] for _ in range(nel)]
    e, part = 0, 0
    for n, w in rest[1:]:
        if e == nel:
            raise PotentialError(f"{path} line {n}: numbers after the last element's "
                                 "coefficients")
        if part == 2 and len(w) > MLIAP_MAX_PER_LINE:
            raise PotentialError(f"{path} line {n}: {len(w)} numbers; LAMMPS accepts at most "
                                 f"{MLIAP_MAX_PER_LINE} per coefficient line")
        block = blocks[e][part]
        if len(block) + len(w) > sizes[part]:
            raise PotentialError(f"{path} line {n}: the numbers overflow {names[part]} of "
                                 f"element {e + 1} ({sizes[part]} values)")
        block.extend(_number(x, f"{path} line {n}", "a number") for x in w)
        if len(block) == sizes[part]:
            part += 1
            if part == 3:
                e, part = e + 1, 0
    if e != nel:
        raise PotentialError(f"{path}: file ends early (element {e + 1} of {nel}: "
                             f"{names[part]} incomplete)")
    try:
        return MliapNN(nd, tuple(layers), np.array([[b[0], b[1]] for b in blocks]),
                       np.array([b[2] for b in blocks]))
    except ValueError as exc:
        raise PotentialError(f"{path}: {exc}") from None


def _number_lines(values, per_line: int = 10) -> list[str]:
    v = [_f(x) for x in np.asarray(values, float).ravel()]
    return [" ".join(v[k:k + per_line]) for k in range(0, len(v), per_line)]


def mliap_nn_model_text(model: MliapNN, *, elements: Sequence[str] | None = None,
                        comment: str | None = None) -> str:
    """The ``model nn`` file of ``model`` that LAMMPS reads as meant: the header, the NET line,
    then per element its scale0, scale1 and coefficients, at most 10 numbers (shortest
    round-trip repr) per line; ``elements`` name the blocks in comments."""
    if not isinstance(model, MliapNN):
        raise TypeError(f"expected an MliapNN, got {type(model).__name__}")
    nd, nel = model.ndescriptors, model.nelements
    npar = MliapNN.nparams(nd, model.layers)
    names = list(elements) if elements is not None else [str(e + 1) for e in range(nel)]
    lines = _comment(comment, f"mpisnap {_version()} ML-IAP neural network")
    lines += ["", "# nelements nparams", f"{nel} {npar}",
              "# NET ndescriptors nlayers, then activation and nodes of each layer",
              f"NET {nd} {len(model.layers)} "
              + " ".join(f"{act} {nodes}" for nodes, act in model.layers)]
    for e in range(nel):
        lines += ["", f"# element {names[e]}: scale0 (descriptor shift)"]
        lines += _number_lines(model.scale[e, 0])
        lines += [f"# element {names[e]}: scale1 (descriptor divisor)"]
        lines += _number_lines(model.scale[e, 1])
        lines += [f"# element {names[e]}: per layer, per node: bias, then weights"]
        lines += _number_lines(model.coefficients[e])
    text = "\n".join(lines) + "\n"
    if max(len(ln) for ln in text.splitlines()) + 1 >= MLIAP_MAXLINE:
        raise ValueError("a line of the ML-IAP model file would be too long for LAMMPS")
    return text


def mliap_linear_model_text(coefficients, *, comment: str | None = None) -> str:
    """The ``model linear``/``quadratic`` file of one coefficient row per element (β0 first)."""
    c = np.asarray(coefficients, float)
    if c.ndim != 2 or not np.all(np.isfinite(c)):
        raise ValueError("coefficients must be finite, one row per element")
    lines = _comment(comment, f"mpisnap {_version()} ML-IAP linear model")
    lines += ["", f"{c.shape[0]} {c.shape[1]}"] + [_f(x) for x in c.ravel()]
    return "\n".join(lines) + "\n"


def mliap_pair_commands(model_file: str, descriptor_file: str, elements: Sequence[str], *,
                        kind: str = "nn", reference_style: str | None = None,
                        reference_coeffs: Sequence[str] = ()) -> list[str]:
    """``pair_style mliap model <kind> <model_file> descriptor sna <descriptor_file>`` and its
    ``pair_coeff``, with a reference potential overlaid as :func:`snap_pair_commands` does."""
    return overlay_pair_commands(f"mliap model {kind} {model_file} descriptor sna "
                                 f"{descriptor_file}", "mliap", "", elements,
                                 reference_style=reference_style,
                                 reference_coeffs=reference_coeffs)


def write_mliap_potential(prefix, descriptor, model, *, reference_style: str | None = None,
                          reference_coeffs: Sequence[str] = (), names_as: str | None = None,
                          comment: str | None = None,
                          mod_comment: str | None = None) -> list[str]:
    """Write ``<prefix>.mliap.model`` (``model nn`` for an :class:`MliapNN`, else ``model
    linear``/``quadratic`` rows), ``<prefix>.mliap.descriptor`` (``descriptor sna`` of
    ``descriptor``, a :class:`mpisnap.Descriptor`) and ``<prefix>.mod`` (the ``pair_style
    mliap`` lines with the reference overlaid; file names as ``<names_as>.mliap.*``). All texts
    are made before any file is written; each file is written atomically. Returns the paths."""
    prefix = os.fspath(prefix)
    names = prefix if names_as is None else os.fspath(names_as)
    els = [str(e) for e in descriptor.elements]
    if isinstance(model, MliapNN):
        if model.ndescriptors != int(descriptor.ncoeff):
            raise ValueError(f"the network takes {model.ndescriptors} descriptors, the "
                             f"descriptor gives {descriptor.ncoeff}")
        kind, mtext = "nn", mliap_nn_model_text(model, elements=els, comment=comment)
    else:
        kind = getattr(model, "kind", "linear")
        mtext = mliap_linear_model_text(model.coefficients, comment=comment)
    texts = (
        (".mliap.model", mtext),
        (".mliap.descriptor", mliap_descriptor_text(descriptor, comment=comment)),
        (".mod", "\n".join(_comment(mod_comment, f"mpisnap {_version()} ML-IAP potential for "
                                                 f"{' '.join(els)}")
                           + mliap_pair_commands(names + ".mliap.model",
                                                 names + ".mliap.descriptor", els, kind=kind,
                                                 reference_style=reference_style,
                                                 reference_coeffs=reference_coeffs)) + "\n"),
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
        return _on_element_atoms(
            self.elements, self.type_elements, positions, types,
            lambda pos, el: _linear_snap(self.descriptor, pos, cell, pbc, el, self.coefficients,
                                         threads))


def _on_element_atoms(elements, type_elements, positions, types, compute):
    """(energies, forces, virial) of all atoms from ``compute(positions, elements)`` on those whose
    0-based LAMMPS type maps to an element (``type_elements``, None for ``NULL``; positions
    contiguous, element indices into ``elements`` as int32); atoms of ``NULL`` types get 0."""
    emap = np.array([-1 if e is None else elements.index(e) for e in type_elements])
    el = emap[types]
    keep = el >= 0
    n = len(types)
    energies, forces = np.zeros(n), np.zeros((n, 3))
    if not keep.any():
        return energies, forces, np.zeros(6)
    e, f, virial = compute(np.ascontiguousarray(positions[keep]), el[keep].astype(np.int32))
    energies[keep] = e
    forces[keep] = f
    return energies, forces, virial


def _linear_snap(descriptor, positions, cell, pbc, elements, coefficients, threads):
    """(energies, forces, virial) of a linear or quadratic SNAP model on the adjoint kernel."""
    from . import _core

    out = _core.potential(descriptor._tables, positions, cell, [bool(x) for x in pbc], elements,
                          coefficients, threads=int(threads))
    return out["energies"], out["forces"], out["virial"]


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


@dataclass(frozen=True, eq=False)
class MliapStyle:
    """``pair_style mliap model KIND MODEL descriptor sna DESCRIPTOR`` with its ``pair_coeff * *
    El1 El2 ...`` line. ``elements`` are the descriptor file's (its order indexes the model's
    element blocks); ``type_elements`` one per LAMMPS type (None for ``NULL``); ``model`` an
    :class:`MliapNN` or :class:`MliapLinearModel`; ``descriptor`` the
    :class:`mpisnap.Descriptor` of the descriptor file.

    Linear and quadratic models run on the SNAP adjoint kernel. A network's forces come from the
    per-neighbour descriptor derivatives (``Descriptor.compute(pairs=True)``) contracted with
    dE_i/dB_i: memory about 24·nneighbours·ndescriptors bytes per atom during a call."""

    model_file: Path
    descriptor_file: Path
    type_elements: tuple[str | None, ...]
    elements: tuple[str, ...]
    parameters: dict[str, Any] = field(repr=False)
    model: Any = field(repr=False)
    descriptor: Any = field(repr=False)

    name = "mliap"

    @property
    def cutoff(self) -> float:
        """Largest pair cutoff (Å): 2·max(radelem)·rcutfac."""
        return 2.0 * max(self.descriptor.radelem) * float(self.descriptor.rcutfac)

    def evaluate(self, positions, cell, pbc, types, threads):
        """(energies, forces, virial) of the atoms; ``types`` are 0-based LAMMPS types; atoms of
        ``NULL`` types take no part."""
        pbc = [bool(x) for x in pbc]

        def compute(pos, el):
            if isinstance(self.model, MliapNN):
                return nn_energies_forces(self.model, self.descriptor, pos, cell, pbc, el,
                                          threads)
            return _linear_snap(self.descriptor, pos, cell, pbc, el, self.model.coefficients,
                                threads)

        return _on_element_atoms(self.elements, self.type_elements, positions, types, compute)


def nn_energies_forces(model, descriptor, positions, cell, pbc, elements, threads=None,
                       mask=None, descriptors=None):
    """Per-atom energies (eV), forces (eV/Å) and virial (eV, Voigt) of a network ``model``
    (anything with ``evaluate(B, elements) -> (E_i, dE_i/dB_i)``, e.g. :class:`MliapNN`) on
    atoms of 0-based ``elements`` (the descriptor's), by the chain rule: F_m = Σ_p [i_p = m] c_p
    − Σ_p [j_p = m] c_p with c_p = ∂B_i/∂r_in · dE_i/dB_i over the neighbour images p (sparse:
    no dense N×N array), W = −Σ_p r_in ⊗ c_p. ``mask`` (nelements, ndescriptors): multiplies
    each atom's descriptors (per-element band limits); ``descriptors``: the
    :class:`mpisnap.DescriptorResult` with ``pairs`` if already computed."""
    d = descriptors if descriptors is not None else descriptor.compute(
        positions=positions, cell=cell, pbc=pbc, types=elements, forces=False, virial=False,
        pairs=True, threads=threads)
    B = d.B
    m = None if mask is None else np.asarray(mask)[elements]
    if m is not None:
        B = B * m
    energies, beta = model.evaluate(B, elements)
    if m is not None:
        beta = beta * m
    p = d.pairs
    c = np.einsum("pak,pk->pa", p.dBdr, beta[p.i])
    n = len(energies)
    forces = np.zeros((n, 3))
    for a in range(3):
        forces[:, a] = np.bincount(p.i, c[:, a], minlength=n) - np.bincount(p.j, c[:, a],
                                                                            minlength=n)
    va, vb = zip(*VOIGT)
    virial = -(p.rij[:, va] * c[:, vb]).sum(axis=0)
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
    style_folder: Path | None = None  # folder of the file with the last pair_style line
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
            rd.style_folder = folder
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
    folder: Path | None = None  # where file names of the pair_style line resolve from


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


def _parse_mliap(spec: _StyleSpec, ntypes: int | None, where: str, hybrid: bool) -> MliapStyle:
    args, k = list(spec.args), 0
    files: dict[str, tuple[str, str]] = {}
    while k < len(args):
        key = args[k]
        if key == "unified":
            raise PotentialError(f"{where}: pair_style mliap unified (a Python model) is not "
                                 "supported")
        if key not in ("model", "descriptor") or k + 2 >= len(args):
            raise PotentialError(f"{where}: pair_style mliap needs 'model KIND FILE descriptor "
                                 f"sna FILE', got {' '.join(args)!r}")
        files[key] = (args[k + 1], args[k + 2])
        k += 3
    if set(files) != {"model", "descriptor"}:
        raise PotentialError(f"{where}: pair_style mliap needs both model and descriptor")
    mkind, mname = files["model"]
    dkind, dname = files["descriptor"]
    if mkind not in ("linear", "quadratic", "nn"):
        extra = (" (a pickled PyTorch model run by LAMMPS's Python; export it as model nn)"
                 if mkind == "mliappy" else "")
        raise PotentialError(f"{where}: mliap model {mkind!r} is not supported{extra}; "
                             "supported: linear, quadratic, nn")
    if dkind != "sna":
        raise PotentialError(f"{where}: mliap descriptor {dkind!r} is not supported (sna)")
    folder = spec.folder or Path(".")
    mfile, dfile = _resolve(mname, folder, where), _resolve(dname, folder, where)
    if len(spec.coeffs) != 1:
        raise PotentialError(f"{where}: pair_style mliap needs exactly one pair_coeff line, got "
                             f"{len(spec.coeffs)}")
    cw, _, words = spec.coeffs[0]
    if len(words) < 3 or words[:2] != ["*", "*"]:
        raise PotentialError(f"{cw}: mliap needs 'pair_coeff * * El1 El2 ...'")
    return mliap_style(mfile, dfile, mkind, tuple(None if e == "NULL" else e for e in words[2:]),
                       ntypes=ntypes, where=cw)


def mliap_style(model_file, descriptor_file, kind: str, type_elements: Sequence[str | None],
                ntypes: int | None = None, where: str | None = None) -> MliapStyle:
    """A :class:`MliapStyle` from its model file (of ``kind`` linear, quadratic or nn), its
    ``descriptor sna`` file and the element of each LAMMPS type (None: NULL)."""
    model_file, descriptor_file = Path(model_file), Path(descriptor_file)
    where = where or str(model_file)
    params = read_mliap_descriptor(descriptor_file)
    elements = tuple(params["elements"])
    if ntypes is not None and len(type_elements) != ntypes:
        raise PotentialError(f"{where}: {len(type_elements)} element names for {ntypes} types")
    unknown = [e for e in type_elements if e is not None and e not in elements]
    if unknown:
        raise PotentialError(f"{where}: element {unknown[0]} is not in the descriptor file "
                             f"{descriptor_file.name} (elems {' '.join(elements)})")
    if all(e is None for e in type_elements):
        raise PotentialError(f"{where}: every type is NULL: mliap has nothing to compute")
    model = read_mliap_model(model_file, kind)
    try:
        desc = mliap_descriptor(params, quadratic=kind == "quadratic")
    except ValueError as exc:
        raise PotentialError(f"{descriptor_file}: {exc}") from None
    nd = int(desc.ncoeff)
    if model.nelements != len(elements):
        raise PotentialError(f"{model_file}: {model.nelements} element blocks, the descriptor "
                             f"file {descriptor_file.name} has {len(elements)} elements")
    if isinstance(model, MliapNN):
        if model.ndescriptors != nd:
            raise PotentialError(f"{model_file}: the network takes {model.ndescriptors} "
                                 f"descriptors, descriptor sna gives {nd} (twojmax "
                                 f"{params['twojmax']}{', chemflag' if params['chemflag'] else ''})")
    elif model.coefficients.shape[1] != 1 + int(desc.nvalues):
        raise PotentialError(f"{model_file}: {model.coefficients.shape[1]} parameters per "
                             f"element, a {kind} model of {nd} descriptors needs "
                             f"{1 + int(desc.nvalues)}")
    return MliapStyle(model_file, descriptor_file, tuple(type_elements), elements, params,
                      model, desc)


#: Parsers of the supported pair styles: ``parser(spec, ntypes, where, hybrid)`` returns a style
#: object (``cutoff``, ``evaluate(positions, cell, pbc, types, threads) -> (energies, forces,
#: virial)``) or None for a style without energy. ``ntypes`` is known (from the snap line) or None.
#: ``snap`` is parsed first, as it fixes the number of types and their elements.
STYLE_PARSERS: dict[str, Callable] = {
    "snap": _parse_snap, "zbl": _parse_zbl, "zero": _parse_zero, "mliap": _parse_mliap,
}
_SUPPORTED = ("snap, zbl, zero, mliap (model linear, quadratic or nn; descriptor sna) and "
              "hybrid/overlay or hybrid/scaled of them")
#: Styles whose pair_coeff line names the element of every type.
_ELEMENT_STYLES = ("snap", "mliap")
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
    for spec in specs:
        spec.folder = rd.style_folder
    order = sorted(specs, key=lambda s: s.name not in _ELEMENT_STYLES)
    ntypes = None
    terms: list[tuple[float, Any]] = []
    type_elements: list[str | None] | None = None
    for spec in order:
        style = STYLE_PARSERS[spec.name](spec, ntypes, where, hybrid)
        if style is None:
            continue
        if spec.name in _ELEMENT_STYLES:
            if type_elements is None:
                type_elements = list(style.type_elements)
            else:  # a second element style: its names fill the first one's NULL types
                clash = [t + 1 for t, (a, b) in enumerate(zip(type_elements, style.type_elements))
                         if a is not None and b is not None and a != b]
                if clash:
                    raise PotentialError(f"{where}: the pair_coeff lines name different elements "
                                         f"for type {clash[0]}")
                type_elements = [a if a is not None else b
                                 for a, b in zip(type_elements, style.type_elements)]
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
