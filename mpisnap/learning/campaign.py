""":func:`learn`: starting fit → rounds of (refit, uncertainty, stop rules, selection, labels,
incremental fold) → the final potential. The algorithm is described in :mod:`mpisnap.learning`."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..comm import SerialComm, agree
from ..errors import FitError
from ..models import LinearModel
from ..pipeline import compress, finalize, iter_blocks, own_all, plan, prepare, solve_compressed
from ..pipeline.compression import Compressed
from ..pipeline.evaluation import evaluate
from ..pipeline.folds import combine
from ..pipeline.solving import flat_columns
from ..pipeline.timing import Timer, progress as _progress
from ..records import ConfigRef, Configuration
from ..results import LABEL_DTYPE, DesignShard, FitResult
from ..training_set import Entry
from ..tsqr import StreamingR
from .explore import md_jobs, rounded, run_md
from .labels import FAILED, LabelStore
from .posterior import calibration_scales, posterior_of
from .selection import Candidates, force_std, select
from .structures import check_structure, read_labelled, read_structures

__all__ = ["learn", "LearnResult", "LearnError", "STATE", "CURVE"]

log = logging.getLogger("mpisnap")

#: Bookkeeping of a campaign inside the output directory (fingerprint, failed labels).
STATE = "learn_state"
#: The learning curve (CSV and PNG) in the output directory.
CURVE = "learn_curve"
#: Configurations whose descriptors are computed together.
CHUNK = 64


class LearnError(FitError):
    """A user-facing problem of ``learn`` (one line)."""


@dataclass
class LearnResult:
    """What :func:`learn` produced (every rank gets the same).

    ``rounds``: one dict per round (``round``, ``labels`` so far, ``new`` labels of the round,
    ``candidates``, ``max_std``/``mean_std`` the candidates' largest calibrated force σ
    (eV/Å; max and mean over candidates), ``val_energy_rmse`` (eV/atom) and
    ``val_force_rmse`` (eV/Å) on the validation set (NaN without one), ``noise`` the
    posterior's σ of a new force label of the learned group (eV/Å; of an energy label when
    forces are not fitted), ``scale`` its force calibration factor, ``prior`` the prior
    precision λ, ``seconds``, ``selection``); ``labelled``: the names of the labelled
    structures in the order they were chosen; ``coefficients``: the last round's (incremental)
    fit; ``fit``: the final :class:`~mpisnap.results.FitResult` from scratch on the starting
    set plus the labels (what ``mpisnap fit <stem>_learned.in`` gives; None when nothing is
    written); ``stop``: which rule ended the campaign (``budget``, ``stop_std``,
    ``patience``, ``exhausted``); ``oracle_calls``: calls of the oracle in this run, all ranks;
    ``failed``: structures the oracle failed on; ``baseline``: the rounds of the random
    baseline (``random_baseline = 1``) or None; ``files``: what was written; ``chosen``: every
    structure chosen, as ``(round, name, source, "labelled" or "failed")`` (also
    ``learn_labels.csv``)."""

    rounds: list[dict]
    labelled: list[str]
    coefficients: np.ndarray
    stop: str
    oracle_calls: int
    failed: list[str] = field(default_factory=list)
    fit: FitResult | None = None
    baseline: list[dict] | None = None
    files: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    chosen: list[tuple] = field(default_factory=list)


# -- the campaign's fixed pieces ----------------------------------------------------------------

@dataclass
class _Context:
    comm: Any
    setup: Any
    ls: Any
    out: str | None
    group_names: list[str]
    weights: tuple[float, float, float]
    const: np.ndarray
    start: tuple           # (kind -> Compressed, kind -> rows of weight > 0, kind -> Σ log w²)
    pool_names: list[str]  # global: pool candidate k's source name
    pool: Candidates       # this rank's pool candidates (global index k)
    pool_atoms: dict       # k -> ase.Atoms (this rank's)
    starts: list           # MD starting structures (every rank)
    validation: DesignShard | None
    oracle: Any
    timer: Timer
    show: bool
    rounds_dir: str | None = None


def _first_weights(settings, ls) -> tuple[float, float, float]:
    g = settings.groups[0] if settings.groups else None
    out = []
    for key in ("eweight", "fweight", "vweight"):
        v = getattr(ls, key)
        out.append(float(v) if v is not None else float(getattr(g, key) if g else 1.0))
    return tuple(out)


def _check_settings(setup) -> Any:
    settings = setup.settings
    ls = settings.section("LEARN")
    where = f"{os.path.basename(settings.source) or settings.source}"
    if not isinstance(setup.model, LinearModel):
        raise LearnError(f"{where}: [CALCULATOR]: active learning needs a model linear in its "
                         f"coefficients (model form {setup.model.name!r} is not)")
    if settings.group_options.smartweights:
        raise LearnError(f"{where}: [GROUPS] smartweights = 1 is refused by mpisnap learn: it "
                         "divides a group's weights by its size, which grows every round; set "
                         "smartweights = 0 and give per-row weights")
    if ls.group in [g.name for g in settings.groups]:
        raise LearnError(f"{where}: [LEARN] group: {ls.group!r} is a [GROUPS] group; new labels "
                         "need a group of their own")
    return ls


def _rows_of(setup, configs: Sequence[Configuration]):
    """Unweighted design rows of configurations (labels may be zero): ``[(A, kind)]``."""
    model = setup.model
    out = []
    for s in range(0, len(configs), CHUNK):
        batch = configs[s:s + CHUNK]
        descs = model.descriptor.compute_batch(
            [dict(positions=c.positions, cell=c.cell, pbc=c.pbc, symbols=c.symbols) for c in batch])
        for c, d in zip(batch, descs):
            A, _, kind, _, _ = model.rows(c, d, None, 0.0, setup.kinds)
            out.append((A, kind))
    return out


def _unlabelled(name: str, atoms) -> Configuration:
    n = len(atoms)
    return Configuration(name, "", np.asarray(atoms.get_positions(), float),
                         np.asarray(atoms.get_cell(), float), (True, True, True),
                         tuple(atoms.get_chemical_symbols()), 0.0, np.zeros((n, 3)),
                         np.zeros((3, 3)))


def _own(n: int, costs, comm) -> np.ndarray:
    from ..partition import assign

    if comm.size == 1:
        return np.arange(n)
    return np.flatnonzero(assign(costs, comm.size) == comm.rank)


class _Tally:
    """Per row kind, the training rows of weight > 0 and their Σ log w² (the posterior's noise
    model needs them; the triangles do not keep them)."""

    def __init__(self) -> None:
        self.nrows = np.zeros(3, np.int64)
        self.log_weight2 = np.zeros(3)

    def count(self, blocks):
        for A, b, w, lab in blocks:
            t = (w > 0) & ~lab["test"]
            self.nrows += np.bincount(lab["kind"][t], minlength=3)[:3]
            self.log_weight2 += np.bincount(lab["kind"][t], weights=np.log(w[t] ** 2),
                                            minlength=3)[:3]
            yield A, b, w, lab

    def total(self, comm) -> tuple[dict, dict]:
        n, lw2 = comm.allreduce((self.nrows, self.log_weight2),
                                op=lambda a, b: (a[0] + b[0], a[1] + b[1]))
        return ({k: int(n[k]) for k in range(3)}, {k: float(lw2[k]) for k in range(3)})


def _start_systems(comm, setup, timer, show) -> tuple[dict, dict, dict]:
    """The starting set compressed per row kind (every rank the same), with per kind the rows
    of weight > 0 and their Σ log w²."""
    with timer("read"):
        pl = plan(comm, setup)
    ncols = setup.model.ncols
    tally = _Tally()
    accs = agree(comm, lambda: compress(
        tally.count(iter_blocks(setup, pl, timer=timer, progress=show)), ncols,
        key=lambda lab: lab["kind"]))
    systems = finalize(comm, accs, ncols)
    nrows, log_weight2 = tally.total(comm)
    return systems, nrows, log_weight2


def _validation(comm, setup, ls, timer) -> DesignShard | None:
    if ls.validation is None:
        return None
    settings = setup.settings
    path = settings.resolve(ls.validation)
    where = f"{os.path.basename(settings.source)}: [LEARN] validation"

    def read():
        configs = read_labelled(path, where, setup.registry)
        types = set(settings.bispectrum.type)
        for c in configs:
            bad = sorted(set(c.symbols) - types)
            if bad:
                raise LearnError(f"{where}: {c.name}: element {bad[0]!r} is not in "
                                 "[BISPECTRUM] type")
        return configs

    configs = agree(comm, read)
    mine = _own(len(configs), [c.natoms for c in configs], comm)
    entries = [Entry(ConfigRef(c.name, "Validation", path, 0), True, 1.0, 1.0, 1.0)
               for c in configs]
    pl = own_all([entries[i] for i in mine], ["Validation"])

    def rows():
        blocks = list(iter_blocks(setup, pl, timer=timer, configs=[configs[i] for i in mine]))
        ncols = setup.model.ncols
        if not blocks:
            return DesignShard(np.zeros((0, ncols)), np.zeros(0), np.zeros(0),
                               np.zeros(0, LABEL_DTYPE), [c.name for c in configs], ["Validation"])
        A = np.concatenate([b[0] for b in blocks])
        lab = np.concatenate([b[3] for b in blocks])
        lab["config"] = mine[lab["config"]] if len(mine) else lab["config"]
        return DesignShard(A, np.concatenate([b[1] for b in blocks]),
                           np.concatenate([b[2] for b in blocks]), lab,
                           [c.name for c in configs], ["Validation"])

    return agree(comm, rows)


def _pool(comm, setup, ls, timer, show):
    """Global pool names; this rank's candidates and structures."""
    settings = setup.settings
    if ls.pool is None:
        return [], Candidates(), {}
    where = f"{os.path.basename(settings.source)}: [LEARN] pool"
    json_reader = setup.registry.get("readers", "JSON")

    def read():
        items = read_structures(settings.resolve(ls.pool), where, json_reader)
        for name, at in items:
            check_structure(name, at, settings.bispectrum.type, where)
        return items

    items = agree(comm, read)
    mine = _own(len(items), [len(at) for _, at in items], comm)

    def rows():
        cands = Candidates()
        bar = _progress(len(mine), show, desc="pool descriptors")
        configs = [_unlabelled(items[k][0], items[k][1]) for k in mine]
        with timer("descriptors"):
            for s in range(0, len(configs), CHUNK):
                part = _rows_of(setup, configs[s:s + CHUNK])
                for k, (A, kind) in zip(mine[s:s + CHUNK], part):
                    cands.add(int(k), A, kind, len(items[k][1]))
                bar.update(len(part))
        bar.close()
        return cands

    cands = agree(comm, rows)
    return [name for name, _ in items], cands, {int(k): items[k][1] for k in mine}


