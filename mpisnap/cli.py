"""The ``mpisnap`` command line: ``mpisnap fit INPUT``, ``mpisnap plugins``, ``mpisnap --version``.

Errors, the same for every verb:

* a user-caused error — bad input file, settings, data or plugin names, unusable output paths,
  and any :class:`OSError` (disk full, name too long, not a directory, permission denied; printed
  as ``path: reason``) — prints one line ``mpisnap: error: ...`` and exits with status 2;
* any other exception is a bug: one line ``mpisnap: internal error: Type: message (run with
  --debug for the traceback)``, status 1;
* ``--debug`` (every verb) prints the traceback as well;
* SIGINT (Ctrl-C) or SIGTERM: ``mpisnap: interrupted``, status 130.

Under MPI the message is printed once per job and every rank ends: an error every rank raised
together (:func:`mpisnap.comm.agree`) is printed by rank 0 and each rank exits by itself; an
error of one rank alone is printed by that rank, which then aborts the job (``MPI_Abort``; the
launcher adds its own notice). Rank 0 prints at once, other ranks after a short grace period, so
that an error all ranks hit at the same point (without agreeing on it) is printed once, by
rank 0, whose abort ends the others first.

A new verb lives in its own module, listed in :data:`VERBS`: the module has ``HELP`` and
``DESCRIPTION`` (strings), ``add_arguments(parser)`` (the verb's own arguments; the parser already
has :func:`job_options`: ``--set``, ``--output-dir``, ``--threads``, ``-q``, ``--debug``) and
``run(args, comm) -> int``, which calls :func:`start_job` first; :func:`main` applies the error
contract to it. Keep the module light (it is imported to build the parser).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Callable, Sequence

from .errors import Collective, is_user_error, one_line

#: Seconds a non-zero rank waits before printing an error of its own (see the module docstring).
GRACE = 1.0

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def _launcher_rank() -> int:
    """This process's rank as the MPI launcher says (0 when not launched), without MPI."""
    for var in _RANK_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors, ``--help`` and ``--version`` are printed by rank 0 only under mpiexec."""

    def _print_message(self, message, file=None):
        if _launcher_rank() == 0:
            super()._print_message(message, file)


def _common_options() -> argparse.ArgumentParser:
    """The options of every verb."""
    c = _Parser(add_help=False)
    c.add_argument("--debug", action="store_true",
                   help="on an error, print the traceback too")
    return c


#: Verbs defined in their own modules (see the module docstring), by name.
VERBS: dict[str, str] = {
    "learn": "mpisnap.learning.cli",
    "generate": "mpisnap.generation.cli",
    "tune": "mpisnap.tuning.cli",
}


def job_options() -> argparse.ArgumentParser:
    """The options of every verb that runs a job on an input file (fit, generate, tune, learn):
    --set, --output-dir, --threads, -q, --no-progress and the common ones."""
    j = _Parser(add_help=False, parents=[_common_options()])
    j.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.key=value",
                   help="override an input-file setting (repeatable), e.g. --set SOLVER.solver=RIDGE")
    j.add_argument("--output-dir", default=".", help="folder for the output files (default: .)")
    j.add_argument("--threads", type=int, default=None,
                   help="threads per process for every thread pool: OpenMP, BLAS (default: "
                        "OMP_NUM_THREADS, else the node's cores divided by its MPI ranks)")
    j.add_argument("-q", "--quiet", action="store_true", help="only errors")
    j.add_argument("--no-progress", action="store_true", help="no progress bar")
    return j


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog="mpisnap",
        description="Fit SNAP interatomic potentials (FitSNAP-compatible inputs) and write "
                    "LAMMPS files.")
    p.add_argument("--version", action="version", version=f"mpisnap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    f = sub.add_parser("fit", parents=[job_options()],
                       help="fit a potential from a FitSNAP input file",
                       description="Fit a potential from a FitSNAP input file (*.in). Run under "
                                   "mpiexec for MPI parallelism.")
    f.add_argument("input", help="FitSNAP input file")
    f.add_argument("--store", metavar="PATH", default=None,
                   help="also write the sharded design matrix to an HDF5 descriptor store")
    f.add_argument("--from-store", metavar="PATH", default=None,
                   help="refit from a descriptor store (new weights, split or solver; no "
                        "descriptors computed)")
    f.set_defaults(run=_cmd_fit)
    import importlib

    for name, module in VERBS.items():
        mod = importlib.import_module(module)
        v = sub.add_parser(name, parents=[job_options()], help=mod.HELP,
                           description=mod.DESCRIPTION)
        mod.add_arguments(v)
        v.set_defaults(run=mod.run)
    pl = sub.add_parser("plugins", parents=[_common_options()],
                        help="list the installed plugins",
                        description="List the installed plugins (built-in and third-party) by "
                                    "family.")
    pl.set_defaults(run=_cmd_plugins)
    return p


def _cmd_plugins(args, comm) -> int:
    from .plugin_manager import build_registry, get_plugin_manager

    reg = build_registry(get_plugin_manager())
    if comm.rank != 0:
        return 0
    from .records import ModelForm, SettingsSection, Solver

    for family in ("model_forms", "solvers", "readers", "writers", "reference_potentials",
                   "settings_sections"):
        print(f"{family.replace('_', ' ')}:")
        for rec in reg.all(family):
            provider = reg.providers[(family, rec.name.lower())]
            extra = ""
            if isinstance(rec, Solver):
                extra = f" [{', '.join(sorted(rec.kinds))}]"
            elif isinstance(rec, ModelForm):
                extra = f" ({rec.kind})"
            elif isinstance(rec, SettingsSection) and rec.verb:
                extra = f" (verb {rec.verb})"
            print(f"  {rec.name:<14}{extra} {rec.description}  <{provider}>")
    return 0


def show_progress(args) -> bool:
    """Whether a job verb shows progress bars: on a terminal, unless ``-q`` or
    ``--no-progress``."""
    return not (args.no_progress or args.quiet) and sys.stderr.isatty()


def start_job(args) -> None:
    """What every job verb does first: log to stderr (errors only with ``-q``) and check
    ``--threads``."""
    level = logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")


def _cmd_fit(args, comm) -> int:
    from .pipeline import fit

    start_job(args)
    # every thread pool of each rank (OpenMP, BLAS, PyTorch) follows one number: --threads, else
    # OMP_NUM_THREADS, else the node's cores divided by its ranks (mpisnap.threads)
    result = fit(args.input, overrides=args.overrides, output_dir=args.output_dir, comm=comm,
                 threads=args.threads, store=args.store, from_store=args.from_store,
                 progress=show_progress(args))
    if comm.rank == 0 and not args.quiet:
        print(_summary(result))
    return 0


def _summary(result) -> str:
    lines = ["mpisnap fit done: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())]
    lines.append(f"{'':10s}{'ncount':>10s}{'MAE':>14s}{'RMSE':>14s}  (training, unweighted, *ALL)")
    for kind, unit in (("Energy", "eV/atom"), ("Force", "eV/A"), ("Stress", "bar")):
        try:
            m = result.metric("*ALL", "Unweighted", "Training", kind)
        except KeyError:
            continue
        if m.ncount:
            lines.append(f"{kind:<10s}{m.ncount:>10d}{m.mae:>14.6g}{m.rmse:>14.6g}  {unit}")
    for f in result.files:
        lines.append(f"wrote {f}")
    return "\n".join(lines)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _message(exc: BaseException, where: str = "") -> tuple[str, int]:
    """The one line for ``exc`` (``where``: e.g. " (rank 3)") and the exit status."""
    if isinstance(exc, KeyboardInterrupt):
        return "mpisnap: interrupted", 130
    if is_user_error(exc):
        return f"mpisnap: error{where}: {one_line(exc)}", 2
    return (f"mpisnap: internal error{where}: {one_line(exc)} (run with --debug for the "
            f"traceback)", 1)


def _report(exc: BaseException, comm, debug: bool) -> int:
    """Print ``exc`` once per job (see the module docstring) and end this rank: the exit status,
    or ``comm.Abort`` under MPI when the other ranks do not know about the error."""
    rank, size = (comm.rank, comm.size) if comm is not None else (0, 1)

    def emit(text: str) -> None:
        if debug and not isinstance(exc, KeyboardInterrupt):
            traceback.print_exception(exc, file=sys.stderr)
        print(text, file=sys.stderr, flush=True)

    line, status = _message(exc)
    if size == 1:
        emit(line)
        return status
    if isinstance(exc, Collective):  # every rank raised it: rank 0 prints, each rank exits
        if rank == 0:
            emit(line)
        elif debug and exc.__cause__ is not None:  # the failing rank shows where it failed
            traceback.print_exception(exc, file=sys.stderr)
            sys.stderr.flush()
        return status
    if rank != 0:
        if _in_main_thread():  # a second Ctrl-C or SIGTERM must not cut the report short
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
        time.sleep(GRACE)  # rank 0 may be reporting the same error; its abort ends us first
        line, status = _message(exc, f" (rank {rank})")
    emit(line)
    comm.Abort(status)
    return status


def _terminate(signum, frame):  # SIGTERM (e.g. from mpiexec or a batch system): stop cleanly
    raise KeyboardInterrupt


def _start_plot_helper(argv: Sequence[str]) -> None:
    """For ``mpisnap fit`` (not ``--help``), start the parity plot's helper process first thing,
    so that it imports matplotlib while this process imports numpy, the core and the pipeline
    and fits (the parity writer uses it: :func:`mpisnap.plot_process.current`). Nothing is started
    where the helper cannot help (:func:`mpisnap.plot_process.can_help`)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] != "fit" or any(a in ("-h", "--help", "--version") for a in argv):
        return
    from .plot_process import start_early  # the standard library only

    start_early()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb with the error contract of the module docstring; returns the exit status."""
    _start_plot_helper(sys.argv[1:] if argv is None else list(argv))
    args = _parser().parse_args(argv)
    run: Callable = args.run
    comm = None
    previous = {}
    if _in_main_thread():
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGTERM, _terminate)
    try:
        from .comm import world

        comm = world()
        return run(args, comm)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the contract covers every exception
        return _report(exc, comm, getattr(args, "debug", False))
    finally:
        if previous:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
