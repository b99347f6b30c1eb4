"""The training set: which configurations are fitted (train) or only evaluated (test), and with
which weights. The result depends only on the settings and the file names, never on the order of
a directory listing, the number of ranks or the machine.

For each group of ``settings.groups`` (file order):

1. ``reader.list_configs(<dataPath resolved>, group)``, sorted by ``ConfigRef.name``.
2. With ``[GROUPS] random_sampling = 1`` the sorted list is shuffled by
   ``numpy.random.default_rng([random_seed, crc32(group name)]).permutation`` — one generator per
   group, seeded from ``random_seed`` and the group's name, so a group's split does not change when
   other groups are added, removed or reordered. ``random_seed = 0`` is an ordinary seed (FitSNAP
   draws a fresh seed for 0; mpisnap is always reproducible).
3. Sizes (:func:`split_sizes`): a size ≤ 1 is a fraction of the group's ``n`` configurations
   (1.0 takes them all, 0 none, any other fraction ``max(1, floor(f·n + 0.5))``: rounded half up,
   at least one), a size > 1 a count. When two fractions round to more than ``n`` the test set
   gets what is left (``n − n_train``), as in FitSNAP; any other overflow is an error.
4. As in FitSNAP the list is cut ``[train | test | dropped]``: the first ``n_train`` are fitted,
   the next ``n_test`` (the last ones taken) are the test set, the rest are not used.

The entries come back in group order, then by name; the test flag is per entry.

Weights. ``Entry.eweight``/``fweight``/``vweight`` are the group's weights, divided, with
``[GROUPS] smartweights = 1``, by the number of the group's configurations in the entry's split
(train or test). The per-row weights of a configuration with N atoms are
:func:`row_weights` ``(entry, N)``: the energy row gets ``eweight``, each of the 3N force rows
``fweight`` and each of the 6 stress rows ``vweight``, except that with smartweights the force
weight is further divided by 3N and the stress weight by 6 (FitSNAP's rule, spec §1). Weights
multiply rows (``w·(A·β − b)``).

Every weight must be a finite number in ``0 ..`` :data:`MAX_WEIGHT`: weights only matter
relative to each other (scaling them all changes nothing but the penalty balance of RIDGE/LASSO),
and the fit squares weighted values, so a weight above 1e100 times a value near the readers'
sanity bounds (:mod:`mpisnap.records`, at most 1e12) could overflow. A training set whose
training rows all have weight 0 (for the rows ``[CALCULATOR]`` fits) is an error naming the
groups: SVD, RIDGE, LASSO and ARD would return an all-zero potential without complaint.

ESHIFT and reference potentials are applied by the pipeline, not here.
"""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .records import ConfigRef, Reader

__all__ = ["Entry", "MAX_WEIGHT", "row_weights", "split_sizes", "training_set"]

#: The largest accepted group weight (see the module docstring).
MAX_WEIGHT = 1e100


@dataclass(frozen=True)
class Entry:
    """One configuration of the training set.

    ``test``: evaluated only, never fitted. ``eweight``, ``fweight``, ``vweight``: the group's
    weights, already divided by the configuration count of the group's split when
    ``smartweights`` is true. ``smartweights``: the per-row force weight is ``fweight / (3N)``
    and the per-row stress weight ``vweight / 6``; use :meth:`row_weights`.
    """

    ref: ConfigRef
    test: bool
    eweight: float
    fweight: float
    vweight: float
    smartweights: bool = False

    def row_weights(self, natoms: int) -> tuple[float, float, float]:
        """``(energy row, each force row, each stress row)`` weights for ``natoms`` atoms."""
        return row_weights(self, natoms)


def row_weights(entry: Entry, natoms: int) -> tuple[float, float, float]:
    """The weights of ``entry``'s design-matrix rows for a configuration of ``natoms`` atoms:
    ``(w_energy, w_force, w_stress)``, each force row (3N) getting ``w_force`` and each stress row
    (6) ``w_stress``. Without smartweights these are the entry's fields; with smartweights
    the force weight is divided by 3N and the stress weight by 6."""
    if isinstance(natoms, bool) or int(natoms) != natoms or natoms < 1:
        raise ValueError(f"{entry.ref.name}: natoms must be a positive integer, got {natoms!r}")
    if not entry.smartweights:
        return entry.eweight, entry.fweight, entry.vweight
    return entry.eweight, entry.fweight / (3 * int(natoms)), entry.vweight / 6.0


def _is_fraction(size: float) -> bool:
    return size <= 1


def _resolve(size: float, n: int, what: str, group: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)) \
            or not math.isfinite(size) or size < 0:
        raise ValueError(f"group {group!r}: {what} must be a number >= 0, got {size!r}")
    if _is_fraction(size):
        if size == 0 or n == 0:
            return 0
        if size == 1:
            return n
        return max(1, math.floor(size * n + 0.5))
    if size != int(size):
        raise ValueError(f"group {group!r}: {what} {size!r} > 1 is a count of configurations "
                         "and must be a whole number")
    return int(size)


