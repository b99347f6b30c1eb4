"""The ``[LEARN]`` section of ``mpisnap learn`` (active learning, :mod:`mpisnap.learning`), brought
by this built-in plugin through the ``mpisnap_settings_sections`` hook like any plugin's section.
Its verb is ``learn``: the other commands (``fit`` …) accept the section and ignore it, so one
input file serves both. The rest of the input file is the starting fit: its ``[PATH]``/``[GROUPS]``
data is the starting training set (it may be a handful of structures).

Keys (names fixed, so scripts can rely on them; defaults in parentheses; paths are resolved
against the input file's folder)::

    [LEARN]
    # candidates: a pool, MD exploration with the current potential, or both
    pool = pool.extxyz          # (none) folder or file of unlabelled structures: any format
                                #   ase.io.read reads (all frames), or FitSNAP JSON (*.json)
    md_start = bulk.extxyz      # (none) folder or file of structures to start MD from
    md_temperatures = 800 1600  # (300) K; one trajectory per start and temperature per round
    md_steps = 200              # (200) Langevin steps per trajectory per round
    md_interval = 20            # (20) steps between frames kept as candidates
    md_timestep = 2.0           # (2.0) fs
    md_friction = 0.02          # (0.02) Langevin friction, 1/fs
    md_max_std = 5.0            # (none) eV/Å: a trajectory ends at a frame whose largest
                                #   calibrated force σ exceeds this (it is still a candidate)
    # the oracle (labels new structures)
    oracle = ase.calculators.emt:EMT   # required: module:Class of an ASE calculator, or lammps
    oracle_args = {}            # ({}) one-line JSON object: the calculator's keyword arguments
    oracle_pair_style = eam/alloy      # (none) with oracle = lammps: the pair style ...
    oracle_pair_coeff = * * Cu.eam.alloy Cu   # ... and its pair_coeff line (or give both in
                                #   oracle_args: {"pair_style": ..., "pair_coeff": [...]})
    oracle_ranks = all          # (all) every rank labels one structure at a time; 0: rank 0
                                #   labels all (for codes that launch their own MPI)
    # the group new labels join (training only)
    group = Learned             # (Learned)
    eweight = 100               # (the first [GROUPS] group's weights)
    fweight = 1
    vweight = 1e-4
    # selection
    selection = ivar            # (ivar) ivar, dopt, maxstd or random
    batch_size = 5              # (5) labels per round
    cost_weighting = 0          # (0) 1: ivar/dopt gains divided by the number of atoms
    # stop rules (the first that holds ends the campaign)
    budget = 50                 # required: the most labels the oracle may be asked for
    stop_std = 0.1              # (none) eV/Å: stop when the largest calibrated force σ over the
                                #   candidates (pool or MD frames) is at most this
    validation = val.extxyz     # (none) labelled structures (folder or file, as pool) scored
    patience = 3                # (3) each round; stop after this many rounds without a lower
                                #   validation force RMSE (energy RMSE when forces are not fitted)
    seed = 0                    # (0) random selection and MD draw from (seed, round, labelled set)
    random_baseline = 0         # (0) 1: also run random selection with the same budget, for the
                                #   learning curve (its labels in DIR/baseline/labelled/)

``[GROUPS] smartweights = 1`` is refused: it divides a group's weights by its size, which here
grows every round (so old rows would need reweighting). The group named by ``group`` must not be
a ``[GROUPS]`` group.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from mpisnap.hookspecs import hookimpl
from mpisnap.oracle_settings import read_oracle_keys
from mpisnap.records import SettingsSection
from mpisnap.settings import p_choice, p_flag, p_float, p_floats, p_int, p_str, p_word

#: The selection rules ``selection`` may name (:mod:`mpisnap.learning.selection`).
SELECTIONS = ("ivar", "dopt", "maxstd", "random")

KEYS = ("pool", "md_start", "md_temperatures", "md_steps", "md_interval", "md_timestep",
        "md_friction", "md_max_std", "oracle", "oracle_args", "oracle_pair_style",
        "oracle_pair_coeff", "oracle_ranks", "group", "eweight", "fweight", "vweight",
        "selection", "batch_size", "cost_weighting", "budget", "stop_std", "validation",
        "patience", "seed", "random_baseline")


@dataclass(frozen=True)
class LearnSettings:
    """``[LEARN]`` typed (see the module docstring). Paths as written (resolve them with the
    settings' ``resolve``); weights None: those of the first ``[GROUPS]`` group;
    ``oracle_args`` the JSON text (with ``oracle = lammps``, ``oracle_pair_style`` and
    ``oracle_pair_coeff`` already merged into it)."""

    oracle: str
    budget: int
    pool: str | None = None
    md_start: str | None = None
    md_temperatures: tuple[float, ...] = (300.0,)
    md_steps: int = 200
    md_interval: int = 20
    md_timestep: float = 2.0
    md_friction: float = 0.02
    md_max_std: float | None = None
    oracle_args: str = "{}"
    oracle_ranks: str = "all"
    group: str = "Learned"
    eweight: float | None = None
    fweight: float | None = None
    vweight: float | None = None
    selection: str = "ivar"
    batch_size: int = 5
    cost_weighting: int = 0
    stop_std: float | None = None
    validation: str | None = None
    patience: int = 3
    seed: int = 0
    random_baseline: int = 0

    @property
    def md(self) -> bool:
        """Whether the campaign explores by MD."""
        return self.md_start is not None


def _positive(r, key, value, strict=True):
    if value is not None:
        ok = value > 0 if strict else value >= 0
        r.require(key, ok, f"must be {'>' if strict else '>='} 0, got {value}")
    return value


def parse_learn(raw, r) -> LearnSettings:
    oracle, _, args = read_oracle_keys(raw, r, required=True)
    style = r.get("oracle_pair_style", p_str, None)
    coeff = r.get("oracle_pair_coeff", p_str, None)
    for key, value in (("oracle_pair_style", style), ("oracle_pair_coeff", coeff)):
        if value is not None:
            r.require(key, oracle == "lammps", "only with oracle = lammps")
    if style is not None:
        r.require("oracle_pair_style", "pair_style" not in args,
                  "given twice (also in oracle_args)")
        args["pair_style"] = style
    if coeff is not None:
        r.require("oracle_pair_coeff", "pair_coeff" not in args,
                  "given twice (also in oracle_args)")
        args["pair_coeff"] = [coeff]
    ranks = r.get("oracle_ranks", p_word, "all").lower()
    r.require("oracle_ranks", ranks in ("all", "0"), f"expected all or 0, got {ranks!r}")

    budget = r.get("budget", p_int, None)
    r.require("budget", budget is not None,
              "required: the most labels the oracle may be asked for (e.g. 'budget = 50')")
    _positive(r, "budget", budget)
    pool = r.get("pool", p_str, None)
    md_start = r.get("md_start", p_str, None)
    if pool is None and md_start is None:
        r.fail(None, "give pool (unlabelled structures) and/or md_start (MD exploration)")
    temps = r.get("md_temperatures", p_floats, (300.0,))
    for t in temps:
        r.require("md_temperatures", t > 0, f"temperatures must be > 0 K, got {t}")
    md_keys = [k for k in raw if k.startswith("md_") and k != "md_start"]
    if md_start is None and md_keys:
        r.fail(md_keys[0], "given without md_start")
    steps = _positive(r, "md_steps", r.get("md_steps", p_int, 200))
    interval = _positive(r, "md_interval", r.get("md_interval", p_int, 20))
    r.require("md_interval", interval <= steps, f"{interval} > md_steps {steps}: no frames")
    weights = {k: _positive(r, k, r.get(k, p_float, None), strict=False)
               for k in ("eweight", "fweight", "vweight")}
    group = r.get("group", p_word, "Learned")
    r.require("group", all(c.isalnum() or c in "_-." for c in group) and group[0] != ".",
              f"a group name is a folder name: letters, digits, _ - . (got {group!r})")
    batch = _positive(r, "batch_size", r.get("batch_size", p_int, 5))
    patience = _positive(r, "patience", r.get("patience", p_int, 3))
    validation = r.get("validation", p_str, None)
    r.require("patience", validation is not None or "patience" not in raw,
              "given without validation")
    seed = r.get("seed", p_int, 0)
    r.require("seed", seed >= 0, f"must be >= 0, got {seed}")
    return LearnSettings(
        oracle=oracle, budget=budget, pool=pool, md_start=md_start, md_temperatures=temps,
        md_steps=steps, md_interval=interval,
        md_timestep=_positive(r, "md_timestep", r.get("md_timestep", p_float, 2.0)),
        md_friction=_positive(r, "md_friction", r.get("md_friction", p_float, 0.02), False),
        md_max_std=_positive(r, "md_max_std", r.get("md_max_std", p_float, None)),
        oracle_args=json.dumps(args), oracle_ranks=ranks, group=group,
        selection=r.get("selection", p_choice(*SELECTIONS, upper=False), "ivar"),
        batch_size=batch, cost_weighting=r.get("cost_weighting", p_flag, 0),
        stop_std=_positive(r, "stop_std", r.get("stop_std", p_float, None)),
        validation=validation, patience=patience, seed=seed,
        random_baseline=r.get("random_baseline", p_flag, 0), **weights)


SECTION = SettingsSection(
    "LEARN", parse_learn, KEYS, verb="learn",
    description="active learning: pool or MD candidates, oracle, selection, stop rules "
                "(mpisnap learn)")


@hookimpl
def mpisnap_settings_sections():
    return [SECTION]