def _md_starts(comm, setup, ls) -> list:
    if ls.md_start is None:
        return []
    settings = setup.settings
    where = f"{os.path.basename(settings.source)}: [LEARN] md_start"

    def read():
        items = read_structures(settings.resolve(ls.md_start), where,
                                setup.registry.get("readers", "JSON"))
        for name, at in items:
            check_structure(name, at, settings.bispectrum.type, where)
        return [at for _, at in items]

    return agree(comm, read)


# -- one round's pieces ---------------------------------------------------------------------------

def _whole(systems: dict) -> Compressed:
    return combine(systems, lambda code: 1.0)


def _fold(comm, setup, state: tuple, new: list, group_names, group: str, weights, coef,
          post) -> tuple[tuple, dict]:
    """``state`` (systems, rows, Σ log w² per kind) with this rank's newly labelled
    ``(name, atoms, labels)`` folded in (collective): rank 0 seeds one accumulator per kind
    with the old triangle (and its residual), every rank adds its new rows, the accumulators
    are combined. Also this rank's held-out scores per kind: the new rows' errors under the
    round's coefficients ``coef`` over their predictive σ from ``post`` (the calibration)."""
    systems, nrows, log_weight2 = state
    ncols = setup.model.ncols
    accs: dict = {}
    # rows that stand for an old system in its accumulator (on rank 0): its triangle, its residual
    seeds = {k: len(s.R) + 1 for k, s in systems.items()}
    if comm.rank == 0:
        for k, s in systems.items():
            acc = accs[k] = StreamingR(ncols)
            acc.add(s.R, s.qb)
            acc.add(np.zeros((1, ncols)), np.array([math.sqrt(s.rnorm2)]))
    entries, configs = [], []
    for name, atoms, lab in new:
        entries.append(Entry(ConfigRef(f"{group}/{name}.json", group, name, 0), False, *weights))
        configs.append(Configuration(f"{group}/{name}.json", group,
                                     np.asarray(atoms.get_positions(), float),
                                     np.asarray(atoms.get_cell(), float), (True, True, True),
                                     tuple(atoms.get_chemical_symbols()), lab.energy,
                                     lab.forces, lab.stress))
    scores: dict = {0: [], 1: [], 2: []}
    tally = _Tally()

    def rows():
        for A, b, w, lab in tally.count(iter_blocks(setup, own_all(entries, group_names),
                                                    timer=Timer(), configs=configs)):
            var = post.model_std(A) ** 2
            for k in range(3):
                sel = lab["kind"] == k
                if sel.any():
                    sd = np.sqrt(var[sel] + post.label_variance(k, weights[k]))
                    scores[k] += (np.abs(b[sel] - A[sel] @ coef) / np.maximum(sd, 1e-300)).tolist()
            yield A, b, w, lab

    agree(comm, lambda: compress(rows(), ncols, key=lambda lab: lab["kind"], into=accs))
    folded = finalize(comm, accs, ncols)
    new_rows, new_lw2 = tally.total(comm)
    out = {}
    for k, c in folded.items():  # every training row (weight 0 too): the old ones and the new
        old = systems[k].nrows if k in systems else 0
        out[k] = Compressed(c.R, c.qb, c.rnorm2, old + c.nrows - seeds.get(k, 0))
    return ((out, {k: nrows.get(k, 0) + new_rows[k] for k in range(3)},
             {k: log_weight2.get(k, 0.0) + new_lw2[k] for k in range(3)}), scores)