def split_sizes(n: int, training_size: float, testing_size: float,
                group: str = "?") -> tuple[int, int]:
    """``(n_train, n_test)`` for a group of ``n`` configurations (rules in the module docstring).
    Raises ValueError, naming ``group``, when the sizes ask for more than ``n``."""
    n_train = _resolve(training_size, n, "training_size", group)
    n_test = _resolve(testing_size, n, "testing_size", group)
    if n_train + n_test > n:
        if _is_fraction(training_size) and _is_fraction(testing_size):
            n_test = n - n_train  # rounding of two fractions; FitSNAP gives test the rest
        else:
            raise ValueError(
                f"group {group!r}: training_size {training_size} + testing_size {testing_size} "
                f"ask for {n_train} + {n_test} configurations but the group has {n}")
    return n_train, n_test


def _group_rng(seed: int, group: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(group.encode("utf-8"))])


def _input_name(settings: Any) -> str:
    """``"<input file>: "`` as settings errors begin (empty when the settings have no source)."""
    src = getattr(settings, "source", None)
    return f"{os.path.basename(src) or src}: " if isinstance(src, str) and src else ""


def _check_weight(prefix: str, group: str, key: str, value: Any) -> float:
    where = f"{prefix}[GROUPS] {group}: {key}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: expected a number, got {value!r}"[:200])
    w = float(value)
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"{where}: a weight must be a finite number >= 0, got {value!r}")
    if w > MAX_WEIGHT:
        raise ValueError(f"{where}: {w:.6g} is too large (at most "
                         f"1e{math.log10(MAX_WEIGHT):.0f}): weights only matter relative to each "
                         "other, and the fit squares weighted values, which could overflow; "
                         "scale all weights down")
    return w


def _weights(g: Any, count: int, smart: bool, prefix: str = "") -> tuple[float, float, float]:
    w = tuple(_check_weight(prefix, g.name, k, getattr(g, k))
              for k in ("eweight", "fweight", "vweight"))
    if smart and count > 0:
        w = tuple(x / count for x in w)
    return w


def training_set(settings: Any, reader: Reader) -> list[Entry]:
    """The deterministic training set of ``settings`` as read by ``reader`` (a
    :class:`~mpisnap.records.Reader`): a list of :class:`Entry` in group order, then by name.

    Raises ValueError for a missing group (from the reader), duplicate configuration names, or
    group sizes that ask for more configurations than the group has."""
    data_path = settings.resolve(settings.path.dataPath)
    opts = settings.group_options
    smart = bool(opts.smartweights)
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for g in settings.groups:
        refs: Sequence[ConfigRef] = sorted(reader.list_configs(data_path, g.name),
                                           key=lambda r: r.name)
        for r in refs:
            if r.name in seen:
                raise ValueError(f"group {g.name!r}: configuration name {r.name!r} is listed "
                                 f"twice (also in group {seen[r.name]!r})")
            seen[r.name] = g.name
        n = len(refs)
        n_train, n_test = split_sizes(n, g.training_size, g.testing_size, g.name)
        if opts.random_sampling:
            refs = [refs[i] for i in _group_rng(opts.random_seed, g.name).permutation(n)]
        we, wf, wv = _weights(g, n_train, smart, _input_name(settings))
        group_entries = [Entry(r, False, we, wf, wv, smart) for r in refs[:n_train]]
        we, wf, wv = _weights(g, n_test, smart, _input_name(settings))
        group_entries += [Entry(r, True, we, wf, wv, smart)
                          for r in refs[n_train:n_train + n_test]]
        group_entries.sort(key=lambda e: e.ref.name)
        entries += group_entries
    _check_training_weights(settings, entries)
    return entries


_KINDS = (("energy", "eweight"), ("force", "fweight"), ("stress", "vweight"))


def _check_training_weights(settings: Any, entries: Sequence[Entry]) -> None:
    """ValueError, naming the groups, when training entries exist but none of them gives a
    fitted row kind (``[CALCULATOR]`` energy/force/stress) a non-zero weight: the weighted
    training system would be all zero and every solver would return zero coefficients. (No
    training entries at all is reported by the pipeline.)"""
    train = [e for e in entries if not e.test]
    if not train:
        return
    calc = getattr(settings, "calculator", None)
    fitted = [(kind, key) for kind, key in _KINDS if calc is None or getattr(calc, kind, 1)]
    if any(getattr(e, key) > 0 for e in train for _, key in fitted):
        return
    groups = ", ".join(dict.fromkeys(e.ref.group for e in train))
    keys = "/".join(key for _, key in fitted) or "eweight/fweight/vweight"
    rows = ", ".join(kind for kind, _ in fitted) or "no"
    raise ValueError(f"{_input_name(settings)}[GROUPS]: every training row has weight 0 "
                     f"(groups: {groups}; fitted rows: {rows}): nothing would be fitted; set a "
                     f"non-zero {keys} in [GROUPS]")
