"""The outer search over weights (and alpha): SciPy's differential evolution, or a random search,
with the trials of each generation spread over the ranks.

Parallel trials. Every rank runs the same optimiser with the same seed. Differential evolution
uses *deferred updating* (``updating="deferred"``): a whole generation of candidates is made
before any is evaluated, and SciPy hands the generation to ``workers``, a ``map``. Ours
(:func:`rank_map`) gives trial i of the generation to rank ``i mod P``, and an ``allgather``
returns every value to every rank, so every rank's optimiser sees the same numbers and takes the
same next step. The search is deterministic for a seed; its trials are the same on any number of
ranks (a trial's value is computed from the same blocks by the same code on whichever rank runs
it; with a different number of BLAS threads per rank it may differ in the last bits, which could
steer the search differently only at an exact tie).

The initial population is the input's point followed by a Latin-hypercube sample (seeded)
within :data:`INIT_SPREAD` decades of it; the input's weights are also trial 0, evaluated
first (its CV errors normalise the default objective), so the best trial is never worse than the
input. With per-group weights the search has two stages: a third of the trials
(:data:`COARSE_SHARE`) on one factor per kind (cheap: complements per kind, see
:mod:`.crossval`), then per-group factors from the best point so far. Trials the generations
leave of the budget go to a Latin hypercube close to the best point. Strategy ``best1bin``,
mutation 0.5–1 (dithered), recombination 0.7, no polishing (it would spend trials serially).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from ..comm import agree
from .crossval import Space, Trial

__all__ = ["rank_map", "search", "population_size", "INIT_SPREAD"]

#: The initial population of differential evolution lies within this many decades of the input's
#: point (the search may then go anywhere inside the bounds).
INIT_SPREAD = 1.0
#: With per-group weights, the share of the trials spent first on one factor per kind.
COARSE_SHARE = 1 / 3


def rank_map(comm, evaluate: Callable[[int, np.ndarray], Trial], history: list, bar=None,
             lift: Callable | None = None, seen: dict | None = None):
    """A ``map(func, points)`` for SciPy that evaluates the points as trials spread over the ranks
    (trial i on rank ``i mod P``), appends the trials to ``history`` (every rank, same order) and
    returns their objectives. ``func`` (SciPy's wrapper of the objective) is not called: the
    trial records carry more than the value. ``lift`` maps a point of a reduced space to the
    full space; ``seen`` (full point → trial, shared between maps) spares a point evaluated
    before (e.g. the input's, first in the initial population): its trial is repeated under the
    new index. An error on any rank raises on every rank."""
    seen = {} if seen is None else seen

    def map_(func, points):
        points = [np.asarray(p if lift is None else lift(np.asarray(p, float)), float)
                  for p in points]
        first = len(history)
        new = [i for i, p in enumerate(points) if p.tobytes() not in seen]
        mine = agree(comm, lambda: [evaluate(first + i, points[i])
                                    for j, i in enumerate(new) if j % comm.size == comm.rank])
        parts = comm.allgather(mine) if comm.size > 1 else [mine]
        done: list = [None] * len(new)
        for r, part in enumerate(parts):
            done[r::comm.size] = part
        by_index = dict(zip(new, done))
        trials = []
        for i, p in enumerate(points):
            t = by_index.get(i)
            if t is None:
                t = dataclasses.replace(seen[p.tobytes()], index=first + i)
            seen.setdefault(p.tobytes(), t)
            trials.append(t)
        history.extend(trials)
        if bar is not None:
            bar.update(len(trials))
        return [t.objective for t in trials]

    return map_


def population_size(space: Space, trials: int, requested: int = 0) -> int:
    """Differential-evolution population: ``requested``, else twice the tuned values (at least
    8), but small enough for 10 generations in the trials (at least 5)."""
    if requested:
        return int(requested)
    return max(5, min(max(8, 2 * space.size), (trials - 1) // 10))


def _latin(space: Space, count: int, seed: int, spread: float | None = None) -> np.ndarray:
    """``count`` points of a Latin hypercube in the bounds (one point in each of ``count`` equal
    slices of every axis, slices paired at random; seeded). Written out here because importing
    ``scipy.stats`` for its ``qmc.LatinHypercube`` costs seconds."""
    if count <= 0:
        return np.zeros((0, space.size))
    rng = np.random.default_rng([seed, 1])
    u = (np.stack([rng.permutation(count) for _ in range(space.size)], axis=1)
         + rng.random((count, space.size))) / count
    lo, hi = space.lower, space.upper
    if spread is not None:  # a box of ±spread around the input's point, inside the bounds
        lo = np.maximum(lo, space.x0 - spread)
        hi = np.minimum(hi, space.x0 + spread)
    return lo + u * (hi - lo)


def _evolve(space: Space, run, trials: int, seed: int, population: int, spread: float) -> None:
    """Differential evolution over ``space`` in about ``trials`` evaluations through ``run``
    (the rank map): the input's point and a Latin hypercube within ``spread`` decades of it,
    then generations of best1bin with deferred updating."""
    from scipy.optimize import differential_evolution

    npop = min(population_size(space, trials + 1, population), trials)
    generations = max(0, trials // npop - 1)
    init = np.vstack([space.x0[None, :], _latin(space, npop - 1, seed, spread)])

    def objective(x):  # only for SciPy's bookkeeping; the rank map evaluates instead
        raise RuntimeError("tune: the objective is evaluated through the rank map")

    differential_evolution(
        objective, list(zip(space.lower, space.upper)), init=init, maxiter=generations,
        updating="deferred", workers=run, polish=False, tol=0.0, atol=0.0,
        rng=np.random.default_rng(seed), mutation=(0.5, 1.0), recombination=0.7)


def search(comm, space: Space, evaluate: Callable[[int, np.ndarray], Trial], *, trials: int,
           seed: int, optimizer: str = "differential_evolution", population: int = 0,
           progress: bool = False, coarse: tuple[Space, Callable] | None = None) -> list[Trial]:
    """All trials of the search (trial 0: the input's point), identical on every rank.
    ``evaluate(index, x)`` makes a :class:`~mpisnap.tuning.crossval.Trial`. ``coarse``: a
    reduced space and its lift to ``space`` (one factor per kind for per-group weights): then
    differential evolution first spends a third of the trials there, and the rest in ``space``
    around the best point so far (:data:`COARSE_SHARE`)."""
    from ..pipeline.timing import progress as bar_of

    history: list[Trial] = []
    seen: dict = {}
    bar = bar_of(trials, progress and comm.rank == 0, desc="trials", unit="trial")
    try:
        run = rank_map(comm, evaluate, history, bar, seen=seen)
        run(None, [space.x0])  # trial 0: the input's weights
        left = trials - 1
        if space.size == 0 or left <= 0:
            return history
        if optimizer == "random" or left < 5:
            run(None, list(_latin(space, left, seed)))
            return history
        if coarse is not None and coarse[0].size and left >= 20:
            first = int(left * COARSE_SHARE)
            _evolve(coarse[0], rank_map(comm, evaluate, history, bar, coarse[1], seen), first,
                    seed, population, INIT_SPREAD)
            space = dataclasses.replace(space, x0=np.asarray(best(history).x, float))
            left = trials - len(history)
            if left >= 5:
                _evolve(space, run, left, seed + 1, population, INIT_SPREAD / 2)
        else:
            _evolve(space, run, left, seed, population, INIT_SPREAD)
        # what the generations leave of the budget: a Latin hypercube close to the best point
        left = trials - len(history)
        if left > 0:
            near = dataclasses.replace(space, x0=np.asarray(best(history).x, float))
            run(None, list(_latin(near, left, seed + 2, INIT_SPREAD / 4)))
        return history
    finally:
        bar.close()


def best(history: list[Trial]) -> Trial:
    """The trial of lowest objective (the earliest among equals)."""
    return min(history, key=lambda t: (t.objective if math.isfinite(t.objective) else math.inf,
                                       t.index))