def _label(comm, ctx: _Context, store: LabelStore, picked: list[int], names: dict,
           atoms_of: dict) -> tuple[list, list[str], list[str]]:
    """Label the picked candidates (each rank its share, or rank 0 alone): this rank's
    ``(name, atoms, labels)`` and every rank's lists of labelled and failed names."""
    ls = ctx.ls
    everyone = comm.allgather({i: atoms_of[i] for i in picked if i in atoms_of})
    structures = {}
    for part in everyone:
        structures.update(part)

    def labeller(k):
        return k % comm.size if ls.oracle_ranks == "all" else 0

    def work():
        mine = [i for k, i in enumerate(picked) if labeller(k) == comm.rank]
        bar = _progress(len(mine), ctx.show, desc="oracle", unit="label")
        done, failed = [], []
        for i in mine:
            name, src = names[i]
            lab = store.get(name, structures[i], ctx.oracle, comment=src)
            if lab is FAILED:
                failed.append(name)
            else:
                done.append((name, structures[i], lab))
            bar.update(1)
        bar.close()
        return done, failed

    with ctx.timer("oracle"):
        done, failed = agree(comm, work)
    parts = comm.allgather(([d[0] for d in done], failed))
    ok = {n for p in parts for n in p[0]}
    bad = {n for p in parts for n in p[1]}
    order = [names[i][0] for i in picked]
    return done, [n for n in order if n in ok], [n for n in order if n in bad]


