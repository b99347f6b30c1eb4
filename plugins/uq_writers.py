"""The uncertainty outputs of a fit with a Bayesian solver (``[SOLVER] solver = BAYES`` or
``ANL``), a built-in writer plugin. Nothing is written for other fits. Files, relative to the
output directory (``<metrics stem>``: ``[OUTFILE] metrics`` without its extension)::

    <metrics stem>_uq.md            noise per kind, calibration, coverage and NLL per group/kind
    <metrics stem>_uq.json          the same, machine-readable
    <potential>_uq_reliability.png  observed against nominal coverage, raw and calibrated
    <potential>_uq.h5               posterior, noise, calibration, per-row and per-configuration
                                    tables (mpisnap.Calculator reads it beside the .mod)
    <potential>_sample<k>.snapcoeff / .mod   [UQ] nsamples posterior samples (k = 0 … K−1)

Formats are documented in :mod:`mpisnap.uq.report`, :mod:`mpisnap.uq.store` and
:mod:`mpisnap.uq.ensembles`; every file is written atomically.
"""
from __future__ import annotations

import os

from mpisnap.hookspecs import hookimpl
from mpisnap.io import atomic_path, atomic_write
from mpisnap.records import Writer

__all__ = ["mpisnap_writers", "write_uq"]


def write_uq(result, output_dir: str) -> list[str]:
    uq = getattr(result, "uq", None)
    if uq is None:
        return []
    from mpisnap.uq import ensembles, report, store

    s = result.settings
    stem = os.path.join(output_dir, os.path.splitext(s.outfile.metrics)[0])
    base = os.path.join(output_dir, s.outfile.potential)
    summary = uq.summary()
    files = []
    with atomic_write(stem + "_uq.md", encoding="utf-8") as fh:
        fh.write(report.markdown(summary))
    files.append(stem + "_uq.md")
    with atomic_write(stem + "_uq.json", encoding="utf-8") as fh:
        fh.write(report.json_text(summary))
    files.append(stem + "_uq.json")
    png = base + "_uq_reliability.png"
    with atomic_path(png) as tmp:
        report.reliability_plot(tmp, summary)
    files.append(png)
    files.append(store.write_uq_file(base + "_uq.h5", result))
    files += ensembles.write_samples(result, output_dir, uq.options.nsamples, uq.options.seed)
    return files


@hookimpl
def mpisnap_writers():
    return [Writer("uq", write_uq, description="uncertainty report, reliability plot, "
                   "<potential>_uq.h5 and posterior sample potentials (Bayesian solvers)")]
