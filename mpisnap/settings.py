"""Read a FitSNAP-style input (``*.in`` file or dict) into a frozen, typed, validated :class:`Settings`.

Usage::

    from mpisnap.settings import load_settings, SettingsError
    s = load_settings("InP-example.in", overrides=["BISPECTRUM.twojmax=8"])
    s.bispectrum.twojmax          # (8, 8): per-type keys are tuples of length numTypes
    s.groups[0].eweight           # groups in file order, as GroupSpec
    s.resolve(s.path.dataPath)    # relative paths are resolved against s.base_dir

Rules (see ``fitsnap-formats.md`` section 1):

* INI syntax read with :mod:`configparser`: ``#`` starts a comment (inline after whitespace),
  keys are case-sensitive, no interpolation, no ``[DEFAULT]`` magic, duplicate keys or sections
  are errors. Section names are in capitals.
* Field names are the FitSNAP key names (``settings.bispectrum.numTypes``,
  ``settings.path.dataPath``); sections map to lower-case attributes. Exceptions:
  ``[ESHIFT]`` is ``settings.eshift`` (element -> float, every element present, 0.0 where not
  given), ``[REFERENCE] pair_coeff*`` lines are ``settings.reference.pair_coeffs`` (file order)
  and ``[GROUPS]`` is split into ``settings.group_options`` (the option keys) and
  ``settings.groups`` (one :class:`GroupSpec` per group line, file order).
* Values are typed on reading: flags are ints 0/1 (``0``/``1``; ``true``/``false``, ``yes``/``no``,
  ``on``/``off`` are accepted too), per-type keys (``twojmax``, ``wj``, ``radelem``, ``sinner``,
  ``dinner``) take one value or numTypes values and are stored as tuples of length numTypes.
  Names that pick from a list (``solver``, ``scraper``, ``metrics_style``, ``output_style``) are
  matched case-insensitively and stored in upper case; ``calculator`` ``SNAP`` is stored as
  ``LAMMPSSNAP``.
* ``type`` is required; ``numTypes`` defaults to ``len(type)`` when not given (1 in the spec's
  table, which is the same thing for one element) and must equal it when given.
* Strict: an unknown section or key, a value of the wrong type, or inconsistent values raise
  :class:`SettingsError` (a :class:`ValueError`) with a one-line message
  ``<file name>: [SECTION] key: what is wrong`` (``<dict>`` for dict input). Legacy FitSNAP keys
  (``[SOLVER] compute_testerrs``, ``detailed_errors``, ``normalweight``/``normweight``,
  ``normratio``; ``[OUTFILE] detailed_errors``) are accepted and ignored, each adding a line to
  ``settings.notices``; so does a solver section ([RIDGE], [LASSO], [ARD], [PYTORCH]) that the
  chosen solver does not use.
* Overrides ``"SECTION.key=value"`` (command-line ``--set``) replace or add raw strings before
  typing, so they are validated like the file; they may add a key, a section or a group line.
* Group sizes: a value <= 1 is a fraction (stored as float), > 1 a count of configurations
  (stored as int; must be a whole number).

Only the standard library and numpy are imported.
"""
from __future__ import annotations

import ast
import configparser
import difflib
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, NoReturn, Sequence

import numpy as np

from .io import output_name_problem

__all__ = [
    "ArdSettings",
    "BispectrumSettings",
    "CalculatorSettings",
    "ExtrasSettings",
    "FrozenMap",
    "GroupOptions",
    "GroupSpec",
    "LassoSettings",
    "MemorySettings",
    "OutfileSettings",
    "PathSettings",
    "PytorchSettings",
    "ReferenceSettings",
    "RidgeSettings",
    "ScraperSettings",
    "Settings",
    "SettingsError",
    "SolverSettings",
    "SOLVERS",
    "load_settings",
]

SOLVERS = ("SVD", "RIDGE", "LASSO", "ARD", "ANL", "MCMC", "MERR", "PYTORCH", "SCALAPACK", "QR")
GROUP_COLUMNS = ("name", "training_size", "testing_size", "eweight", "fweight", "vweight")
GROUP_COLUMN_TYPES = ("str", "float", "int")
DEFAULT_GROUP_SECTIONS = GROUP_COLUMNS
DEFAULT_GROUP_TYPES = ("str", "float", "float", "float", "float", "float")
SECTION_ORDER = (
    "BISPECTRUM", "CALCULATOR", "ESHIFT", "SOLVER", "RIDGE", "LASSO", "ARD", "PYTORCH",
    "SCRAPER", "PATH", "OUTFILE", "REFERENCE", "GROUPS", "EXTRAS", "MEMORY",
)
_SOLVER_SECTIONS = {"RIDGE": "RIDGE", "LASSO": "LASSO", "ARD": "ARD", "PYTORCH": "PYTORCH"}


class SettingsError(ValueError):
    """A user error in the input settings; the message is one line naming file, section and key."""


class FrozenMap(Mapping):
    """A small immutable, hashable, picklable mapping (used for ``Settings.eshift``)."""

    def __init__(self, items: Mapping | Sequence = ()) -> None:
        self._d = dict(items)

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