def _validation_errors(comm, shard: DesignShard | None, coef) -> tuple[float, float, list]:
    if shard is None:
        return math.nan, math.nan, []
    metrics, _ = evaluate(comm, shard, coef)
    e = f = math.nan
    for m in metrics:
        if m.group == "*ALL" and m.weighting == "Unweighted" and m.ncount:
            if m.kind == "Energy":
                e = m.rmse
            elif m.kind == "Force":
                f = m.rmse
    return e, f, metrics


def _write_round(comm, ctx: _Context, r: int, coef, sol, metrics, t0) -> None:
    if ctx.rounds_dir is None:
        return
    from ..pipeline.outputs import write_outputs
    from ..settings.schema import ExtrasSettings

    setup = ctx.setup
    settings = dataclasses.replace(setup.settings, extras=ExtrasSettings())
    result = FitResult(settings, setup.model, coef, dict(sol.info), list(metrics), None, {},
                       sol.covariance, reference=setup.reference)
    rsetup = dataclasses.replace(setup, settings=settings)

    def write():
        if comm.rank == 0:
            write_outputs(result, os.path.join(ctx.rounds_dir, f"round_{r:03d}"), rsetup, t0)

    with ctx.timer("outputs"):
        agree(comm, write)


def _md_candidates(comm, ctx: _Context, r: int, coef, post, key: int, first: int):
    """This round's MD frames: this rank's candidates (global indices from ``first``), their
    structures and every frame's name."""
    ls = ctx.ls
    setup = ctx.setup
    from ..models import LinearPredictor

    predictor = LinearPredictor(setup.model, rounded(coef), setup.reference,
                                setup.settings.eshift)
    jobs = md_jobs(len(ctx.starts), ls.md_temperatures)

    def frame_std(atoms):
        (A, kind), = _rows_of(setup, [_unlabelled("frame", atoms)])
        c = Candidates()
        c.add(0, A, kind, len(atoms))
        return float(force_std(c, post, setup.kinds)[0])

    def work():
        own = {}
        for job in jobs:
            if job.index % comm.size != comm.rank:
                continue
            rng = np.random.default_rng([ls.seed, r, job.index, key])
            own[job.index] = run_md(job, ctx.starts[job.start], predictor, steps=ls.md_steps,
                                    interval=ls.md_interval, timestep_fs=ls.md_timestep,
                                    friction_fs=ls.md_friction, rng=rng, frame_std=frame_std,
                                    max_std=ls.md_max_std)
        return own

    with ctx.timer("md"):
        own = agree(comm, work)
    counts = {}
    for part in comm.allgather({j: len(f) for j, f in own.items()}):
        counts.update(part)
    cands, atoms_of, names = Candidates(), {}, {}
    index = first
    for job in jobs:
        for f in range(counts.get(job.index, 0)):
            name = f"md_r{r:03d}_j{job.index:03d}_f{f:03d}"
            names[index] = (name, f"MD round {r}, start {job.start}, {job.temperature:g} K, "
                                  f"frame {f}")
            if job.index in own:
                atoms_of[index] = own[job.index][f]
            index += 1
    mine = sorted(atoms_of)
    with ctx.timer("descriptors"):
        rows = agree(comm, _rows_of, setup, [_unlabelled(names[i][0], atoms_of[i]) for i in mine])
    for i, (A, kind) in zip(mine, rows):
        cands.add(i, A, kind, len(atoms_of[i]))
    return cands, atoms_of, names


