"""The typed settings: one frozen record per section, and :class:`Settings`, which holds them.

Field names are the FitSNAP key names; the FitSNAP sections (:data:`BUILTIN_SECTIONS`) are also
lower-case attributes of :class:`Settings` (``settings.bispectrum``, ``settings.path``).
Every section, built-in or brought by a plugin, is read as ``settings.section("NAME")``.

Only the standard library is imported.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

__all__ = [
    "ArdSettings", "BispectrumSettings", "BUILTIN_SECTIONS", "CalculatorSettings",
    "ExtrasSettings", "FrozenMap", "GroupOptions", "GroupSpec", "GroupsSettings", "LassoSettings",
    "MemorySettings", "OutfileSettings", "PathSettings", "PytorchSettings", "ReferenceSettings",
    "RidgeSettings", "ScraperSettings", "SECTION_ORDER", "SOLVERS", "Settings", "SolverSettings",
]

SOLVERS = ("SVD", "RIDGE", "LASSO", "ARD", "ANL", "MCMC", "MERR", "PYTORCH", "SCALAPACK", "QR")
GROUP_COLUMNS = ("name", "training_size", "testing_size", "eweight", "fweight", "vweight")
GROUP_COLUMN_TYPES = ("str", "float", "int")
DEFAULT_GROUP_SECTIONS = GROUP_COLUMNS
DEFAULT_GROUP_TYPES = ("str", "float", "float", "float", "float", "float")
#: The FitSNAP sections, in the order they are read, and the :class:`Settings` attribute of each.
BUILTIN_SECTIONS = {
    "BISPECTRUM": "bispectrum", "CALCULATOR": "calculator", "ESHIFT": "eshift",
    "SOLVER": "solver", "RIDGE": "ridge", "LASSO": "lasso", "ARD": "ard", "PYTORCH": "pytorch",
    "SCRAPER": "scraper", "PATH": "path", "OUTFILE": "outfile", "REFERENCE": "reference",
    "GROUPS": "groups", "EXTRAS": "extras", "MEMORY": "memory",
}
SECTION_ORDER = tuple(BUILTIN_SECTIONS)
#: Solver sections: read always, used only when ``[SOLVER] solver`` names them.
SOLVER_SECTIONS = ("RIDGE", "LASSO", "ARD", "PYTORCH")


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
    """``[PYTORCH]`` (the ``nn`` model form); ``layer_sizes`` holds ``"num_desc"`` and/or ints;
    None = not given. FitSNAP's keys first, then mpisnap's extensions (documented defaults; see
    the README section on neural networks)."""

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
    #: 1 = float32, 2 = float64 (FitSNAP's codes; FitSNAP defaults to float32, mpisnap to
    #: float64: None = not given = float64).
    dtype_setting: int | None = None
    #: mpisnap extensions.
    activation: str = "tanh"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    scheduler: str = "plateau"
    scheduler_patience: int = 49
    scheduler_factor: float = 0.5
    stress_weight: float | None = None
    validation_fraction: float = 0.0
    early_stopping: int = 0
    seed: int = 0
    ensemble: int = 1
    #: batches from pairs of configurations of similar cost (even shares for 2 ranks)
    paired_batches: int = 1


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
class GroupsSettings:
    """``[GROUPS]`` as one record (``settings.section("GROUPS")``): the option keys and the
    groups (file order; from ``[PATH] groupFile`` when that is given)."""

    options: GroupOptions = GroupOptions()
    groups: tuple[GroupSpec, ...] = ()


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


def plain(record: Any) -> Any:
    """A section record as plain values (dict of lists, str, int, float, None) for ``to_dict``:
    a dataclass's fields, a mapping's items; tuples become lists."""
    if isinstance(record, Mapping):
        items = dict(record)
    elif dataclasses.is_dataclass(record) and not isinstance(record, type):
        items = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    else:
        return record
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items.items()}


@dataclass(frozen=True)
class Settings:
    """All input settings, typed and validated (see :mod:`mpisnap.settings`).

    The FitSNAP sections are attributes (``bispectrum`` … ``memory``; ``[GROUPS]`` is split into
    ``group_options`` and ``groups``); any section, including those brought by plugins, is
    :meth:`section`. ``extra_sections`` holds the parsed records of the sections that are not
    FitSNAP's (by name); ``unparsed_sections`` the raw strings of the sections of other verbs
    (e.g. ``[LEARN]`` when fitting), kept as given. Equality ignores source, base_dir, notices,
    sections and verb.
    """

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
    extra_sections: FrozenMap = field(default_factory=FrozenMap)
    unparsed_sections: FrozenMap = field(default_factory=FrozenMap)
    verb: str = field(default="fit", compare=False)

    def section(self, name: str) -> Any:
        """The frozen record of section ``name`` (e.g. ``"BISPECTRUM"``, or a plugin's section;
        defaults when the input did not have it). ``[GROUPS]`` is a :class:`GroupsSettings`,
        ``[ESHIFT]`` a :class:`FrozenMap` of element -> shift. A KeyError for a section no
        installed plugin knows, or one of another verb (not parsed for this one)."""
        if name == "GROUPS":
            return GroupsSettings(self.group_options, self.groups)
        attr = BUILTIN_SECTIONS.get(name)
        if attr is not None:
            return getattr(self, attr)
        if name in self.extra_sections:
            return self.extra_sections[name]
        if name in self.unparsed_sections:
            raise KeyError(f"[{name}] is a section of another verb; it was not parsed for "
                           f"{self.verb!r}")
        raise KeyError(f"unknown section [{name}]")

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

        JSON-serialisable (for plugin sections whose fields are plain values), and
        ``load_settings(s.to_dict())`` gives back an equal Settings (with the same sections
        installed). Solver sections are included when they were in the input or the solver uses
        them, plugin sections when they were in the input (a plugin section record is written as
        its dataclass fields), other verbs' sections as given.
        """
        d: dict[str, dict[str, Any]] = {
            "BISPECTRUM": plain(self.bispectrum),
            "CALCULATOR": plain(self.calculator),
            "ESHIFT": dict(self.eshift),
            "SOLVER": plain(self.solver),
        }
        for sec in SOLVER_SECTIONS:
            if sec in self.sections or self.solver.solver == sec:
                d[sec] = plain(getattr(self, BUILTIN_SECTIONS[sec]))
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
        for name, record in self.extra_sections.items():
            if name in self.sections:
                d[name] = plain(record)
        for name, raw in self.unparsed_sections.items():
            d[name] = dict(raw)
        return d