# -- the typed sections ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BispectrumSettings:
    """``[BISPECTRUM]``: SNAP descriptor parameters (FitSNAP names).

    Defaults: twojmax 6, rcutfac 4.67637, rfac0 0.99363, rmin0 0.0, wj 1.0, radelem 0.5,
    switchflag 1, sinner 0.9, dinner 0.1, every other flag 0 (bzeroflag 0, as in FitSNAP).
    Per-type values are tuples of length numTypes.
    """

    numTypes: int
    type: tuple[str, ...]
    twojmax: tuple[int, ...]
    rcutfac: float
    rfac0: float
    rmin0: float
    wj: tuple[float, ...]
    radelem: tuple[float, ...]
    wselfallflag: int
    chemflag: int
    bnormflag: int
    bzeroflag: int
    quadraticflag: int
    switchflag: int
    switchinnerflag: int
    sinner: tuple[float, ...]
    dinner: tuple[float, ...]
    bikflag: int
    dgradflag: int

    def descriptor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`mpisnap.Descriptor` (all but bikflag/dgradflag)."""
        return dict(
            type=list(self.type), numTypes=self.numTypes, twojmax=list(self.twojmax),
            rcutfac=self.rcutfac, rfac0=self.rfac0, rmin0=self.rmin0, wj=list(self.wj),
            radelem=list(self.radelem), wselfallflag=self.wselfallflag, chemflag=self.chemflag,
            bnormflag=self.bnormflag, bzeroflag=self.bzeroflag, quadraticflag=self.quadraticflag,
            switchflag=self.switchflag, switchinnerflag=self.switchinnerflag,
            sinner=list(self.sinner), dinner=list(self.dinner),
        )


@dataclass(frozen=True)
class CalculatorSettings:
    """``[CALCULATOR]``; ``calculator`` is always ``"LAMMPSSNAP"`` (the SNAP descriptor)."""

    calculator: str = "LAMMPSSNAP"
    energy: int = 1
    force: int = 1
    stress: int = 1
    per_atom_energy: int = 0
    nonlinear: int = 0
    #: mpisnap extension: the model-form plugin ("auto": from the [BISPECTRUM] flags and
    #: ``nonlinear``: linear, quadratic, chemsnap or nn). Matched case-insensitively, lower case.
    model: str = "auto"


@dataclass(frozen=True)
class SolverSettings:
    """``[SOLVER]``; ``solver`` upper case: FitSNAP's names (:data:`SOLVERS`) or any solver
    plugin's name, checked against the installed plugins when fitting."""

    solver: str = "SVD"
    nsam: int = 0
    cov_nugget: float = 0.0
    mcmc_num: int = 10000
    mcmc_gamma: float = 0.01
    merr_mult: int = 0
    merr_method: str = "abc"
    merr_cfs: str | tuple[int, ...] = "all"


@dataclass(frozen=True)
class RidgeSettings:
    alpha: float = 1e-8


@dataclass(frozen=True)
class LassoSettings:
    alpha: float = 1e-8
    max_iter: int = 2000


@dataclass(frozen=True)
class ArdSettings:
    """``[ARD]`` hyper-priors (FitSNAP names and defaults)."""

    alphabig: float = 1e-12
    alphasmall: float = 1e-14
    lambdabig: float = 1e-6
    lambdasmall: float = 1e-6
    threshold_lambda: float = 1e5


@dataclass(frozen=True)
class PytorchSettings:
    """``[PYTORCH]``; ``layer_sizes`` holds ``"num_desc"`` and/or ints; None = not given."""

    layer_sizes: tuple[str | int, ...] = ("num_desc", 512, 512, 1)
    learning_rate: float = 1e-2
    num_epochs: int = 10
    batch_size: int = 4
    save_freq: int = 10
    energy_weight: float | None = None
    force_weight: float | None = None
    training_fraction: float | None = None
    multi_element_option: int = 1
    num_elements: int | None = None
    manual_seed_flag: int = 0
    shuffle_flag: int = 1
    save_state_output: str = "FitTorchModel"
    save_state_input: str | None = None
    output_file: str = "FitTorch_Pytorch.pt"


@dataclass(frozen=True)
class ScraperSettings:
    scraper: str = "JSON"


@dataclass(frozen=True)
class PathSettings:
    """``[PATH]``, as written (resolve with :meth:`Settings.resolve`)."""

    dataPath: str = "JSON"
    groupFile: str | None = None


@dataclass(frozen=True)
class OutfileSettings:
    """``[OUTFILE]`` names, as written; ``descriptors`` … ``dataframe`` go with ``[EXTRAS] dump_*``.
    Every name is relative to the output directory and must stay inside it (no absolute path,
    no ``..`` above it): anything else is a settings error."""

    output_style: str = "SNAP"
    metrics: str = "fitsnap_metrics"
    metrics_style: str = "MD"
    potential: str = "fitsnap_potential"
    descriptors: str = "Descriptors.npy"
    truth: str = "Truth-Ref.npy"
    weights: str = "Weights.npy"
    dataframe: str = "FitSNAP.df"


