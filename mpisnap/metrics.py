"""Error metrics of a fit, computed from per-rank partial sums (no rows are gathered).

Usage (every rank calls the first two; the table is identical on all ranks)::

    sums = partial_sums(shard)              # this rank's rows
    sums = reduce_sums(comm, sums)          # elementwise sum over ranks
    rows = metric_rows(sums, shard.group_names)
    # or, in one call: rows = compute_metrics(comm, shard)

A cell is one (group, weighting, split, kind) combination; ``*ALL`` cells add up the groups.
Residuals are ``r = prediction - truth`` with the truth ``shard.b`` (truth minus reference, energy
per atom); the *Weighted* cells multiply both the residual and the truth by the row weight (so a
group with one weight per kind has the same R² weighted and unweighted, as in FitSNAP).
``mae = Σ|r|/n``, ``rmse = sqrt(Σr²/n)``, ``rsq = 1 - SS_res/SS_tot`` with
``SS_tot = Σ(y - ȳ)²``; when ``SS_tot == 0`` (e.g. a single energy row) rsq is ``-inf`` if
``SS_res > 0`` and ``nan`` if both are 0. Cells without rows are left out of the table.

``SS_tot`` is accumulated without the cancellation of ``Σy² - (Σy)²/n``: each rank contributes
its centred sum of squares and ``n_local·ȳ_local²``; only the spread *between* ranks' means is
recovered by a difference (and is set to 0 below round-off of that difference).

The module also formats the table (:func:`format_metrics`: Markdown like FitSNAP's, CSV,
space-separated, JSON) and reads those files back (:func:`read_metrics`).
"""
from __future__ import annotations

import ast
import csv
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from .results import ROW_KINDS, DesignShard, MetricRow

__all__ = [
    "WEIGHTINGS", "SPLITS", "SUM_FIELDS", "ALL_GROUPS", "METRIC_STYLES",
    "partial_sums", "reduce_sums", "metric_rows", "compute_metrics",
    "format_metrics", "read_metrics",
]

WEIGHTINGS = ("Unweighted", "Weighted")
SPLITS = ("Training", "Testing")
#: The last axis of the partial-sums array: row count, Σ|r|, Σr², Σy, Σ over ranks of the
#: rank's centred Σ(y - ȳ_rank)², and Σ over ranks of n_rank·ȳ_rank².
SUM_FIELDS = ("count", "sum_abs", "sum_sq", "sum_y", "m2_within", "n_mean_sq")
ALL_GROUPS = "*ALL"
METRIC_STYLES = ("MD", "CSV", "SSV", "JSON")
COLUMNS = ("group", "weighting", "split", "kind", "ncount", "mae", "rmse", "rsq")

_NW, _NS, _NK, _NF = len(WEIGHTINGS), len(SPLITS), len(ROW_KINDS), len(SUM_FIELDS)


# -- sums ---------------------------------------------------------------------------------------

def partial_sums(shard: DesignShard) -> np.ndarray:
    """This rank's sums: an array (ngroups, 2 weightings, 2 splits, 3 kinds, 6 :data:`SUM_FIELDS`).

    ``shard.predictions`` must be set (a shard without rows may have none)."""
    ng = len(shard.group_names)
    out = np.zeros((ng, _NW, _NS, _NK, _NF))
    n = shard.nrows
    if n == 0:
        return out
    if shard.predictions is None:
        raise ValueError("partial_sums: the shard has no predictions")
    pred = np.asarray(shard.predictions, dtype=float).reshape(-1)
    b = np.asarray(shard.b, dtype=float).reshape(-1)
    w = np.asarray(shard.w, dtype=float).reshape(-1)
    if not (len(pred) == len(b) == len(w) == len(shard.labels) == n):
        raise ValueError(f"partial_sums: inconsistent shard lengths (A {n}, b {len(b)}, w {len(w)},"
                         f" labels {len(shard.labels)}, predictions {len(pred)})")
    lab = shard.labels
    g = lab["group"].astype(np.int64)
    k = lab["kind"].astype(np.int64)
    s = lab["test"].astype(np.int64)
    if g.min() < 0 or g.max() >= ng:
        raise ValueError(f"partial_sums: group index out of range 0..{ng - 1}")
    if k.min() < 0 or k.max() >= _NK:
        raise ValueError(f"partial_sums: row kind out of range 0..{_NK - 1}")
    cell = (g * _NS + s) * _NK + k
    ncell = ng * _NS * _NK
    count = np.bincount(cell, minlength=ncell).astype(float)
    present = count > 0
    # first row of each cell: a cell whose truth values all equal it has an exactly zero spread
    first = np.zeros(ncell, dtype=np.int64)
    uniq, idx = np.unique(cell, return_index=True)
    first[uniq] = idx
    r0 = pred - b
    for iw, (r, y) in enumerate(((r0, b), (w * r0, w * b))):
        sum_y = np.bincount(cell, y, minlength=ncell)
        mean = np.divide(sum_y, count, out=np.zeros(ncell), where=present)
        m2 = np.bincount(cell, (y - mean[cell]) ** 2, minlength=ncell)
        varies = np.bincount(cell, (y != y[first[cell]]).astype(float), minlength=ncell) > 0
        m2[~varies] = 0.0
        n_mean_sq = np.divide(sum_y * sum_y, count, out=np.zeros(ncell), where=present)
        fields = (count, np.bincount(cell, np.abs(r), minlength=ncell),
                  np.bincount(cell, r * r, minlength=ncell), sum_y, m2, n_mean_sq)
        out[:, iw] = np.stack(fields, axis=-1).reshape(ng, _NS, _NK, _NF)
    return out


