"""The FitSNAP sections of the input file, registered through the ``mpisnap_settings_sections``
hook like any plugin's section (this module is one of :data:`mpisnap.plugin_manager.BUILTINS`).

Each parse function types and checks one section on its own (``parse(raw, ctx)``: the section's
raw strings and its :class:`~mpisnap.settings.parser.SectionContext`); the loader has checked the
keys against the record's ``keys`` first. What needs two sections — ``[ESHIFT]`` elements against
``[BISPECTRUM] type``, ``[GROUPS]`` against ``[PATH] groupFile``, a solver section against
``[SOLVER] solver`` — is checked by the loader (:mod:`mpisnap.settings.loader`).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NoReturn, Sequence

from ..hookspecs import hookimpl
from ..io import output_name_problem
from ..records import SettingsSection
from .parser import (FLOAT_RE, INT_RE, SectionContext, p_choice, p_flag, p_float, p_floats, p_int,
                     p_ints, p_str, p_word, p_words)
from .schema import (DEFAULT_GROUP_SECTIONS, GROUP_COLUMN_TYPES, GROUP_COLUMNS, ArdSettings,
                     BispectrumSettings, CalculatorSettings, ExtrasSettings, FrozenMap,
                     GroupOptions, GroupSpec, GroupsSettings, LassoSettings, MemorySettings,
                     OutfileSettings, PathSettings, PytorchSettings, ReferenceSettings,
                     RidgeSettings, ScraperSettings, SolverSettings)

Raw = Mapping[str, str]


def _fields(cls) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)


def _per_type(r: SectionContext, key: str, parse, default, ntypes: int) -> tuple:
    values = r.get(key, parse, None)
    if values is None:
        return (default,) * ntypes
    if len(values) == 1:
        return values * ntypes
    if len(values) != ntypes:
        r.fail(key, f"expected 1 or {ntypes} values (one per type), got {len(values)}: "
                    f"{r.raw[key].strip()!r}")
    return values


_BISPECTRUM_FLAGS = ("wselfallflag", "chemflag", "bnormflag", "bzeroflag", "quadraticflag",
                     "switchflag", "switchinnerflag", "bikflag", "dgradflag")
_BISPECTRUM_KEYS = ("numTypes", "type", "twojmax", "rcutfac", "rfac0", "rmin0", "wj", "radelem",
                    "sinner", "dinner") + _BISPECTRUM_FLAGS


def bispectrum(raw: Raw, r: SectionContext) -> BispectrumSettings:
    types = r.get("type", p_words, None)
    if types is None:
        r.fail("type", "required: the element symbols, one per type (e.g. 'type = In P')")
    dup = sorted({t for t in types if types.count(t) > 1})
    r.require("type", not dup, f"element listed twice: {' '.join(dup)}")
    ntypes = r.get("numTypes", p_int, None)
    if ntypes is None:
        ntypes = len(types)
    r.require("numTypes", ntypes >= 1, f"must be >= 1, got {ntypes}")
    r.require("type", len(types) == ntypes,
              f"lists {len(types)} element(s) ({' '.join(types)}) but numTypes = {ntypes}")
    twojmax = _per_type(r, "twojmax", p_ints, 6, ntypes)
    r.require("twojmax", min(twojmax) >= 0, f"must be >= 0, got {' '.join(map(str, twojmax))}")
    rcutfac = r.get("rcutfac", p_float, 4.67637)
    r.require("rcutfac", rcutfac > 0, f"must be > 0, got {rcutfac}")
    rfac0 = r.get("rfac0", p_float, 0.99363)
    r.require("rfac0", 0 < rfac0 < 1, f"must lie in (0, 1), got {rfac0}")
    rmin0 = r.get("rmin0", p_float, 0.0)
    r.require("rmin0", rmin0 >= 0, f"must be >= 0, got {rmin0}")
    wj = _per_type(r, "wj", p_floats, 1.0, ntypes)
    radelem = _per_type(r, "radelem", p_floats, 0.5, ntypes)
    r.require("radelem", min(radelem) > 0, f"must be > 0, got {' '.join(map(str, radelem))}")
    sinner = _per_type(r, "sinner", p_floats, 0.9, ntypes)
    dinner = _per_type(r, "dinner", p_floats, 0.1, ntypes)
    fl = {k: r.get(k, p_flag, 1 if k == "switchflag" else 0) for k in _BISPECTRUM_FLAGS}
    if fl["switchinnerflag"]:
        r.require("sinner", min(sinner) > 0, f"must be > 0, got {' '.join(map(str, sinner))}")
        r.require("dinner", min(dinner) > 0, f"must be > 0, got {' '.join(map(str, dinner))}")
    r.require("dgradflag", not (fl["dgradflag"] and not fl["bikflag"]),
              "dgradflag = 1 needs bikflag = 1")
    return BispectrumSettings(numTypes=ntypes, type=types, twojmax=twojmax, rcutfac=rcutfac,
                              rfac0=rfac0, rmin0=rmin0, wj=wj, radelem=radelem, sinner=sinner,
                              dinner=dinner, **fl)


_CALCULATOR_FLAGS = ("energy", "force", "stress", "per_atom_energy", "nonlinear")


def calculator(raw: Raw, r: SectionContext) -> CalculatorSettings:
    calc = r.get("calculator", p_word, "LAMMPSSNAP")
    model = r.get("model", p_word, "auto").lower()
    if calc.upper() not in ("LAMMPSSNAP", "SNAP"):
        r.fail("calculator", f"only the SNAP descriptor is supported (LAMMPSSNAP or SNAP), got {calc!r}")
    fl = {k: r.get(k, p_flag, 0 if k in ("per_atom_energy", "nonlinear") else 1)
          for k in _CALCULATOR_FLAGS}
    r.require("energy", fl["energy"] or fl["force"] or fl["stress"],
              "energy, force and stress are all 0: nothing to fit")
    return CalculatorSettings(calculator="LAMMPSSNAP", model=model, **fl)


def eshift(raw: Raw, r: SectionContext) -> FrozenMap:
    """Element -> shift as given; the loader checks the elements against ``[BISPECTRUM] type``
    and sets 0.0 for the others."""
    return FrozenMap({key: r.get(key, p_float, 0.0) for key in raw})


_SOLVER_KEYS = ("solver", "nsam", "cov_nugget", "mcmc_num", "mcmc_gamma", "merr_mult",
                "merr_method", "merr_cfs")


def solver(raw: Raw, r: SectionContext) -> SolverSettings:
    # Any solver plugin's name (validated against the installed plugins when fitting).
    name = r.get("solver", p_word, "SVD").upper()
    nsam = r.get("nsam", p_int, 0)
    r.require("nsam", nsam >= 0, f"must be >= 0, got {nsam}")
    cov_nugget = r.get("cov_nugget", p_float, 0.0)
    r.require("cov_nugget", cov_nugget >= 0, f"must be >= 0, got {cov_nugget}")
    mcmc_num = r.get("mcmc_num", p_int, 10000)
    r.require("mcmc_num", mcmc_num >= 1, f"must be >= 1, got {mcmc_num}")
    mcmc_gamma = r.get("mcmc_gamma", p_float, 0.01)
    r.require("mcmc_gamma", mcmc_gamma > 0, f"must be > 0, got {mcmc_gamma}")
    merr_mult = r.get("merr_mult", p_flag, 0)
    merr_method = r.get("merr_method", p_choice("abc", "iid", "full", upper=False), "abc")
    cfs: str | tuple[int, ...] = "all"
    if "merr_cfs" in raw and raw["merr_cfs"].strip().lower() != "all":
        cfs = r.get("merr_cfs", p_ints, "all")
        r.require("merr_cfs", min(cfs) >= 0,
                  f"coefficient indices must be >= 0, got {raw['merr_cfs']!r}")
    return SolverSettings(solver=name, nsam=nsam, cov_nugget=cov_nugget, mcmc_num=mcmc_num,
                          mcmc_gamma=mcmc_gamma, merr_mult=merr_mult, merr_method=merr_method,
                          merr_cfs=cfs)


def _nonneg(r: SectionContext, key: str, default: float) -> float:
    v = r.get(key, p_float, default)
    r.require(key, v >= 0, f"must be >= 0, got {v}")
    return v


def ridge(raw: Raw, r: SectionContext) -> RidgeSettings:
    return RidgeSettings(alpha=_nonneg(r, "alpha", 1e-8))


def lasso(raw: Raw, r: SectionContext) -> LassoSettings:
    max_iter = r.get("max_iter", p_int, 2000)
    r.require("max_iter", max_iter >= 1, f"must be >= 1, got {max_iter}")
    return LassoSettings(alpha=_nonneg(r, "alpha", 1e-8), max_iter=max_iter)


def ard(raw: Raw, r: SectionContext) -> ArdSettings:
    d = ArdSettings()
    return ArdSettings(**{k: _nonneg(r, k, getattr(d, k)) for k in _fields(ArdSettings)})


#: Activations the nn form trains with; LAMMPS ``model nn`` runs the first four.
PYTORCH_ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear", "softplus", "silu", "elu")


def pytorch(raw: Raw, r: SectionContext) -> PytorchSettings:
    d = PytorchSettings()
    layers: tuple = d.layer_sizes
    if "layer_sizes" in raw:
        layers = ()
        for tok in p_words(r, "layer_sizes", raw["layer_sizes"]):
            if tok == "num_desc":
                layers += (tok,)
            elif INT_RE.fullmatch(tok) and int(tok) > 0:
                layers += (int(tok),)
            else:
                r.fail("layer_sizes", f"expected positive integers or 'num_desc', got {tok!r}")
        r.require("layer_sizes", len(layers) >= 2 and layers[-1] == 1,
                  "needs the input size (num_desc), any hidden layer sizes and the output size "
                  f"1, e.g. 'num_desc 64 64 1'; got {raw['layer_sizes'].strip()!r}")
        r.require("layer_sizes", "num_desc" not in layers[1:],
                  "num_desc (the number of descriptors) can only be the first entry")

    def pos_int(key: str) -> int:
        v = r.get(key, p_int, getattr(d, key))
        r.require(key, v >= 1, f"must be >= 1, got {v}")
        return v

    def nonneg(key: str, default):
        v = r.get(key, p_float, default)
        r.require(key, v is None or (v >= 0 and math.isfinite(v)),
                  f"must be a finite number >= 0, got {v}")
        return v

    learning_rate = r.get("learning_rate", p_float, d.learning_rate)
    r.require("learning_rate", learning_rate > 0 and math.isfinite(learning_rate),
              f"must be > 0, got {learning_rate}")
    ew = nonneg("energy_weight", None)
    fw = nonneg("force_weight", None)
    r.require("energy_weight", (ew is None) == (fw is None),
              "energy_weight and force_weight must be given together")
    tf = r.get("training_fraction", p_float, None)
    r.require("training_fraction", tf is None or 0 < tf <= 1, f"must lie in (0, 1], got {tf}")
    meo = r.get("multi_element_option", p_int, 1)
    r.require("multi_element_option", meo in (1, 2),
              f"must be 1 (one shared network) or 2 (one per element), got {meo}")
    nel = r.get("num_elements", p_int, None)
    r.require("num_elements", nel is None or nel >= 1, f"must be >= 1, got {nel}")
    dtype = r.get("dtype_setting", p_int, None)
    r.require("dtype_setting", dtype in (None, 1, 2),
              f"must be 1 (float32) or 2 (float64), got {dtype}")
    vf = r.get("validation_fraction", p_float, 0.0)
    r.require("validation_fraction", 0 <= vf < 1, f"must lie in [0, 1), got {vf}")
    early = r.get("early_stopping", p_int, 0)
    r.require("early_stopping", early >= 0, f"must be >= 0 (epochs; 0: off), got {early}")
    r.require("early_stopping", early == 0 or vf > 0,
              "needs a validation set: set validation_fraction > 0")
    factor = r.get("scheduler_factor", p_float, d.scheduler_factor)
    r.require("scheduler_factor", 0 < factor < 1, f"must lie in (0, 1), got {factor}")
    seed = r.get("seed", p_int, 0)
    r.require("seed", seed >= 0, f"must be >= 0, got {seed}")
    return PytorchSettings(
        layer_sizes=layers, learning_rate=learning_rate, num_epochs=pos_int("num_epochs"),
        batch_size=pos_int("batch_size"), save_freq=pos_int("save_freq"), energy_weight=ew,
        force_weight=fw, training_fraction=tf, multi_element_option=meo, num_elements=nel,
        manual_seed_flag=r.get("manual_seed_flag", p_flag, 0),
        shuffle_flag=r.get("shuffle_flag", p_flag, 1),
        save_state_output=r.get("save_state_output", p_str, d.save_state_output),
        save_state_input=r.get("save_state_input", p_str, None),
        output_file=r.get("output_file", p_str, d.output_file),
        dtype_setting=dtype,
        activation=r.get("activation", p_choice(*PYTORCH_ACTIVATIONS, upper=False), "tanh"),
        optimizer=r.get("optimizer", p_choice("adam", "adamw", "sgd", upper=False), "adam"),
        weight_decay=nonneg("weight_decay", 0.0),
        scheduler=r.get("scheduler", p_choice("plateau", "cosine", "none", upper=False),
                        "plateau"),
        scheduler_patience=pos_int("scheduler_patience"), scheduler_factor=factor,
        stress_weight=nonneg("stress_weight", None), validation_fraction=vf,
        early_stopping=early, seed=seed, ensemble=pos_int("ensemble"),
        paired_batches=r.get("paired_batches", p_flag, d.paired_batches),
    )


def scraper(raw: Raw, r: SectionContext) -> ScraperSettings:
    # Any reader plugin name (JSON, XYZ, ASE or third-party), checked against the plugins when fitting.
    return ScraperSettings(scraper=r.get("scraper", p_word, "JSON").upper())


def path(raw: Raw, r: SectionContext) -> PathSettings:
    return PathSettings(dataPath=r.get("dataPath", p_str, "JSON"),
                        groupFile=r.get("groupFile", p_str, None))


def outfile(raw: Raw, r: SectionContext) -> OutfileSettings:
    d = OutfileSettings()
    vals = {k: r.get(k, p_str, getattr(d, k)) for k in _fields(OutfileSettings)}
    vals["output_style"] = r.get("output_style", p_choice("SNAP"), "SNAP")
    vals["metrics_style"] = r.get("metrics_style", p_choice("MD", "CSV", "SSV", "JSON"), "MD")
    for key in ("metrics", "potential", "descriptors", "truth", "weights", "dataframe"):
        problem = output_name_problem(vals[key])  # before any work: never write outside
        if problem:
            r.fail(key, f"{problem}, got {vals[key]!r}")
    return OutfileSettings(**vals)


def reference(raw: Raw, r: SectionContext) -> ReferenceSettings:
    coeffs = tuple(p_str(r, key, text) for key, text in raw.items() if key.startswith("pair_coeff"))
    units = r.get("units", p_word, "metal")
    r.require("units", units == "metal", f"only 'metal' units are supported, got {units!r}")
    pair_style = r.get("pair_style", p_str, None)
    r.require("pair_style", not (coeffs and pair_style is None),
              "pair_coeff lines given without a pair_style")
    return ReferenceSettings(units=units, atom_style=r.get("atom_style", p_word, "atomic"),
                             pair_style=pair_style, pair_coeffs=coeffs,
                             engine=r.get("engine", p_word, "auto").lower())


#: The option keys of ``[GROUPS]``; every other key is a group line.
GROUP_KEYS = ("group_sections", "group_types", "smartweights", "random_sampling", "random_seed")


def _group_options(r: SectionContext) -> GroupOptions:
    cols = r.get("group_sections", p_words, DEFAULT_GROUP_SECTIONS)
    r.require("group_sections", cols[0] == "name",
              f"must start with 'name', got {' '.join(cols)!r}")
    for c in cols:
        r.require("group_sections", c in GROUP_COLUMNS,
                  f"unknown column {c!r} (allowed: {' '.join(GROUP_COLUMNS)})")
        r.require("group_sections", cols.count(c) == 1, f"column {c!r} listed twice")
    types = r.get("group_types", p_words, None)
    if types is None:
        types = ("str",) + ("float",) * (len(cols) - 1)
    r.require("group_types", len(types) == len(cols),
              f"has {len(types)} entries but group_sections has {len(cols)}")
    for c, t in zip(cols, types):
        r.require("group_types", t in GROUP_COLUMN_TYPES,
                  f"unknown type {t!r} (allowed: {' '.join(GROUP_COLUMN_TYPES)})")
        r.require("group_types", (t == "str") == (c == "name"),
                  f"column {c!r} cannot have type {t!r}")
    seed = r.get("random_seed", p_int, 0)
    r.require("random_seed", seed >= 0, f"must be >= 0, got {seed}")
    return GroupOptions(group_sections=cols, group_types=types,
                        smartweights=r.get("smartweights", p_flag, 0),
                        random_sampling=r.get("random_sampling", p_flag, 0), random_seed=seed)


def group_line(fail: Callable[[str], NoReturn], name: str, tokens: Sequence[str],
               opts: GroupOptions, text: str) -> GroupSpec:
    """One group from its name and values (a ``[GROUPS]`` line or a group-file line)."""
    cols, types = opts.group_sections[1:], opts.group_types[1:]
    if not name or any(c.isspace() for c in name):
        fail(f"bad group name {name!r}")
    if len(tokens) != len(cols):
        fail(f"expected {len(cols)} values ({' '.join(cols)}), got {len(tokens)}: {text.strip()!r}")
    vals: dict[str, Any] = {}
    for c, t, tok in zip(cols, types, tokens):
        if t == "int":
            if not INT_RE.fullmatch(tok):
                fail(f"{c}: expected an integer, got {tok!r}")
            v = float(int(tok))
        else:
            if not FLOAT_RE.fullmatch(tok) or not math.isfinite(float(tok)):
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


def groups(raw: Raw, r: SectionContext) -> GroupsSettings:
    """The options and the group lines written in the section (the loader takes the groups from
    ``[PATH] groupFile`` instead when that is given)."""
    opts = _group_options(r)
    lines = tuple(group_line(lambda m, k=k: r.fail(k, m), k, v.split(), opts, v)
                  for k, v in raw.items() if k not in GROUP_KEYS)
    return GroupsSettings(opts, lines)


def extras(raw: Raw, r: SectionContext) -> ExtrasSettings:
    return ExtrasSettings(**{k: r.get(k, p_flag, 0) for k in _fields(ExtrasSettings)})


def memory(raw: Raw, r: SectionContext) -> MemorySettings:
    mem = r.get("memory", p_int, None)
    r.require("memory", mem is None or mem > 0, f"must be > 0 (bytes), got {mem}")
    return MemorySettings(memory=mem, override=r.get("override", p_flag, 0),
                          stream=r.get("stream", p_flag, 0))


#: The FitSNAP sections, in reading order (:data:`mpisnap.settings.schema.SECTION_ORDER`).
SECTIONS = (
    SettingsSection("BISPECTRUM", bispectrum, _BISPECTRUM_KEYS,
                    description="SNAP descriptor parameters (elements, twojmax, cutoffs, flags)"),
    SettingsSection("CALCULATOR", calculator, ("calculator", "model") + _CALCULATOR_FLAGS,
                    description="descriptor, fitted quantities and model form"),
    SettingsSection("ESHIFT", eshift, None,
                    description="energy shift per element (eV), subtracted from the truth"),
    SettingsSection("SOLVER", solver, _SOLVER_KEYS,
                    legacy=("compute_testerrs", "detailed_errors", "normalweight", "normweight",
                            "normratio"),
                    description="the solver plugin and its FitSNAP options"),
    SettingsSection("RIDGE", ridge, _fields(RidgeSettings), description="ridge penalty"),
    SettingsSection("LASSO", lasso, _fields(LassoSettings), description="lasso penalty"),
    SettingsSection("ARD", ard, _fields(ArdSettings),
                    description="automatic relevance determination hyper-priors"),
    SettingsSection("PYTORCH", pytorch, _fields(PytorchSettings),
                    description="neural-network model form and its training"),
    SettingsSection("SCRAPER", scraper, ("scraper",), description="the training-data reader"),
    SettingsSection("PATH", path, ("dataPath", "groupFile"),
                    description="training data folder and optional group file"),
    SettingsSection("OUTFILE", outfile, _fields(OutfileSettings), legacy=("detailed_errors",),
                    description="output file names (inside the output directory)"),
    SettingsSection("REFERENCE", reference, ("units", "atom_style", "pair_style", "engine",
                                             "pair_coeff*"),
                    description="reference potential subtracted from the training data"),
    SettingsSection("GROUPS", groups, None,
                    description="training groups: sizes of the split and weights"),
    SettingsSection("EXTRAS", extras, _fields(ExtrasSettings),
                    description="optional dumps of the design matrix, truth and weights"),
    SettingsSection("MEMORY", memory, ("memory", "override", "stream"),
                    description="memory limit and streaming mode"),
)


@hookimpl
def mpisnap_settings_sections():
    return list(SECTIONS)
