"""Raw input to raw strings, and raw strings to typed values.

Two layers, both free of any knowledge of particular sections:

* the raw input — :func:`read_ini` (a FitSNAP ``.in`` file), :func:`read_dict` (a dict of
  sections) and :func:`apply_overrides` (``"SECTION.key=value"``) all give
  ``{section: {key: string}}``, the one form every section is parsed from;
* the value parsers (:func:`p_int`, :func:`p_float`, :func:`p_flag`, :func:`p_str`,
  :func:`p_word`, :func:`p_words`, :func:`p_ints`, :func:`p_floats`, :func:`p_choice`) and
  :class:`SectionContext`, which a section's parse function receives: ``ctx.get(key, p_float,
  default)`` types one value, ``ctx.fail(key, problem)`` raises the one-line
  ``<file>: [SECTION] key: problem`` :class:`SettingsError`, ``ctx.notice(key, text)`` adds a
  line to ``Settings.notices``.

Only the standard library and numpy are imported.
"""
from __future__ import annotations

import ast
import configparser
import difflib
import math
import numbers
import re
from typing import Any, Callable, Iterable, Mapping, NoReturn, Sequence

import numpy as np

__all__ = [
    "InputContext", "SectionContext", "SettingsError", "apply_overrides", "hint", "read_dict",
    "read_ini", "p_choice", "p_flag", "p_float", "p_floats", "p_int", "p_ints", "p_str", "p_word",
    "p_words",
]