@dataclass(frozen=True)
class ReferenceSettings:
    """``[REFERENCE]``; ``pair_style`` None means no reference potential."""

    units: str = "metal"
    atom_style: str = "atomic"
    pair_style: str | None = None
    pair_coeffs: tuple[str, ...] = ()
    #: mpisnap extension: which reference-potential plugin evaluates the pair style ("auto":
    #: the first that accepts it, the built-in ZBL before LAMMPS). Lower case.
    engine: str = "auto"

    @property
    def active(self) -> bool:
        return self.pair_style is not None


@dataclass(frozen=True)
class GroupOptions:
    """``[GROUPS]`` option keys (the group lines are :attr:`Settings.groups`)."""

    group_sections: tuple[str, ...] = DEFAULT_GROUP_SECTIONS
    group_types: tuple[str, ...] = DEFAULT_GROUP_TYPES
    smartweights: int = 0
    random_sampling: int = 0
    random_seed: int = 0


@dataclass(frozen=True)
class GroupSpec:
    """One training group. Sizes: float <= 1 is a fraction, int > 1 a count of configurations."""

    name: str
    training_size: float | int = 1.0
    testing_size: float | int = 0.0
    eweight: float = 1.0
    fweight: float = 1.0
    vweight: float = 1.0


@dataclass(frozen=True)
class ExtrasSettings:
    dump_descriptors: int = 0
    dump_truth: int = 0
    dump_weights: int = 0
    dump_dataframe: int = 0
    only_test: int = 0
    apply_transpose: int = 0


@dataclass(frozen=True)
class MemorySettings:
    """``[MEMORY]``; ``memory`` in bytes, None = ask the system."""

    memory: int | None = None
    override: int = 0
    #: mpisnap extension: 1 = streaming mode. Rows are folded into the running QR factor as
    #: configurations are computed and then dropped, so memory per rank does not grow with the
    #: training set; the metrics come from a second descriptor pass.
    stream: int = 0


@dataclass(frozen=True)
class Settings:
    """All input settings, typed and validated. Equality ignores source, base_dir, notices, sections."""

    bispectrum: BispectrumSettings
    calculator: CalculatorSettings
    eshift: FrozenMap
    solver: SolverSettings
    ridge: RidgeSettings
    lasso: LassoSettings
    ard: ArdSettings
    pytorch: PytorchSettings
    scraper: ScraperSettings
    path: PathSettings
    outfile: OutfileSettings
    reference: ReferenceSettings
    group_options: GroupOptions
    groups: tuple[GroupSpec, ...]
    extras: ExtrasSettings
    memory: MemorySettings
    source: str = field(default="<dict>", compare=False)
    base_dir: str = field(default="", compare=False)
    notices: tuple[str, ...] = field(default=(), compare=False)
    sections: tuple[str, ...] = field(default=(), compare=False)

    def resolve(self, path: str | os.PathLike) -> str:
        """``path`` made absolute against :attr:`base_dir` (absolute paths are returned as they are)."""
        return os.path.normpath(os.path.join(self.base_dir, os.fspath(path)))

    @property
    def data_path(self) -> str:
        return self.resolve(self.path.dataPath)

    @property
    def group_file(self) -> str | None:
        return None if self.path.groupFile is None else self.resolve(self.path.groupFile)

    def group(self, name: str) -> GroupSpec:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain typed values (lists, str, int, float, None), in the input's section/key layout.

        JSON-serialisable, and ``load_settings(s.to_dict())`` gives back an equal Settings.
        Solver sections are included when they were in the input or the solver uses them.
        """
        def plain(obj) -> dict[str, Any]:
            out = {}
            for f in obj.__dataclass_fields__:
                v = getattr(obj, f)
                out[f] = list(v) if isinstance(v, tuple) else v
            return out

        d: dict[str, dict[str, Any]] = {
            "BISPECTRUM": plain(self.bispectrum),
            "CALCULATOR": plain(self.calculator),
            "ESHIFT": dict(self.eshift),
            "SOLVER": plain(self.solver),
        }
        for sec, attr in (("RIDGE", "ridge"), ("LASSO", "lasso"), ("ARD", "ard"), ("PYTORCH", "pytorch")):
            if sec in self.sections or self.solver.solver == sec:
                d[sec] = plain(getattr(self, attr))
        d["SCRAPER"] = plain(self.scraper)
        d["PATH"] = plain(self.path)
        d["OUTFILE"] = plain(self.outfile)
        ref = plain(self.reference)
        coeffs = ref.pop("pair_coeffs")
        ref.update({f"pair_coeff{i}": c for i, c in enumerate(coeffs, 1)})
        d["REFERENCE"] = ref
        groups = plain(self.group_options)
        if self.path.groupFile is None:
            cols = self.group_options.group_sections[1:]
            types = self.group_options.group_types[1:]
            for g in self.groups:
                groups[g.name] = [int(getattr(g, c)) if t == "int" else getattr(g, c)
                                  for c, t in zip(cols, types)]
        d["GROUPS"] = groups
        d["EXTRAS"] = plain(self.extras)
        d["MEMORY"] = plain(self.memory)
        return d


# -- parsing machinery ----------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Ctx:
    def __init__(self, name: str) -> None:
        self.name = name
        self.notices: list[str] = []
        self.overridden: dict[tuple[str, str], str] = {}

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


def _hint(word: str, choices: Sequence[str], case_note: str = "keys are case-sensitive") -> str:
    lower = {c.lower(): c for c in choices}
    if word.lower() in lower:
        return f" (did you mean {lower[word.lower()]!r}? {case_note})"
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Typed access to the raw strings of one section."""

    def __init__(self, ctx: _Ctx, section: str, raw: Mapping[str, str] | None) -> None:
        self.ctx, self.section = ctx, section
        self.raw: dict[str, str] = dict(raw or {})
        self.present = raw is not None

    def fail(self, key: str | None, msg: str) -> NoReturn:
        self.ctx.fail(self.section, key, msg)

    def check_keys(self, allowed: Sequence[str], legacy: Sequence[str] = ()) -> None:
        for key in self.raw:
            if key in legacy:
                self.ctx.notice(self.section, key, "legacy FitSNAP key, accepted and ignored")
            elif key not in allowed:
                self.fail(key, "unknown key" + _hint(key, allowed))

    def get(self, key: str, parse: Callable[[_Reader, str, str], Any], default: Any) -> Any:
        if key not in self.raw:
            return default
        return parse(self, key, self.raw[key])


