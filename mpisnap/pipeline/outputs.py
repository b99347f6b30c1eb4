"""Stage 7, outputs: rank 0 runs the writer plugins into a staging folder and swaps their files
and the run log into place all or nothing (:func:`mpisnap.io.output_transaction`)."""
from __future__ import annotations

import os
import time

import numpy as np

from ..comm import agree
from ..results import FitResult
from .setup import Setup
from .timing import Timer

__all__ = ["finish", "write_outputs", "write_run_log"]


def finish(comm, result: FitResult, setup: Setup, timer: Timer, t_start: float, write: bool,
           output_dir) -> FitResult:
    """Rank 0 runs the writers (all outputs or none); an error there ends every rank
    (:func:`~mpisnap.comm.agree`); every rank gets the total time."""
    if write:
        def outputs():
            if comm.rank != 0:
                return None
            out = os.fspath(output_dir) if output_dir is not None else os.getcwd()
            with timer("outputs"):
                return write_outputs(result, out, setup, t_start)

        files = agree(comm, outputs)
        if comm.rank == 0:
            result.files = files
    result.timings["total"] = time.perf_counter() - t_start
    return result


def write_outputs(result: FitResult, out: str, setup: Setup, t_start: float) -> list[str]:
    """Run the writer plugins into a staging folder inside ``out``, then swap their files (and
    the run log) into place all or nothing (:func:`mpisnap.io.output_transaction`): a failed or
    interrupted run leaves the previous outputs as they were. Returns the final paths."""
    from ..io import output_transaction

    with output_transaction(out) as tx:
        staged: list[str] = []
        for writer in setup.registry.all("writers"):
            if writer.enabled(setup.settings):
                staged += [os.fspath(p) for p in writer.write(result, tx.path)]
        result.files = [tx.final(p) for p in staged]
        staged.append(write_run_log(result, tx.path, setup, time.perf_counter() - t_start))
    return [tx.final(p) for p in staged]


def write_run_log(result: FitResult, output_dir: str, setup: Setup,
                  elapsed: float | None = None) -> str:
    """``<potential>.log``: what ran, on what, stage timings and the headline errors."""
    import json
    import platform

    from .. import __version__
    from .. import _core
    from ..io import atomic_write

    s = result.settings
    lines = [f"mpisnap {__version__} (kernel {_core.kernel_isa()}, python {platform.python_version()})",
             f"input: {s.source}",
             f"model form: {result.model.name} ({len(result.coefficients)} coefficients); solver: "
             f"{setup.solver.name}; reader: {setup.reader.name}; reference: "
             f"{type(setup.reference).__name__ if setup.reference is not None else 'none'}",
             f"rows: {len(result.shard.b) if result.shard is not None else 'not kept'}",
             "stage timings (s):"]
    lines += [f"  {k:<14s} {v:10.3f}" for k, v in result.timings.items()]
    if elapsed is not None:
        lines.append(f"  {'total':<14s} {elapsed:10.3f}")
    info = {k: v for k, v in result.solve_info.items() if np.ndim(v) == 0}
    lines.append("solver info: " + json.dumps(info, default=float))
    lines.append("metrics (*ALL, unweighted, training):")
    for m in result.metrics:
        if m.group == "*ALL" and m.weighting == "Unweighted" and m.split == "Training":
            lines.append(f"  {m.kind:<7s} n={m.ncount} mae={m.mae:.6g} rmse={m.rmse:.6g} rsq={m.rsq:.6g}")
    if result.thread_pools:
        lines.append("threads per rank: " + ", ".join(
            f"{k} {v}" for k, v in sorted(result.thread_pools.items())))
    if s.notices:
        lines.append("notices:")
        lines += [f"  {n}" for n in s.notices]
    lines.append("files: " + " ".join(os.path.basename(f) for f in result.files)
                 + f" {os.path.basename(s.outfile.potential)}.log")
    path = os.path.join(output_dir, s.outfile.potential + ".log")
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path