def _add(a, b):
    return np.add(a, b)


def reduce_sums(comm, sums: np.ndarray) -> np.ndarray:
    """The elementwise sum of every rank's ``sums`` (identical bits on all ranks).

    The per-rank arrays are gathered (they are small) and added in rank order, so the result does
    not depend on the reduction tree. ``comm`` is an mpi4py communicator or
    :class:`mpisnap.comm.SerialComm`."""
    sums = np.asarray(sums, dtype=float)
    if comm.Get_size() == 1:
        return sums.copy()
    parts = comm.allgather(sums)
    total = np.zeros_like(parts[0])
    for p in parts:
        total = _add(total, p)
    return total


def _ss_tot(c: np.ndarray) -> float:
    """Σ(y - ȳ)² of one reduced cell: the ranks' centred sums plus the spread of their means."""
    count, sy, m2, nm2 = float(c[0]), float(c[3]), float(c[4]), float(c[5])
    between = nm2 - sy * sy / count
    if between <= 8.0 * np.finfo(float).eps * abs(nm2):
        between = 0.0
    return m2 + between


def _row(name: str, wname: str, sname: str, kname: str, count: float, sabs: float, ssq: float,
         ss_tot: float) -> MetricRow:
    if ss_tot > 0:
        rsq = 1.0 - ssq / ss_tot
    elif ssq > 0:
        rsq = -math.inf
    else:
        rsq = math.nan
    return MetricRow(name, wname, sname, kname, int(round(count)), sabs / count,
                     math.sqrt(ssq / count), rsq)


def metric_rows(sums: np.ndarray, group_names: Sequence[str]) -> list[MetricRow]:
    """The metrics table from reduced sums: ``*ALL`` first, then the groups in ``group_names``
    order; within each, Unweighted/Weighted, Training/Testing, Energy/Force/Stress. Cells
    without rows are left out. ``*ALL`` combines the groups' centred sums of squares exactly
    (Chan et al.: ``Σ SS_g + Σ n_g (ȳ_g - ȳ)²``)."""
    sums = np.asarray(sums, dtype=float)
    ng = len(group_names)
    if sums.shape != (ng, _NW, _NS, _NK, _NF):
        raise ValueError(f"metric_rows: sums of shape {sums.shape} do not match "
                         f"{ng} groups")
    per_group: list[list[MetricRow]] = [[] for _ in range(ng)]
    all_rows: list[MetricRow] = []
    for iw, wname in enumerate(WEIGHTINGS):
        for isp, sname in enumerate(SPLITS):
            for ik, kname in enumerate(ROW_KINDS):
                cells = sums[:, iw, isp, ik]
                present = cells[:, 0] > 0
                if not present.any():
                    continue
                ss = np.zeros(ng)
                for g in np.flatnonzero(present):
                    ss[g] = _ss_tot(cells[g])
                    per_group[g].append(_row(str(group_names[g]), wname, sname, kname,
                                             *cells[g, :3], ss[g]))
                n_g, sy_g = cells[present, 0], cells[present, 3]
                n = n_g.sum()
                mean = sy_g.sum() / n
                ss_all = ss[present].sum() + float(np.sum(n_g * (sy_g / n_g - mean) ** 2))
                tot = cells[present].sum(axis=0)
                all_rows.append(_row(ALL_GROUPS, wname, sname, kname, *tot[:3], ss_all))
    return all_rows + [r for rows in per_group for r in rows]


def compute_metrics(comm, shard: DesignShard) -> list[MetricRow]:
    """``metric_rows(reduce_sums(comm, partial_sums(shard)), shard.group_names)`` (collective)."""
    return metric_rows(reduce_sums(comm, partial_sums(shard)), shard.group_names)


# -- formatting and reading ---------------------------------------------------------------------