def _one(r: _Reader, key: str, text: str, what: str) -> str:
    toks = text.split()
    if len(toks) != 1:
        r.fail(key, f"expected {what}, got {text.strip()!r}")
    return toks[0]


def _to_int(r: _Reader, key: str, tok: str) -> int:
    if not _INT_RE.fullmatch(tok):
        r.fail(key, f"expected an integer, got {tok!r}")
    return int(tok)


def _to_float(r: _Reader, key: str, tok: str) -> float:
    if not _FLOAT_RE.fullmatch(tok):
        r.fail(key, f"expected a number, got {tok!r}")
    v = float(tok)
    if not math.isfinite(v):
        r.fail(key, f"expected a finite number, got {tok!r}")
    return v


def p_int(r: _Reader, key: str, text: str) -> int:
    return _to_int(r, key, _one(r, key, text, "an integer"))


def p_float(r: _Reader, key: str, text: str) -> float:
    return _to_float(r, key, _one(r, key, text, "a number"))


def p_flag(r: _Reader, key: str, text: str) -> int:
    tok = _one(r, key, text, "0 or 1")
    if tok.lower() in _TRUE:
        return 1
    if tok.lower() in _FALSE:
        return 0
    r.fail(key, f"expected 0 or 1, got {tok!r}")


def p_str(r: _Reader, key: str, text: str) -> str:
    s = text.strip()
    if not s:
        r.fail(key, "expected a value, got ''")
    if "\n" in s:
        r.fail(key, f"expected a one-line value, got {s!r}")
    return s


def p_word(r: _Reader, key: str, text: str) -> str:
    return _one(r, key, text, "one word")


def p_words(r: _Reader, key: str, text: str) -> tuple[str, ...]:
    toks = tuple(text.split())
    if not toks:
        r.fail(key, "expected a list of words, got ''")
    return toks


def p_ints(r: _Reader, key: str, text: str) -> tuple[int, ...]:
    toks = text.split()
    if not toks:
        r.fail(key, "expected an integer, got ''")
    return tuple(_to_int(r, key, t) for t in toks)


def p_floats(r: _Reader, key: str, text: str) -> tuple[float, ...]:
    toks = text.split()
    if not toks:
        r.fail(key, "expected a number, got ''")
    return tuple(_to_float(r, key, t) for t in toks)


def p_choice(*choices: str, upper: bool = True) -> Callable[[_Reader, str, str], str]:
    def parse(r: _Reader, key: str, text: str) -> str:
        tok = _one(r, key, text, "one of " + ", ".join(choices))
        for c in choices:
            if tok.upper() == c.upper():
                return c.upper() if upper else c
        r.fail(key, f"expected one of {', '.join(choices)}, got {tok!r}")
    return parse


def _require(r: _Reader, key: str, ok: bool, msg: str) -> None:
    if not ok:
        r.fail(key, msg)


# -- raw input: file, dict, overrides -------------------------------------------------------------

def _read_file(path: str, ctx: _Ctx) -> dict[str, dict[str, str]]:
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


def _stringify(ctx: _Ctx, section: str, key: str, value: Any) -> str | None:
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


def _from_dict(source: Mapping, ctx: _Ctx) -> dict[str, dict[str, str]]:
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


def _apply_overrides(raw: dict[str, dict[str, str]], overrides: Sequence[str], ctx: _Ctx) -> None:
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


# -- section builders -----------------------------------------------------------------------------

def _per_type(r: _Reader, key: str, parse, default, ntypes: int) -> tuple:
    values = r.get(key, parse, None)
    if values is None:
        return (default,) * ntypes
    if len(values) == 1:
        return values * ntypes
    if len(values) != ntypes:
        r.fail(key, f"expected 1 or {ntypes} values (one per type), got {len(values)}: "
                    f"{r.raw[key].strip()!r}")
    return values


