"""Built-in output writers: the LAMMPS potential files, the metrics table, the design-matrix dumps
and the parity plot. Every file is written atomically (:mod:`mpisnap.io`); every ``write``
returns the paths it wrote. Writers run on rank 0 only.

* ``snap`` (``[OUTFILE] output_style = SNAP``): ``<potential>.snapcoeff``, ``<potential>.snapparam``
  and ``<potential>.mod`` (the ``pair_style``/``pair_coeff`` lines, with the reference potential
  as ``hybrid/overlay``), in the formats LAMMPS ``pair_style snap`` reads. The files are
  formatted and written by :func:`mpisnap.potential.write_snap_potential` (where they are read
  back, too); this plugin only adapts a fit result to it.
* ``metrics`` (always): the table of :mod:`mpisnap.metrics` as ``[OUTFILE] metrics`` in
  ``metrics_style`` MD, CSV, SSV or JSON.
* ``dumps`` (any ``[EXTRAS] dump_*``): ``.npy`` files of A, b, w and the per-row table, and
  ``<potential>_design.h5`` with all of them.
* ``parity`` (always; nothing when there are no predictions): ``<potential>_parity.png``, drawn
  by :mod:`mpisnap.plugins.parity_plot`: in the helper process of :mod:`mpisnap.plot_process`
  when the run started one (a fit, tune or learn run that writes files, serial, matplotlib not
  yet imported; ``MPISNAP_PLOT_PROCESS=0`` turns it off), which imports matplotlib while the fit
  runs, else in this process.

``<potential>`` may contain a folder part; all names are relative to the output directory.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from mpisnap import plot_process, potential
from mpisnap.hookspecs import hookimpl
from mpisnap.io import atomic_path, atomic_write
from mpisnap.potential import coefficient_labels
from mpisnap.records import Writer
from mpisnap.results import LABEL_DTYPE, ROW_KINDS

from . import parity_plot
from .parity_plot import parity_figure as _parity_figure  # noqa: F401 (tests draw with it)

__all__ = [
    "mpisnap_writers", "coefficient_labels", "snapcoeff_text", "snapparam_text", "mod_text",
    "metrics_path", "row_table", "ROW_TABLE_DTYPE", "write_snap", "write_metrics", "write_dumps",
    "write_parity",
]

#: The per-row table of the dumps: the labels, then truth (b), prediction (NaN when unknown) and
#: the row weight.
ROW_TABLE_DTYPE = np.dtype(LABEL_DTYPE.descr + [("truth", np.float64), ("prediction", np.float64),
                                                ("weight", np.float64)])
UNITS = {"Energy": "eV/atom", "Force": "eV/Å", "Stress": "bar"}
_METRICS_EXT = {"MD": ".md", "CSV": ".csv", "SSV": ".txt", "JSON": ".json"}


def _version() -> str:
    import mpisnap
    return str(getattr(mpisnap, "__version__", "unknown"))


def _flag(x) -> int:
    return int(bool(x))


# -- .snapcoeff / .snapparam / .mod: formatted and written by mpisnap.potential -----------------

def snapcoeff_text(descriptor, blocks: dict[str, np.ndarray], comment: str = "") -> str:
    """The ``.snapcoeff`` text of ``descriptor`` with coefficient ``blocks`` (see
    :func:`mpisnap.potential.snapcoeff_text`; labels from :func:`coefficient_labels`)."""
    return potential.snapcoeff_text(descriptor.elements, descriptor.radelem, descriptor.wj,
                                    blocks, labels=coefficient_labels(descriptor),
                                    comment=comment)


def snapparam_text(descriptor, comment: str = "") -> str:
    """The ``.snapparam`` text of ``descriptor`` (see :func:`mpisnap.potential.snapparam_text`)."""
    return potential.snapparam_text(potential.descriptor_parameters(descriptor), comment=comment)


def _reference_lines(reference) -> dict[str, Any]:
    """``[REFERENCE]`` (or None) as the reference arguments of :mod:`mpisnap.potential`."""
    if reference is None:
        return {"reference_style": None, "reference_coeffs": ()}
    return {"reference_style": getattr(reference, "pair_style", None),
            "reference_coeffs": tuple(getattr(reference, "pair_coeffs", ()) or ())}


def _mod_comment(elements: Sequence[str]) -> str:
    return (f"mpisnap {_version()} SNAP potential for {' '.join(elements)}\n"
            "file paths are relative to the folder the fit wrote them to")


def mod_text(reference, coeff_file: str, param_file: str, elements: Sequence[str]) -> str:
    """The ``.mod`` file (LAMMPS ``include``-able) with ``[REFERENCE]`` overlaid."""
    return potential.mod_text(coeff_file, param_file, elements, comment=_mod_comment(elements),
                              **_reference_lines(reference))


def _blocks(model, coefficients) -> dict[str, np.ndarray]:
    d = model.descriptor
    blocks = model.coefficient_blocks(coefficients)
    out = {}
    for el in d.elements:
        if el not in blocks:
            raise ValueError(f"coefficient_blocks has no block for element {el!r}")
        c = np.asarray(blocks[el], dtype=float).reshape(-1)
        if c.size != int(d.nvalues) + 1:
            raise ValueError(f"coefficient block of {el} has {c.size} values, expected "
                             f"1 + nvalues = {int(d.nvalues) + 1}")
        if not np.all(np.isfinite(c)):
            raise ValueError(f"coefficient block of {el} has non-finite values: the fit failed")
        out[el] = c
    return out


def _potential_paths(settings, output_dir: str) -> tuple[str, str]:
    """(absolute-ish base path of the potential files, the same as written in the .mod)."""
    base = os.path.join(output_dir, settings.outfile.potential)
    if os.path.isabs(settings.outfile.potential):
        return base, os.path.abspath(base)
    return base, os.path.normpath(settings.outfile.potential)


def write_snap(result, output_dir: str) -> list[str]:
    """``<potential>.snapcoeff``, ``.snapparam`` and ``.mod`` through
    :func:`mpisnap.potential.write_snap_potential` (nothing for a model without
    ``coefficient_blocks``, e.g. a neural network)."""
    model = result.model
    if not hasattr(model, "coefficient_blocks"):
        return []
    d = model.descriptor
    base, rel = _potential_paths(result.settings, output_dir)
    return potential.write_snap_potential(
        base, d, _blocks(model, result.coefficients), names_as=rel,
        mod_comment=_mod_comment(d.elements), **_reference_lines(result.settings.reference))


# -- metrics ----------------------------------------------------------------------------------------

def metrics_path(settings, output_dir: str) -> str:
    """``[OUTFILE] metrics`` in ``output_dir``, with the style's extension added when the name
    has none (``.md``, ``.csv``, ``.txt`` for SSV, ``.json``)."""
    name = settings.outfile.metrics
    style = settings.outfile.metrics_style.upper()
    if not os.path.splitext(name)[1]:
        name += _METRICS_EXT.get(style, ".txt")
    return os.path.join(output_dir, name)


def write_metrics(result, output_dir: str) -> list[str]:
    from mpisnap.metrics import format_metrics

    path = metrics_path(result.settings, output_dir)
    text = format_metrics(result.metrics or [], result.settings.outfile.metrics_style)
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(text)
    return [path]


# -- dumps ----------------------------------------------------------------------------------------

def row_table(shard) -> np.ndarray:
    """The per-row table (:data:`ROW_TABLE_DTYPE`) of a design shard."""
    t = np.zeros(shard.nrows, dtype=ROW_TABLE_DTYPE)
    for name in LABEL_DTYPE.names:
        t[name] = shard.labels[name]
    t["truth"] = shard.b
    t["weight"] = shard.w
    t["prediction"] = np.nan if shard.predictions is None else shard.predictions
    return t


def _design_column_labels(model, ncols: int) -> list[str]:
    names = getattr(model, "column_names", None)
    if callable(names):
        try:
            names = names()
        except Exception:  # noqa: BLE001 - labels are decoration only
            names = None
    if names is not None and len(names) == ncols:
        return [str(n) for n in names]
    d = getattr(model, "descriptor", None)
    if d is not None:
        block = coefficient_labels(d)
        const = [] if _flag(d.bzeroflag) else ["1"]
        out = [f"{el}:{lab}" for el in d.elements for lab in const + block]
        if len(out) == ncols:
            return out
    return [f"col{i}" for i in range(ncols)]


def _save_npy(path: str, arr: np.ndarray) -> str:
    with atomic_write(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    return path


def _dataframe_name(name: str) -> str:
    return name if name.endswith(".npy") else name + ".npy"


def write_dumps(result, output_dir: str) -> list[str]:
    """``[EXTRAS] dump_descriptors``/``dump_truth``/``dump_weights``: A, b, w as ``.npy`` under
    the ``[OUTFILE]`` names; ``dump_dataframe``: the per-row table as ``<dataframe>.npy`` (``.npy``
    appended unless present) and ``<potential>_design.h5`` with datasets ``A``, ``b``, ``w``,
    ``labels``, ``predictions``, ``config_names``, ``group_names`` and attributes
    ``column_labels``, ``row_kinds``, ``mpisnap_version``, ``has_predictions``.

    In a parallel run rank 0 holds every rank's per-row table but not the design matrix (no
    rank ever gathers it): b, w and the row table are written, A is left out (``shard.A`` is None;
    the descriptor store keeps A per rank)."""
    shard = result.shard
    if shard is None:
        return []
    of, ex = result.settings.outfile, result.settings.extras
    files: list[str] = []
    if ex.dump_descriptors and shard.A is not None:
        files.append(_save_npy(os.path.join(output_dir, of.descriptors), np.asarray(shard.A)))
    if ex.dump_truth:
        files.append(_save_npy(os.path.join(output_dir, of.truth), np.asarray(shard.b)))
    if ex.dump_weights:
        files.append(_save_npy(os.path.join(output_dir, of.weights), np.asarray(shard.w)))
    if ex.dump_dataframe:
        table = row_table(shard)
        files.append(_save_npy(os.path.join(output_dir, _dataframe_name(of.dataframe)), table))
        files.append(_write_h5(result, shard, os.path.join(output_dir, of.potential + "_design.h5")))
    return files


def shard_ncols(result, A) -> int:
    """Design-matrix width: from A when present, else from the model."""
    return A.shape[1] if A is not None else int(getattr(result.model, "ncols", 0))


def _write_h5(result, shard, path: str) -> str:
    import h5py

    A = None if shard.A is None else np.asarray(shard.A, dtype=float)
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h:
            if A is not None:
                h.create_dataset("A", data=A)
            h.create_dataset("b", data=np.asarray(shard.b, dtype=float))
            h.create_dataset("w", data=np.asarray(shard.w, dtype=float))
            h.create_dataset("labels", data=np.asarray(shard.labels, dtype=LABEL_DTYPE))
            pred = (np.full(shard.nrows, np.nan) if shard.predictions is None
                    else np.asarray(shard.predictions, dtype=float))
            h.create_dataset("predictions", data=pred)
            h.create_dataset("config_names", data=list(shard.config_names), dtype=str_dt)
            h.create_dataset("group_names", data=list(shard.group_names), dtype=str_dt)
            h.attrs.create("column_labels",
                           data=_design_column_labels(result.model, shard_ncols(result, A)),
                           dtype=str_dt)
            h.attrs.create("row_kinds", data=list(ROW_KINDS), dtype=str_dt)
            h.attrs["mpisnap_version"] = _version()
            h.attrs["has_predictions"] = shard.predictions is not None
            d = getattr(result.model, "descriptor", None)
            if d is not None:
                h.attrs.create("elements", data=list(d.elements), dtype=str_dt)
    return path


# -- parity plot ----------------------------------------------------------------------------------

_MAX_POINTS = 60000


def _rmse_title(result, shard, kind_index: int) -> str:
    kind = ROW_KINDS[kind_index]
    parts = []
    for split, is_test in (("train", False), ("test", True)):
        val = None
        for m in result.metrics or ():
            if (m.group, m.weighting, m.split, m.kind) == (
                    "*ALL", "Unweighted", "Testing" if is_test else "Training", kind):
                val = m.rmse
        if val is None:
            sel = (shard.labels["kind"] == kind_index) & (shard.labels["test"] == is_test)
            if not sel.any():
                continue
            r = np.asarray(shard.predictions)[sel] - np.asarray(shard.b)[sel]
            val = float(np.sqrt(np.mean(r * r)))
        parts.append(f"{split} {val:.3g}")
    return f"{kind}: RMSE " + ", ".join(parts) + f" {UNITS[kind]}" if parts else kind


def _parity_spec(result) -> dict | None:
    """What the parity plot shows, as plain numbers and strings (so that the plot process can
    draw it): per row kind present, the drawn rows' truth, prediction, group and split (at most
    _MAX_POINTS, a fixed random subset), axis unit and title; the legend's entries. None without
    predictions."""
    shard = result.shard
    if shard is None or shard.predictions is None or shard.nrows == 0:
        return None
    lab = shard.labels
    pred = np.asarray(shard.predictions, dtype=float).reshape(-1)
    truth = np.asarray(shard.b, dtype=float).reshape(-1)
    kinds = [k for k in range(len(ROW_KINDS)) if np.any(lab["kind"] == k)]
    if not kinds:
        return None
    rng = None  # made on first use: numpy.random's import costs a small fit ~0.05 s
    panels, legend = [], {}
    for k in kinds:
        idx = np.flatnonzero(lab["kind"] == k)
        ntot = idx.size
        if ntot > _MAX_POINTS:
            rng = np.random.default_rng(0) if rng is None else rng
            idx = np.sort(rng.choice(idx, _MAX_POINTS, replace=False))
        x, y = truth[idx], pred[idx]
        fin = np.isfinite(x) & np.isfinite(y)
        group, test = lab["group"][idx][fin].astype(np.int64), lab["test"][idx][fin].astype(bool)
        for g, t in sorted(set(zip(group.tolist(), test.tolist()))):
            legend.setdefault((g, t), str(shard.group_names[g]) + (" (test)" if t else ""))
        title = _rmse_title(result, shard, k)
        if idx.size < ntot:
            title += f"\n({idx.size} of {ntot} rows shown)"
        panels.append({"x": x[fin], "y": y[fin], "group": group, "test": test,
                       "unit": UNITS[ROW_KINDS[k]], "title": title})
    return {"panels": panels, "legend": [(g, t, name) for (g, t), name in legend.items()],
            "ngroups": len(shard.group_names)}


def write_parity(result, output_dir: str) -> list[str]:
    """``<potential>_parity.png``: predicted vs truth (minus reference) per row kind, coloured by
    group, training ``o`` and testing ``x``; at most 60000 points per panel are drawn (a fixed
    random subset). Nothing without predictions. matplotlib is used without pyplot (the global
    backend is left alone)."""
    spec = _parity_spec(result)
    if spec is None:
        return []
    path = os.path.join(output_dir, result.settings.outfile.potential + "_parity.png")
    helper = plot_process.current()  # started where the run began (plot_process.start_early)
    with atomic_path(path) as tmp:  # by the helper process when there is one, else here
        if not (helper and helper.call(parity_plot.DRAW, spec, tmp)):
            parity_plot.draw(spec, tmp)
    return [path]


def _enabled_snap(settings) -> bool:
    return str(settings.outfile.output_style).upper() == "SNAP"


def _enabled_dumps(settings) -> bool:
    ex = settings.extras
    return bool(ex.dump_descriptors or ex.dump_truth or ex.dump_weights or ex.dump_dataframe)


@hookimpl
def mpisnap_writers():
    return [
        Writer("snap", write_snap, _enabled_snap,
               "LAMMPS pair_style snap files: <potential>.snapcoeff, .snapparam, .mod"),
        Writer("metrics", write_metrics, lambda settings: True,
               "metrics table ([OUTFILE] metrics, metrics_style MD/CSV/SSV/JSON)"),
        Writer("dumps", write_dumps, _enabled_dumps,
               "[EXTRAS] dump_*: A, b, w and the per-row table as .npy, <potential>_design.h5"),
        Writer("parity", write_parity, lambda settings: True,
               "<potential>_parity.png: predicted vs truth per row kind"),
    ]