def _merge(a: Candidates, b: Candidates) -> Candidates:
    out = Candidates()
    for c in (a, b):
        for i, A, k, n in zip(c.index, c.rows, c.kinds, c.natoms):
            out.add(i, A, k, n)
    return out


def _campaign(comm, ctx: _Context, selection: str, store: LabelStore, tag: str = "learn"):
    """The rounds; returns (history, labelled names, last coefficients, stop reason, failed)."""
    setup, ls = ctx.setup, ctx.ls
    state = ctx.start
    scores: dict = {0: [], 1: [], 2: []}
    npool = len(ctx.pool_names)
    remaining = set(range(npool))
    pool_names = {k: (f"pool_{k:06d}", f"pool {ctx.pool_names[k]}") for k in range(npool)}
    labelled: list[str] = []
    failed: list[str] = []
    history: list[dict] = []
    chosen: list[tuple] = []
    best, stale = math.inf, 0
    r = 0
    coef = None
    while True:
        t0 = time.perf_counter()
        with ctx.timer("solve"):
            sol = solve_compressed(comm, _whole(state[0]), setup)
            coef = setup.model.symmetrize(sol.coefficients)
        with ctx.timer("uncertainty"):
            scale = calibration_scales(comm, scores)
            post = agree(comm, posterior_of, state[0], state[1], state[2], ctx.const, scale,
                         progress=ctx.show)
        factors = np.array([w * math.sqrt(post.alpha.get(k, 0.0))
                            for k, w in enumerate(ctx.weights)])
        kf = 1 if setup.kinds[1] else 0
        noise = math.sqrt(post.label_variance(kf, ctx.weights[kf]))
        key = zlib.crc32("\n".join(labelled).encode())
        cands = ctx.pool.subset(remaining)
        names = dict(pool_names)
        atoms_of = dict(ctx.pool_atoms)
        if ls.md:
            md_c, md_atoms, md_names = _md_candidates(comm, ctx, r, coef, post, key, npool)
            cands = _merge(cands, md_c)
            atoms_of.update(md_atoms)
            names.update(md_names)
        with ctx.timer("uncertainty"):
            std = force_std(cands, post, setup.kinds)
            smax, ssum, count = comm.allreduce(
                (float(std.max()) if len(std) else 0.0, float(std.sum()), len(std)),
                op=lambda a, b: (max(a[0], b[0]), a[1] + b[1], a[2] + b[2]))
        e_rmse, f_rmse, metrics = _validation_errors(comm, ctx.validation, coef)
        score = f_rmse if setup.kinds[1] and not math.isnan(f_rmse) else e_rmse
        if not math.isnan(score):
            if score < best:
                best, stale = score, 0
            else:
                stale += 1
        _write_round(comm, ctx, r, coef, sol, metrics, t0)
        entry = {"round": r, "labels": len(labelled),
                 "new": len(labelled) - (history[-1]["labels"] if history else 0),
                 "candidates": int(count), "max_std": smax,
                 "mean_std": ssum / count if count else math.nan,
                 "val_energy_rmse": e_rmse, "val_force_rmse": f_rmse, "noise": noise,
                 "scale": float(post.scale.get(kf, 1.0)),
                 "prior": float(post.info.get("prior", math.nan)),
                 "seconds": time.perf_counter() - t0, "selection": selection}
        stop = None
        if len(labelled) >= ls.budget:
            stop = "budget"
        elif ls.stop_std is not None and count and smax <= ls.stop_std:
            stop = "stop_std"
        elif ls.validation is not None and stale >= ls.patience:
            stop = "patience"
        elif not count:
            stop = "exhausted"
        history.append(entry)
        if comm.rank == 0:
            val = (f"; validation RMSE E {e_rmse:.4g} eV/atom, F {f_rmse:.4g} eV/Å"
                   if ls.validation is not None else "")
            log.info(f"{tag}: round {r}: {len(labelled)} labels; {count} candidates, force σ "
                     f"max {smax:.4g} mean {entry['mean_std']:.4g} eV/Å{val}"
                     + (f"; stop ({stop})" if stop else ""))
        if stop:
            return history, labelled, coef, stop, failed, chosen
        rng = np.random.default_rng([ls.seed, r, key])
        with ctx.timer("selection"):
            picked = select(comm, cands, post, factors, selection,
                            min(ls.batch_size, ls.budget - len(labelled)), rng=rng,
                            cost_weighting=bool(ls.cost_weighting), kinds_fitted=setup.kinds)
        done, ok, bad = _label(comm, ctx, store, picked, names, atoms_of)
        with ctx.timer("fold"):
            state, new_scores = _fold(comm, setup, state, done, ctx.group_names, ls.group,
                                      ctx.weights, coef, post)
        for k in scores:
            scores[k] += new_scores[k]
        labelled += ok
        failed += bad
        chosen += [(r, names[i][0], names[i][1], "labelled" if names[i][0] in ok else "failed")
                   for i in picked]
        remaining -= {i for i in picked if i < npool}
        r += 1