def _bispectrum(r: _Reader) -> BispectrumSettings:
    flags = ("wselfallflag", "chemflag", "bnormflag", "bzeroflag", "quadraticflag", "switchflag",
             "switchinnerflag", "bikflag", "dgradflag")
    allowed = ("numTypes", "type", "twojmax", "rcutfac", "rfac0", "rmin0", "wj", "radelem",
               "sinner", "dinner") + flags
    r.check_keys(allowed)
    types = r.get("type", p_words, None)
    if types is None:
        r.fail("type", "required: the element symbols, one per type (e.g. 'type = In P')")
    dup = sorted({t for t in types if types.count(t) > 1})
    _require(r, "type", not dup, f"element listed twice: {' '.join(dup)}")
    ntypes = r.get("numTypes", p_int, None)
    if ntypes is None:
        ntypes = len(types)
    _require(r, "numTypes", ntypes >= 1, f"must be >= 1, got {ntypes}")
    _require(r, "type", len(types) == ntypes,
             f"lists {len(types)} element(s) ({' '.join(types)}) but numTypes = {ntypes}")
    twojmax = _per_type(r, "twojmax", p_ints, 6, ntypes)
    _require(r, "twojmax", min(twojmax) >= 0, f"must be >= 0, got {' '.join(map(str, twojmax))}")
    rcutfac = r.get("rcutfac", p_float, 4.67637)
    _require(r, "rcutfac", rcutfac > 0, f"must be > 0, got {rcutfac}")
    rfac0 = r.get("rfac0", p_float, 0.99363)
    _require(r, "rfac0", 0 < rfac0 < 1, f"must lie in (0, 1), got {rfac0}")
    rmin0 = r.get("rmin0", p_float, 0.0)
    _require(r, "rmin0", rmin0 >= 0, f"must be >= 0, got {rmin0}")
    wj = _per_type(r, "wj", p_floats, 1.0, ntypes)
    radelem = _per_type(r, "radelem", p_floats, 0.5, ntypes)
    _require(r, "radelem", min(radelem) > 0, f"must be > 0, got {' '.join(map(str, radelem))}")
    sinner = _per_type(r, "sinner", p_floats, 0.9, ntypes)
    dinner = _per_type(r, "dinner", p_floats, 0.1, ntypes)
    fl = {k: r.get(k, p_flag, 1 if k == "switchflag" else 0) for k in flags}
    if fl["switchinnerflag"]:
        _require(r, "sinner", min(sinner) > 0, f"must be > 0, got {' '.join(map(str, sinner))}")
        _require(r, "dinner", min(dinner) > 0, f"must be > 0, got {' '.join(map(str, dinner))}")
    _require(r, "dgradflag", not (fl["dgradflag"] and not fl["bikflag"]),
             "dgradflag = 1 needs bikflag = 1")
    return BispectrumSettings(numTypes=ntypes, type=types, twojmax=twojmax, rcutfac=rcutfac,
                              rfac0=rfac0, rmin0=rmin0, wj=wj, radelem=radelem, sinner=sinner,
                              dinner=dinner, **fl)


def _calculator(r: _Reader) -> CalculatorSettings:
    flags = ("energy", "force", "stress", "per_atom_energy", "nonlinear")
    r.check_keys(("calculator", "model") + flags)
    calc = r.get("calculator", p_word, "LAMMPSSNAP")
    model = r.get("model", p_word, "auto").lower()
    if calc.upper() not in ("LAMMPSSNAP", "SNAP"):
        r.fail("calculator", f"only the SNAP descriptor is supported (LAMMPSSNAP or SNAP), got {calc!r}")
    fl = {k: r.get(k, p_flag, 0 if k in ("per_atom_energy", "nonlinear") else 1) for k in flags}
    _require(r, "energy", fl["energy"] or fl["force"] or fl["stress"],
             "energy, force and stress are all 0: nothing to fit")
    return CalculatorSettings(calculator="LAMMPSSNAP", model=model, **fl)


def _eshift(r: _Reader, types: tuple[str, ...]) -> FrozenMap:
    out = {t: 0.0 for t in types}
    for key in r.raw:
        if key not in types:
            r.fail(key, f"not an element of [BISPECTRUM] type ({' '.join(types)})" + _hint(key, types))
        out[key] = r.get(key, p_float, 0.0)
    return FrozenMap(out)


