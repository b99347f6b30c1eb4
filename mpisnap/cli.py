"""The ``mpisnap`` command line: ``mpisnap fit INPUT``, ``mpisnap plugins``, ``mpisnap --version``.

User errors (bad input files, settings, data, unknown plugin names) print one line and exit with
status 2, without a traceback. Under MPI an error on any rank prints that rank's message once and
ends every rank.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, PermissionError)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog="mpisnap",
        description="Fit SNAP interatomic potentials (FitSNAP-compatible inputs) and write "
                    "LAMMPS files.")
    p.add_argument("--version", action="version", version=f"mpisnap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    f = sub.add_parser("fit", help="fit a potential from a FitSNAP input file",
                       description="Fit a potential from a FitSNAP input file (*.in). Run under "
                                   "mpiexec for MPI parallelism.")
    f.add_argument("input", help="FitSNAP input file")
    f.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.key=value",
                   help="override an input-file setting (repeatable), e.g. --set SOLVER.solver=RIDGE")
    f.add_argument("--output-dir", default=".", help="folder for the output files (default: .)")
    f.add_argument("--threads", type=int, default=None,
                   help="threads per process for every thread pool: OpenMP, BLAS (default: "
                        "OMP_NUM_THREADS, else the node's cores divided by its MPI ranks)")
    f.add_argument("--store", metavar="PATH", default=None,
                   help="also write the sharded design matrix to an HDF5 descriptor store")
    f.add_argument("--from-store", metavar="PATH", default=None,
                   help="refit from a descriptor store (new weights, split or solver; no "
                        "descriptors computed)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub.add_parser("plugins", help="list the installed plugins",
                   description="List the installed plugins (built-in and third-party) by family.")
    return p


def _cmd_plugins() -> int:
    from .plugin_manager import build_registry, get_plugin_manager

    reg = build_registry(get_plugin_manager())
    for family in ("model_forms", "solvers", "readers", "writers", "reference_potentials"):
        print(f"{family.replace('_', ' ')}:")
        for rec in reg.all(family):
            provider = reg.providers[(family, rec.name.lower())]
            extra = f" [{', '.join(sorted(rec.kinds))}]" if hasattr(rec, "kinds") else ""
            extra += f" ({rec.kind})" if hasattr(rec, "kind") else ""
            print(f"  {rec.name:<14}{extra} {rec.description}  <{provider}>")
    return 0


def _cmd_fit(args, comm) -> int:
    from .pipeline import fit

    level = logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    # every thread pool of each rank (OpenMP, BLAS, PyTorch) follows one number: --threads, else
    # OMP_NUM_THREADS, else the node's cores divided by its ranks (mpisnap.threads)
    result = fit(args.input, overrides=args.overrides, output_dir=args.output_dir, comm=comm,
                 threads=args.threads, store=args.store, from_store=args.from_store,
                 progress=not (args.no_progress or args.quiet) and sys.stderr.isatty())
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


def _one_line(exc: BaseException) -> str:
    return " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plugins":
        try:
            return _cmd_plugins()
        except USER_ERRORS as exc:
            print(f"mpisnap: error: {_one_line(exc)}", file=sys.stderr)
            return 2
    import signal

    from .comm import world

    def _terminate(signum, frame):  # SIGTERM (e.g. from mpiexec or a batch system): stop cleanly
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    comm = world()
    try:
        return _cmd_fit(args, comm)
    except KeyboardInterrupt:
        print("mpisnap: interrupted", file=sys.stderr)
        if comm.size > 1:
            comm.Abort(130)
        return 130
    except USER_ERRORS as exc:
        from .pipeline import CollectiveError

        if isinstance(exc, CollectiveError):  # every rank has the message: rank 0 prints it
            if comm.rank == 0:
                print(f"mpisnap: error: {_one_line(exc)}", file=sys.stderr, flush=True)
            return 2
        where = f" (rank {comm.rank})" if comm.size > 1 else ""
        print(f"mpisnap: error{where}: {_one_line(exc)}", file=sys.stderr, flush=True)
        if comm.size > 1:
            comm.Abort(2)
        return 2
    except BaseException:
        if comm.size > 1:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