# -- outputs ------------------------------------------------------------------------------------

def _ini_value(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return str(v)


def learned_input_text(settings, training_dir: str, group: str, weights, header: str) -> str:
    """The ``.in`` text that refits the starting set plus the learned group with ``mpisnap
    fit``: the campaign's settings, ``dataPath`` the absolute ``training_dir``, every group
    written out (the learned one training only), no ``[LEARN]``."""
    d = settings.to_dict()
    d.pop("LEARN", None)
    d["PATH"] = {"dataPath": os.path.abspath(training_dir)}
    d["SCRAPER"] = {"scraper": "JSON"}
    opts = settings.group_options
    cols, types = opts.group_sections[1:], opts.group_types[1:]
    groups = {"group_sections": list(opts.group_sections), "group_types": list(opts.group_types),
              "smartweights": opts.smartweights, "random_sampling": opts.random_sampling,
              "random_seed": opts.random_seed}
    from ..settings.schema import GroupSpec

    learned = GroupSpec(group, 1.0, 0.0, *weights)
    for g in list(settings.groups) + [learned]:
        groups[g.name] = [int(getattr(g, c)) if t == "int" else getattr(g, c)
                          for c, t in zip(cols, types)]
    for key, default in (("eweight", 1.0), ("fweight", 1.0), ("vweight", 1.0),
                         ("training_size", 1.0), ("testing_size", 0.0)):
        if key not in cols and getattr(learned, key) != default:
            raise LearnError(f"{settings.source}: [GROUPS] group_sections has no {key} column: "
                             f"the learned group's {key} cannot be written")
    d["GROUPS"] = groups
    lines = [f"# {line}" for line in header.splitlines()]
    for section, body in d.items():
        if not isinstance(body, dict):
            continue
        items = [(k, _ini_value(v)) for k, v in body.items()]
        items = [(k, v) for k, v in items if v is not None and v != ""]
        if not items:
            continue
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {v}" for k, v in items]
    return "\n".join(lines) + "\n"


def _training_dir(setup, out: str, group: str) -> str:
    """``DIR/training``: one folder per group for the learned input — links to the starting
    set's group folders (JSON), or its configurations written as FitSNAP JSON (other readers),
    and a link to ``DIR/labelled/<group>``."""
    from ..oracle import write_labelled_json
    from ..training_set import training_set
    from .structures import to_atoms

    settings = setup.settings
    root = os.path.join(out, "training")
    os.makedirs(root, exist_ok=True)

    def link(target, name):
        path = os.path.join(root, name)
        if os.path.islink(path) or os.path.exists(path):
            if os.path.islink(path) and os.readlink(path) == target:
                return
            if os.path.islink(path):
                os.remove(path)
            else:
                import shutil

                shutil.rmtree(path)
        os.symlink(target, path)

    if settings.scraper.scraper == "JSON":
        for g in settings.groups:
            link(os.path.join(settings.data_path, g.name), g.name)
    else:
        entries = sorted(training_set(settings, setup.reader), key=lambda e: e.ref.name)
        by_group: dict[str, list] = {}
        for e in entries:
            by_group.setdefault(e.ref.group, []).append(e)
        for g, es in by_group.items():
            folder = os.path.join(root, g)
            os.makedirs(folder, exist_ok=True)
            for k, e in enumerate(es):
                c = setup.reader.load(e.ref)
                if not all(c.pbc):
                    raise LearnError(f"{e.ref.name}: not periodic: the learned input reads the "
                                     "starting set as FitSNAP JSON, which is periodic")
                write_labelled_json(os.path.join(folder, f"{k:06d}.json"), to_atoms(c),
                                    c.energy, c.forces, c.stress, comment=e.ref.name)
    link(os.path.abspath(os.path.join(out, "labelled", group)), group)
    return root


def _curve_files(result_rounds, baseline, out_dir: str, chosen=()) -> list[str]:
    """``learn_curve.csv``, ``learn_curve.png`` and ``learn_labels.csv`` (the structures chosen,
    by round) in ``out_dir`` (a staging folder)."""
    import csv

    from ..io import atomic_write

    with atomic_write(os.path.join(out_dir, "learn_labels.csv"), newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["round", "name", "source", "status"])
        w.writerows(chosen)

    cols = ["selection", "round", "labels", "new", "candidates", "max_std", "mean_std",
            "val_energy_rmse", "val_force_rmse", "noise", "scale", "prior", "seconds"]
    path = os.path.join(out_dir, CURVE + ".csv")
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for rows in (result_rounds, baseline or []):
            for h in rows:
                w.writerow([h[c] if isinstance(h[c], str) else f"{h[c]:.10g}" for c in cols])
    png = os.path.join(out_dir, CURVE + ".png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.9, wspace=0.25)
    panels = (("val_energy_rmse", "validation energy RMSE (eV/atom)"),
              ("val_force_rmse", "validation force RMSE (eV/Å)"),
              ("max_std", "candidates' largest force σ (eV/Å)"))
    for ax, (key, title) in zip(axes, panels):
        for rows, style in ((result_rounds, "o-"), (baseline or [], "s--")):
            if not rows:
                continue
            x = [h["labels"] for h in rows]
            y = [h[key] for h in rows]
            if all(math.isnan(v) for v in y):
                continue
            ax.plot(x, y, style, label=rows[0]["selection"], ms=3)
        ax.set_xlabel("labels")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    with atomic_write(png, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    return [path, png]


# -- the run ------------------------------------------------------------------------------------

def _fingerprint(settings) -> dict:
    """What must not change between a campaign and its ``--resume`` (every setting but the
    stop rules and the baseline flag)."""
    import json

    d = settings.to_dict()
    learn = dict(d.get("LEARN", {}))
    for k in ("budget", "stop_std", "validation", "patience", "random_baseline"):
        learn.pop(k, None)
    d["LEARN"] = learn
    return json.loads(json.dumps(d, default=str))


def _prepare_outputs(comm, settings, out: str, ls, resume: bool, write: bool = False) -> None:
    """Rank 0: a fresh campaign needs no labels in the output directory; a resumed one, the
    same settings (the fingerprint in ``learn_state/``, written when ``write``)."""
    if comm.rank != 0:
        return
    import json

    from ..io import atomic_write, check_output_dir

    check_output_dir(out)
    labelled = os.path.join(out, "labelled")
    state = os.path.join(out, STATE)
    fp_path = os.path.join(state, "fingerprint.json")
    fp = _fingerprint(settings)
    if not resume and (os.path.isdir(labelled) or os.path.isdir(state)):
        raise LearnError(f"{labelled} exists (an earlier campaign): add --resume to continue it, "
                         "or choose another --output-dir")
    if resume and os.path.isfile(fp_path):
        with open(fp_path, encoding="utf-8") as fh:
            old = json.load(fh)
        if old != fp:
            diff = sorted({f"[{s}] {k}" for s in set(old) | set(fp)
                           for k in set(old.get(s, {})) | set(fp.get(s, {}))
                           if old.get(s, {}).get(k) != fp.get(s, {}).get(k)})
            raise LearnError(f"{out}: the campaign there was run with other settings "
                             f"({', '.join(diff[:3])}{' …' if len(diff) > 3 else ''} differ); "
                             "resume it with the same input, or choose another --output-dir")
    if not write:
        return
    os.makedirs(state, exist_ok=True)
    with atomic_write(fp_path, encoding="utf-8") as fh:
        json.dump(fp, fh, indent=1, sort_keys=True)


def _check_leftovers(comm, store: LabelStore, labelled: list[str]) -> None:
    """Every label on disk must belong to the campaign (else a refit would read labels the
    campaign never chose)."""
    if comm.rank != 0:
        return
    extra = sorted(set(store.existing()) - set(labelled))
    if extra:
        raise LearnError(f"{store.folder} holds labels this campaign did not choose ({extra[0]}"
                         f"{' …' if len(extra) > 1 else ''}): they come from a campaign with "
                         "other settings or a larger budget; move them away or raise budget")


def learn(source, *, overrides: Sequence[str] = (), output_dir: str | os.PathLike = ".",
          comm=None, plugins: Iterable[Any] = (), autoload: bool | None = None,
          threads: int | None = None, resume: bool = False, progress: bool = False,
          refit: bool = True) -> LearnResult:
    """Run an active-learning campaign (:mod:`mpisnap.learning`) from an input file (path), a
    settings dict or :class:`~mpisnap.settings.Settings` with a ``[LEARN]`` section.

    ``overrides``: ``"SECTION.key=value"`` strings; ``output_dir``: where the labels
    (``labelled/<group>/*.json``), the per-round potentials (``rounds/``), the learned input
    (``<stem>_learned.in``), the final potential and the learning curve go; ``comm``: an
    mpi4py communicator (every rank calls ``learn`` with the same arguments) or None;
    ``plugins``, ``autoload``, ``threads``: as for :func:`mpisnap.fit`; ``resume``: continue
    the campaign in ``output_dir`` (no label written there is requested again; the result
    equals an uninterrupted run's); ``refit``: fit the starting set plus the labels from
    scratch at the end (the final potential), as ``mpisnap fit <stem>_learned.in`` does.
    Errors are one line (ValueError subclasses) raised on every rank."""
    from ..plot_process import start_early
    from ..threads import limited, threads_per_rank

    comm = comm if comm is not None else SerialComm()
    start_early()  # the plot helper, where it can help (mpisnap.plot_process)
    nthreads = threads_per_rank(comm, threads)
    with limited(nthreads):
        return _learn(comm, source, overrides, output_dir, plugins, autoload, nthreads, resume,
                      progress and comm.rank == 0, refit)


def _learn(comm, source, overrides, output_dir, plugins, autoload, nthreads, resume, show, refit):
    from ..io import check_output_dir

    t_start = time.perf_counter()
    timer = Timer()
    with timer("setup"):
        setup = agree(comm, prepare, source, overrides, plugins, autoload, nthreads,
                      verb="learn")
        ls = agree(comm, _check_settings, setup)
        settings = setup.settings
        out = agree(comm, check_output_dir, os.fspath(output_dir))
        agree(comm, _prepare_outputs, comm, settings, out, ls, resume)
        where = f"{os.path.basename(settings.source) or settings.source}: [LEARN] oracle"

        def load():
            from ..oracle import OracleError, load_oracle

            if ls.oracle_ranks == "0" and comm.rank != 0:
                return None
            try:
                return load_oracle(ls.oracle, ls.oracle_args, settings.base_dir,
                                   elements=settings.bispectrum.type)
            except OracleError as exc:
                raise OracleError(f"{where}: {exc}") from None

        oracle = agree(comm, load)
    const = flat_columns(setup.model)
    start = _start_systems(comm, setup, timer, show)
    pool_names, pool, pool_atoms = _pool(comm, setup, ls, timer, show)
    starts = _md_starts(comm, setup, ls)
    validation = _validation(comm, setup, ls, timer)
    ctx = _Context(comm, setup, ls, out, [g.name for g in settings.groups] + [ls.group],
                   _first_weights(settings, ls), const, start, pool_names, pool, pool_atoms,
                   starts, validation, oracle, timer, show, os.path.join(out, "rounds"))
    agree(comm, _prepare_outputs, comm, settings, out, ls, resume, True)
    store = LabelStore(out, ls.group)
    history, labelled, coef, stop, failed, chosen = _campaign(comm, ctx, ls.selection, store)
    calls = comm.allreduce(store.oracle_calls, op=lambda a, b: a + b)
    agree(comm, _check_leftovers, comm, store, labelled)
    baseline = None
    if ls.random_baseline:
        bstore = LabelStore(os.path.join(out, "baseline"), ls.group)
        bctx = dataclasses.replace(ctx, rounds_dir=None)
        baseline = _campaign(comm, bctx, "random", bstore, tag="learn (random baseline)")[0]
        calls += comm.allreduce(bstore.oracle_calls, op=lambda a, b: a + b)
    result = LearnResult(history, labelled, coef, stop, calls, failed, baseline=baseline,
                         chosen=chosen)
    stem = (os.path.splitext(os.path.basename(settings.source))[0]
            if settings.source and not settings.source.startswith("<") else "learn")
    learned_in = os.path.join(out, f"{stem}_learned.in")

    def write_input():
        if comm.rank != 0:
            return None
        from ..io import atomic_write

        os.makedirs(os.path.join(out, "labelled", ls.group), exist_ok=True)
        training = _training_dir(setup, out, ls.group)
        text = learned_input_text(settings, training, ls.group, ctx.weights,
                                  f"Written by mpisnap learn from {settings.source}: the "
                                  f"starting set plus {len(labelled)} labels (group "
                                  f"{ls.group}).\nRefit: mpisnap fit {os.path.basename(learned_in)}")
        with atomic_write(learned_in, encoding="utf-8") as fh:
            fh.write(text)
        return learned_in

    agree(comm, write_input)
    files = [learned_in]
    if refit:
        from ..pipeline import fit

        result.fit = fit(learned_in, output_dir=out, comm=comm, plugins=plugins,
                         autoload=autoload, threads=nthreads, progress=show)
        files += list(result.fit.files) if comm.rank == 0 else []

    def curve():
        if comm.rank != 0:
            return []
        from ..io import output_transaction

        with output_transaction(out) as tx:
            _curve_files(history, baseline, tx.path, chosen)
        return tx.files

    with timer("outputs"):
        files += agree(comm, curve)
    result.files = files if comm.rank == 0 else []
    result.timings = dict(timer.times, total=time.perf_counter() - t_start)
    return result