def _solver(r: _Reader) -> SolverSettings:
    r.check_keys(("solver", "nsam", "cov_nugget", "mcmc_num", "mcmc_gamma", "merr_mult",
                  "merr_method", "merr_cfs"),
                 legacy=("compute_testerrs", "detailed_errors", "normalweight", "normweight",
                         "normratio"))
    # Any solver plugin's name (validated against the installed plugins when fitting).
    solver = r.get("solver", p_word, "SVD").upper()
    nsam = r.get("nsam", p_int, 0)
    _require(r, "nsam", nsam >= 0, f"must be >= 0, got {nsam}")
    cov_nugget = r.get("cov_nugget", p_float, 0.0)
    _require(r, "cov_nugget", cov_nugget >= 0, f"must be >= 0, got {cov_nugget}")
    mcmc_num = r.get("mcmc_num", p_int, 10000)
    _require(r, "mcmc_num", mcmc_num >= 1, f"must be >= 1, got {mcmc_num}")
    mcmc_gamma = r.get("mcmc_gamma", p_float, 0.01)
    _require(r, "mcmc_gamma", mcmc_gamma > 0, f"must be > 0, got {mcmc_gamma}")
    merr_mult = r.get("merr_mult", p_flag, 0)
    merr_method = r.get("merr_method", p_choice("abc", "iid", "full", upper=False), "abc")
    cfs: str | tuple[int, ...] = "all"
    if "merr_cfs" in r.raw and r.raw["merr_cfs"].strip().lower() != "all":
        cfs = r.get("merr_cfs", p_ints, "all")
        _require(r, "merr_cfs", min(cfs) >= 0, f"coefficient indices must be >= 0, got {r.raw['merr_cfs']!r}")
    return SolverSettings(solver=solver, nsam=nsam, cov_nugget=cov_nugget, mcmc_num=mcmc_num,
                          mcmc_gamma=mcmc_gamma, merr_mult=merr_mult, merr_method=merr_method,
                          merr_cfs=cfs)


def _nonneg(r: _Reader, key: str, default: float) -> float:
    v = r.get(key, p_float, default)
    _require(r, key, v >= 0, f"must be >= 0, got {v}")
    return v


def _ridge(r: _Reader) -> RidgeSettings:
    r.check_keys(("alpha",))
    return RidgeSettings(alpha=_nonneg(r, "alpha", 1e-8))


def _lasso(r: _Reader) -> LassoSettings:
    r.check_keys(("alpha", "max_iter"))
    max_iter = r.get("max_iter", p_int, 2000)
    _require(r, "max_iter", max_iter >= 1, f"must be >= 1, got {max_iter}")
    return LassoSettings(alpha=_nonneg(r, "alpha", 1e-8), max_iter=max_iter)


def _ard(r: _Reader) -> ArdSettings:
    keys = ("alphabig", "alphasmall", "lambdabig", "lambdasmall", "threshold_lambda")
    r.check_keys(keys)
    d = ArdSettings()
    return ArdSettings(**{k: _nonneg(r, k, getattr(d, k)) for k in keys})


def _pytorch(r: _Reader) -> PytorchSettings:
    r.check_keys(tuple(PytorchSettings.__dataclass_fields__))
    d = PytorchSettings()
    layers: tuple = d.layer_sizes
    if "layer_sizes" in r.raw:
        layers = ()
        for tok in p_words(r, "layer_sizes", r.raw["layer_sizes"]):
            if tok == "num_desc":
                layers += (tok,)
            elif _INT_RE.fullmatch(tok) and int(tok) > 0:
                layers += (int(tok),)
            else:
                r.fail("layer_sizes", f"expected positive integers or 'num_desc', got {tok!r}")

    def pos_int(key: str) -> int:
        v = r.get(key, p_int, getattr(d, key))
        _require(r, key, v >= 1, f"must be >= 1, got {v}")
        return v

    learning_rate = r.get("learning_rate", p_float, d.learning_rate)
    _require(r, "learning_rate", learning_rate > 0, f"must be > 0, got {learning_rate}")
    ew = r.get("energy_weight", p_float, None)
    fw = r.get("force_weight", p_float, None)
    _require(r, "energy_weight", (ew is None) == (fw is None),
             "energy_weight and force_weight must be given together")
    for key, v in (("energy_weight", ew), ("force_weight", fw)):
        _require(r, key, v is None or v >= 0, f"must be >= 0, got {v}")
    tf = r.get("training_fraction", p_float, None)
    _require(r, "training_fraction", tf is None or 0 < tf <= 1, f"must lie in (0, 1], got {tf}")
    meo = r.get("multi_element_option", p_int, 1)
    _require(r, "multi_element_option", meo in (1, 2),
             f"must be 1 (one shared network) or 2 (one per element), got {meo}")
    nel = r.get("num_elements", p_int, None)
    _require(r, "num_elements", nel is None or nel >= 1, f"must be >= 1, got {nel}")
    return PytorchSettings(
        layer_sizes=layers, learning_rate=learning_rate, num_epochs=pos_int("num_epochs"),
        batch_size=pos_int("batch_size"), save_freq=pos_int("save_freq"), energy_weight=ew,
        force_weight=fw, training_fraction=tf, multi_element_option=meo, num_elements=nel,
        manual_seed_flag=r.get("manual_seed_flag", p_flag, 0),
        shuffle_flag=r.get("shuffle_flag", p_flag, 1),
        save_state_output=r.get("save_state_output", p_str, d.save_state_output),
        save_state_input=r.get("save_state_input", p_str, None),
        output_file=r.get("output_file", p_str, d.output_file),
    )