def _g(x: float) -> str:
    """6 significant digits, as pandas/tabulate print FitSNAP's table."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return format(x, "g")


def _decimal_align(cells: list[str]) -> list[str]:
    ip = [c.split(".", 1)[0] if "." in c else c for c in cells]
    fp = ["." + c.split(".", 1)[1] if "." in c else "" for c in cells]
    wi = max((len(x) for x in ip), default=0)
    wf = max((len(x) for x in fp), default=0)
    return [a.rjust(wi) + f.ljust(wf) for a, f in zip(ip, fp)]


def _markdown(rows: Sequence[MetricRow]) -> str:
    index = [repr((r.group, r.weighting, r.split, r.kind)) for r in rows]
    cols = {
        "ncount": [str(r.ncount) for r in rows],
        "mae": _decimal_align([_g(r.mae) for r in rows]),
        "rmse": _decimal_align([_g(r.rmse) for r in rows]),
        "rsq": _decimal_align([_g(r.rsq) for r in rows]),
    }
    wi = max([len(s) for s in index] + [1])
    widths = {c: max([len(c)] + [len(v) for v in vals]) for c, vals in cols.items()}
    lines = ["| " + " " * wi + " | " + " | ".join(c.rjust(widths[c]) for c in cols) + " |",
             "|:" + "-" * (wi + 1) + "|" + "|".join("-" * (widths[c] + 1) + ":" for c in cols) + "|"]
    for i, idx in enumerate(index):
        lines.append("| " + idx.ljust(wi) + " | "
                     + " | ".join(cols[c][i].rjust(widths[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def format_metrics(rows: Sequence[MetricRow], style: str = "MD") -> str:
    """The table as text: ``MD`` (a Markdown pipe table like FitSNAP's, index column of tuples
    ``('*ALL', 'Unweighted', 'Training', 'Energy')``, values to 6 significant digits), ``CSV``
    and ``SSV`` (one header line with :data:`COLUMNS`, full precision, ``nan``/``inf``/``-inf``
    spelled out) or ``JSON`` (a list of objects with :data:`COLUMNS` keys, full precision,
    non-finite values as ``null``)."""
    style = style.upper()
    if style == "MD":
        return _markdown(rows)
    if style in ("CSV", "SSV"):
        buf = io.StringIO()
        wr = csv.writer(buf, delimiter="," if style == "CSV" else " ", lineterminator="\n")
        wr.writerow(COLUMNS)
        for r in rows:
            wr.writerow([r.group, r.weighting, r.split, r.kind, r.ncount,
                         repr(float(r.mae)), repr(float(r.rmse)), repr(float(r.rsq))])
        return buf.getvalue()
    if style == "JSON":
        return json.dumps([{"group": r.group, "weighting": r.weighting, "split": r.split,
                            "kind": r.kind, "ncount": int(r.ncount), "mae": _json_float(r.mae),
                            "rmse": _json_float(r.rmse), "rsq": _json_float(r.rsq)}
                           for r in rows], indent=1, allow_nan=False) + "\n"
    raise ValueError(f"unknown metrics style {style!r}; choose one of {', '.join(METRIC_STYLES)}")


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def read_metrics(path: str | os.PathLike, style: str | None = None) -> list[MetricRow]:
    """Read a metrics file written by :func:`format_metrics` (style from the extension when not
    given: ``.md``, ``.csv``, ``.json``, anything else space-separated). FitSNAP's own Markdown
    files (index tuples without the split) are read with split ``Training``."""
    path = os.fspath(path)
    if style is None:
        ext = os.path.splitext(path)[1].lower()
        style = {".md": "MD", ".csv": "CSV", ".json": "JSON"}.get(ext, "SSV")
    style = style.upper()
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    rows: list[MetricRow] = []
    if style == "JSON":
        for d in json.loads(text):
            rows.append(MetricRow(d["group"], d["weighting"], d["split"], d["kind"],
                                  int(d["ncount"]), _num(d["mae"]), _num(d["rmse"]),
                                  _num(d["rsq"])))
        return rows
    if style in ("CSV", "SSV"):
        rd = csv.reader(io.StringIO(text), delimiter="," if style == "CSV" else " ")
        header = next(rd)
        for rec in rd:
            if not rec:
                continue
            d = dict(zip(header, rec))
            rows.append(MetricRow(d["group"], d["weighting"], d["split"], d["kind"],
                                  int(d["ncount"]), float(d["mae"]), float(d["rmse"]),
                                  float(d["rsq"])))
        return rows
    if style == "MD":
        lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        for ln in lines[2:]:
            cells = [c.strip() for c in ln.strip("|").split("|")]
            try:
                key = ast.literal_eval(cells[0])
            except (ValueError, SyntaxError):
                key = None
            if not isinstance(key, tuple) or len(key) not in (3, 4):
                raise ValueError(f"{path}: cannot read the index cell {cells[0]!r}")
            group, weighting, split, kind = key if len(key) == 4 else (key[0], key[1], "Training", key[2])
            vals = dict(zip(header[1:], cells[1:]))
            rows.append(MetricRow(group, weighting, split, kind, int(float(vals["ncount"])),
                                  float(vals["mae"]), float(vals["rmse"]), float(vals["rsq"])))
        return rows
    raise ValueError(f"unknown metrics style {style!r}; choose one of {', '.join(METRIC_STYLES)}")