INT_RE = re.compile(r"[+-]?\d+")
FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A user error in the input settings; the message is one line naming file, section and key."""


class InputContext:
    """One input being read: its display name (the file's base name, or ``<dict>``), the notices
    gathered so far and which keys came from an override (named in their error messages)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.overridden: dict[tuple[str, str], str] = {}
        self.notices: list[str] = []

    def error(self, msg: str) -> NoReturn:
        raise SettingsError(f"{self.name}: {msg}")

    def fail(self, section: str, key: str | None, msg: str) -> NoReturn:
        where = f"[{section}]" if key is None else f"[{section}] {key}"
        origin = self.overridden.get((section, key)) if key is not None else None
        suffix = f" (from override {origin!r})" if origin is not None else ""
        self.error(f"{where}: {msg}{suffix}")

    def notice(self, section: str, key: str | None, msg: str) -> None:
        where = f"[{section}]" if key is None else f"[{section}] {key}"
        self.notices.append(f"{self.name}: {where}: {msg}")


def hint(word: str, choices: Iterable[str], case_note: str = "keys are case-sensitive") -> str:
    """`` (did you mean 'X'?)`` for the choice closest to ``word``, or ``""``."""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    if word.lower() in lower:
        return f" (did you mean {lower[word.lower()]!r}? {case_note})"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key_allowed(key: str, allowed: Sequence[str]) -> bool:
    return any(key == a or (a.endswith("*") and key.startswith(a[:-1])) for a in allowed)


class SectionContext:
    """Typed access to the raw strings of one section, and its errors and notices.

    ``raw`` holds the section's keys and values as strings (empty when the section is absent:
    ``present`` is then False).
    """

    def __init__(self, ctx: InputContext, section: str, raw: Mapping[str, str] | None) -> None:
        self.ctx, self.section = ctx, section
        self.raw: dict[str, str] = dict(raw or {})
        self.present = raw is not None

    @property
    def source(self) -> str:
        """The input's display name (file base name or ``<dict>``)."""
        return self.ctx.name

    def fail(self, key: str | None, msg: str) -> NoReturn:
        """Raise ``<file>: [SECTION] key: msg`` (``key`` None: ``<file>: [SECTION]: msg``)."""
        self.ctx.fail(self.section, key, msg)

    def notice(self, key: str | None, msg: str) -> None:
        """Add ``<file>: [SECTION] key: msg`` to the settings' notices (written to the log)."""
        self.ctx.notice(self.section, key, msg)

    def require(self, key: str, ok: Any, msg: str) -> None:
        """:meth:`fail` with ``msg`` unless ``ok``."""
        if not ok:
            self.fail(key, msg)

    def check_keys(self, allowed: Sequence[str], legacy: Sequence[str] = ()) -> None:
        """Every key is ``allowed`` (an entry ending in ``*`` allows any key with that prefix) or
        ``legacy`` (accepted with a notice); anything else is an "unknown key" error."""
        for key in self.raw:
            if key in legacy:
                self.notice(key, "legacy FitSNAP key, accepted and ignored")
            elif not _key_allowed(key, allowed):
                self.fail(key, "unknown key" + hint(key, [a.replace("*", "1") for a in allowed]))

    def get(self, key: str, parse: Callable[[SectionContext, str, str], Any], default: Any) -> Any:
        """``parse(self, key, raw[key])``, or ``default`` when the key is not given."""
        if key not in self.raw:
            return default
        return parse(self, key, self.raw[key])


# -- value parsers: parse(ctx, key, text) -> value, failing with a one-line message ---------------

def _one(r: SectionContext, key: str, text: str, what: str) -> str:
    toks = text.split()
    if len(toks) != 1:
        r.fail(key, f"expected {what}, got {text.strip()!r}")
    return toks[0]


def _to_int(r: SectionContext, key: str, tok: str) -> int:
    if not INT_RE.fullmatch(tok):
        r.fail(key, f"expected an integer, got {tok!r}")
    return int(tok)


def _to_float(r: SectionContext, key: str, tok: str) -> float:
    if not FLOAT_RE.fullmatch(tok):
        r.fail(key, f"expected a number, got {tok!r}")
    v = float(tok)
    if not math.isfinite(v):
        r.fail(key, f"expected a finite number, got {tok!r}")
    return v


def p_int(r: SectionContext, key: str, text: str) -> int:
    """One integer."""
    return _to_int(r, key, _one(r, key, text, "an integer"))


def p_float(r: SectionContext, key: str, text: str) -> float:
    """One finite number."""
    return _to_float(r, key, _one(r, key, text, "a number"))


def p_flag(r: SectionContext, key: str, text: str) -> int:
    """0 or 1 (``true``/``false``, ``yes``/``no``, ``on``/``off`` too), as an int."""
    tok = _one(r, key, text, "0 or 1")
    if tok.lower() in _TRUE:
        return 1
    if tok.lower() in _FALSE:
        return 0
    r.fail(key, f"expected 0 or 1, got {tok!r}")


def p_str(r: SectionContext, key: str, text: str) -> str:
    """A non-empty one-line string, stripped."""
    s = text.strip()
    if not s:
        r.fail(key, "expected a value, got ''")
    if "\n" in s:
        r.fail(key, f"expected a one-line value, got {s!r}")
    return s


def p_word(r: SectionContext, key: str, text: str) -> str:
    """One word (no spaces)."""
    return _one(r, key, text, "one word")


def p_words(r: SectionContext, key: str, text: str) -> tuple[str, ...]:
    """One or more words, as a tuple."""
    toks = tuple(text.split())
    if not toks:
        r.fail(key, "expected a list of words, got ''")
    return toks


def p_ints(r: SectionContext, key: str, text: str) -> tuple[int, ...]:
    """One or more integers, as a tuple."""
    toks = text.split()
    if not toks:
        r.fail(key, "expected an integer, got ''")
    return tuple(_to_int(r, key, t) for t in toks)


def p_floats(r: SectionContext, key: str, text: str) -> tuple[float, ...]:
    """One or more finite numbers, as a tuple."""
    toks = text.split()
    if not toks:
        r.fail(key, "expected a number, got ''")
    return tuple(_to_float(r, key, t) for t in toks)


def p_choice(*choices: str, upper: bool = True) -> Callable[[SectionContext, str, str], str]:
    """A parser of one of ``choices`` (case-insensitive; stored upper case, or as listed)."""
    def parse(r: SectionContext, key: str, text: str) -> str:
        tok = _one(r, key, text, "one of " + ", ".join(choices))
        for c in choices:
            if tok.upper() == c.upper():
                return c.upper() if upper else c
        r.fail(key, f"expected one of {', '.join(choices)}, got {tok!r}")
    return parse


# -- raw input: file, dict, overrides -------------------------------------------------------------

def read_ini(path: str, ctx: InputContext) -> dict[str, dict[str, str]]:
    """The sections of a FitSNAP ``.in`` file as ``{section: {key: string}}`` (file order)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        ctx.error(f"input file not found: {path}")
    except IsADirectoryError:
        ctx.error(f"input file is a directory: {path}")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.error(f"cannot read input file {path}: {exc}".replace("\n", " "))
    cp = configparser.ConfigParser(
        interpolation=None, inline_comment_prefixes=("#",), strict=True,
        default_section="\x00no-default-section", empty_lines_in_values=False,
    )
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(text, source=ctx.name)
    except configparser.MissingSectionHeaderError as exc:
        ctx.error(f"line {exc.lineno}: a key before any [SECTION] header: {exc.line.strip()!r}")
    except configparser.DuplicateSectionError as exc:
        ctx.error(f"line {exc.lineno}: [{exc.section}]: section given twice")
    except configparser.DuplicateOptionError as exc:
        ctx.error(f"line {exc.lineno}: [{exc.section}] {exc.option}: key given twice")
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        try:  # configparser stores repr(line) (Python <= 3.12)
            line = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            pass
        ctx.error(f"line {lineno}: cannot parse {str(line).strip()!r} (expected 'key = value')")
    except configparser.Error as exc:  # pragma: no cover - other configparser complaints
        ctx.error(" ".join(str(exc).split()))
    return {sec: {k: v for k, v in cp.items(sec, raw=True)} for sec in cp.sections()}


def _stringify(ctx: InputContext, section: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, (list, tuple)):
        parts = []
        for v in value:
            s = _stringify(ctx, section, key, v)
            if s is None or isinstance(v, (list, tuple, np.ndarray)):
                ctx.fail(section, key, f"expected a flat list of values, got {value!r}")
            parts.append(s)
        return " ".join(parts)
    ctx.fail(section, key, f"unsupported value {value!r} of type {type(value).__name__}")


def read_dict(source: Mapping, ctx: InputContext) -> dict[str, dict[str, str]]:
    """A dict of sections (typed Python values or strings; None = not given) as raw strings."""
    raw: dict[str, dict[str, str]] = {}
    for sec, body in source.items():
        if not isinstance(sec, str):
            ctx.error(f"section names must be strings, got {sec!r}")
        if not isinstance(body, Mapping):
            ctx.fail(sec, None, f"expected a mapping of keys to values, got {type(body).__name__}")
        raw[sec] = {}
        for key, value in body.items():
            if not isinstance(key, str) or not key.strip():
                ctx.fail(sec, None, f"keys must be non-empty strings, got {key!r}")
            s = _stringify(ctx, sec, key.strip(), value)
            if s is not None:
                raw[sec][key.strip()] = s
    return raw


def apply_overrides(raw: dict[str, dict[str, str]], overrides: Sequence[str] | str,
                    ctx: InputContext) -> None:
    """Replace or add raw strings from ``"SECTION.key=value"`` overrides (any section, any key:
    they are validated with the rest)."""
    if isinstance(overrides, str):
        overrides = (overrides,)
    for ov in overrides:
        if not isinstance(ov, str):
            ctx.error(f"override {ov!r}: expected a string SECTION.key=value")
        lhs, eq, value = ov.partition("=")
        section, dot, key = lhs.strip().partition(".")
        section, key = section.strip(), key.strip()
        if not eq or not dot or not section or not key or any(c.isspace() for c in section + key):
            ctx.error(f"override {ov!r}: expected SECTION.key=value (e.g. BISPECTRUM.twojmax=8)")
        raw.setdefault(section, {})[key] = value.strip()
        ctx.overridden[(section, key)] = ov