def _scraper(r: _Reader) -> ScraperSettings:
    r.check_keys(("scraper",))
    # Any reader plugin name (JSON, XYZ, ASE or third-party), checked against the plugins when fitting.
    return ScraperSettings(scraper=r.get("scraper", p_word, "JSON").upper())


def _path(r: _Reader) -> PathSettings:
    r.check_keys(("dataPath", "groupFile"))
    return PathSettings(dataPath=r.get("dataPath", p_str, "JSON"),
                        groupFile=r.get("groupFile", p_str, None))


def _outfile(r: _Reader) -> OutfileSettings:
    keys = tuple(OutfileSettings.__dataclass_fields__)
    r.check_keys(keys, legacy=("detailed_errors",))
    d = OutfileSettings()
    vals = {k: r.get(k, p_str, getattr(d, k)) for k in keys}
    vals["output_style"] = r.get("output_style", p_choice("SNAP"), "SNAP")
    vals["metrics_style"] = r.get("metrics_style", p_choice("MD", "CSV", "SSV", "JSON"), "MD")
    for key in ("metrics", "potential", "descriptors", "truth", "weights", "dataframe"):
        problem = output_name_problem(vals[key])  # before any work: never write outside
        if problem:
            r.fail(key, f"{problem}, got {vals[key]!r}")
    return OutfileSettings(**vals)


def _reference(r: _Reader) -> ReferenceSettings:
    allowed = ("units", "atom_style", "pair_style", "engine")
    coeffs = []
    for key, text in r.raw.items():
        if key.startswith("pair_coeff"):
            coeffs.append(p_str(r, key, text))
        elif key not in allowed:
            r.fail(key, "unknown key" + _hint(key, allowed + ("pair_coeff1",)))
    units = r.get("units", p_word, "metal")
    _require(r, "units", units == "metal", f"only 'metal' units are supported, got {units!r}")
    pair_style = r.get("pair_style", p_str, None)
    _require(r, "pair_style", not (coeffs and pair_style is None),
             "pair_coeff lines given without a pair_style")
    return ReferenceSettings(units=units, atom_style=r.get("atom_style", p_word, "atomic"),
                             pair_style=pair_style, pair_coeffs=tuple(coeffs),
                             engine=r.get("engine", p_word, "auto").lower())


_GROUP_KEYS = ("group_sections", "group_types", "smartweights", "random_sampling", "random_seed")


def _group_options(r: _Reader) -> GroupOptions:
    cols = r.get("group_sections", p_words, DEFAULT_GROUP_SECTIONS)
    _require(r, "group_sections", cols[0] == "name",
             f"must start with 'name', got {' '.join(cols)!r}")
    for c in cols:
        _require(r, "group_sections", c in GROUP_COLUMNS,
                 f"unknown column {c!r} (allowed: {' '.join(GROUP_COLUMNS)})")
        _require(r, "group_sections", cols.count(c) == 1, f"column {c!r} listed twice")
    types = r.get("group_types", p_words, None)
    if types is None:
        types = ("str",) + ("float",) * (len(cols) - 1)
    _require(r, "group_types", len(types) == len(cols),
             f"has {len(types)} entries but group_sections has {len(cols)}")
    for c, t in zip(cols, types):
        _require(r, "group_types", t in GROUP_COLUMN_TYPES,
                 f"unknown type {t!r} (allowed: {' '.join(GROUP_COLUMN_TYPES)})")
        _require(r, "group_types", (t == "str") == (c == "name"),
                 f"column {c!r} cannot have type {t!r}")
    seed = r.get("random_seed", p_int, 0)
    _require(r, "random_seed", seed >= 0, f"must be >= 0, got {seed}")
    return GroupOptions(group_sections=cols, group_types=types,
                        smartweights=r.get("smartweights", p_flag, 0),
                        random_sampling=r.get("random_sampling", p_flag, 0), random_seed=seed)


def _group(fail: Callable[[str], NoReturn], name: str, tokens: Sequence[str], opts: GroupOptions,
           text: str) -> GroupSpec:
    cols, types = opts.group_sections[1:], opts.group_types[1:]
    if not name or any(c.isspace() for c in name):
        fail(f"bad group name {name!r}")
    if len(tokens) != len(cols):
        fail(f"expected {len(cols)} values ({' '.join(cols)}), got {len(tokens)}: {text.strip()!r}")
    vals: dict[str, Any] = {}
    for c, t, tok in zip(cols, types, tokens):
        if t == "int":
            if not _INT_RE.fullmatch(tok):
                fail(f"{c}: expected an integer, got {tok!r}")
            v = float(int(tok))
        else:
            if not _FLOAT_RE.fullmatch(tok) or not math.isfinite(float(tok)):
                fail(f"{c}: expected a finite number, got {tok!r}")
            v = float(tok)
        if v < 0:
            fail(f"{c}: must be >= 0, got {tok!r}")
        if c.endswith("_size"):
            if v > 1:
                if v != int(v):
                    fail(f"{c}: a size > 1 is a count of configurations and must be whole, got {tok!r}")
                v = int(v)
        vals[c] = v
    g = GroupSpec(name=name, **vals)
    tr, te = g.training_size, g.testing_size
    if isinstance(tr, float) and isinstance(te, float) and tr + te > 1 + 1e-12:
        fail(f"training_size + testing_size = {tr} + {te} > 1")
    return g


def _groups(r: _Reader, opts: GroupOptions, path: PathSettings, base_dir: str,
            ctx: _Ctx) -> tuple[GroupSpec, ...]:
    lines = {k: v for k, v in r.raw.items() if k not in _GROUP_KEYS}
    if path.groupFile is None:
        return tuple(_group(lambda m, k=k: r.fail(k, m), k, v.split(), opts, v)
                     for k, v in lines.items())
    if lines:
        r.fail(next(iter(lines)), "group lines and [PATH] groupFile both given; use one of them")
    fname = os.path.join(base_dir, path.groupFile)
    try:
        with open(fname, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail("PATH", "groupFile", f"cannot read {fname}: {exc.__class__.__name__}")
    out: list[GroupSpec] = []
    for n, line in enumerate(text.splitlines(), 1):
        toks = line.split("#", 1)[0].split()
        if not toks:
            continue

        def fail(m: str, n: int = n) -> NoReturn:
            ctx.fail("PATH", "groupFile", f"{path.groupFile} line {n}: {m}")
        if any(g.name == toks[0] for g in out):
            fail(f"group {toks[0]!r} listed twice")
        out.append(_group(fail, toks[0], toks[1:], opts, line))
    return tuple(out)


def _extras(r: _Reader) -> ExtrasSettings:
    keys = tuple(ExtrasSettings.__dataclass_fields__)
    r.check_keys(keys)
    return ExtrasSettings(**{k: r.get(k, p_flag, 0) for k in keys})


def _memory(r: _Reader) -> MemorySettings:
    r.check_keys(("memory", "override", "stream"))
    mem = r.get("memory", p_int, None)
    _require(r, "memory", mem is None or mem > 0, f"must be > 0 (bytes), got {mem}")
    return MemorySettings(memory=mem, override=r.get("override", p_flag, 0),
                          stream=r.get("stream", p_flag, 0))


# -- entry point ----------------------------------------------------------------------------------

def load_settings(source: str | os.PathLike | Mapping[str, Mapping[str, Any]],
                  overrides: Sequence[str] = (), base_dir: str | os.PathLike | None = None) -> Settings:
    """Read, type and validate settings from a FitSNAP ``.in`` file or a dict of sections.

    ``overrides`` are ``"SECTION.key=value"`` strings applied to the raw text before typing.
    ``base_dir`` (default: the input file's folder, or the current directory for a dict) is
    where relative paths are resolved. Raises :class:`SettingsError` on any user error.
    """
    if isinstance(source, Mapping):
        ctx = _Ctx("<dict>")
        raw = _from_dict(source, ctx)
        src = "<dict>"
        base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.getcwd()
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        ctx = _Ctx(os.path.basename(path) or path)
        raw = _read_file(path, ctx)
        src = os.path.abspath(path)
        base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.path.dirname(src)
    else:
        raise SettingsError(f"<input>: expected a path or a dict of sections, got {type(source).__name__}")
    _apply_overrides(raw, overrides, ctx)

    for sec in raw:
        if sec not in SECTION_ORDER:
            ctx.fail(sec, None, "unknown section"
                     + _hint(sec, SECTION_ORDER, "section names are in capitals"))

    def reader(sec: str) -> _Reader:
        return _Reader(ctx, sec, raw.get(sec))

    bisp = _bispectrum(reader("BISPECTRUM"))
    calc = _calculator(reader("CALCULATOR"))
    eshift = _eshift(reader("ESHIFT"), bisp.type)
    solver = _solver(reader("SOLVER"))
    solver_sections = {}
    for sec, build in (("RIDGE", _ridge), ("LASSO", _lasso), ("ARD", _ard), ("PYTORCH", _pytorch)):
        r = reader(sec)
        solver_sections[sec] = build(r)
        if r.present and solver.solver != sec:
            ctx.notice(sec, None, f"section ignored: [SOLVER] solver is {solver.solver}")
    scraper = _scraper(reader("SCRAPER"))
    path = _path(reader("PATH"))
    outfile = _outfile(reader("OUTFILE"))
    reference = _reference(reader("REFERENCE"))
    gr = reader("GROUPS")
    opts = _group_options(gr)
    groups = _groups(gr, opts, path, base, ctx)
    extras = _extras(reader("EXTRAS"))
    memory = _memory(reader("MEMORY"))
    return Settings(
        bispectrum=bisp, calculator=calc, eshift=eshift, solver=solver,
        ridge=solver_sections["RIDGE"], lasso=solver_sections["LASSO"], ard=solver_sections["ARD"],
        pytorch=solver_sections["PYTORCH"], scraper=scraper, path=path, outfile=outfile,
        reference=reference, group_options=opts, groups=groups, extras=extras, memory=memory,
        source=src, base_dir=base, notices=tuple(ctx.notices), sections=tuple(raw),
    )
