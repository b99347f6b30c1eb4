"""``mpisnap tune INPUT``: the command-line verb (see :mod:`mpisnap.cli`)."""
from __future__ import annotations

HELP = "choose group weights and regularisation by cross-validation, then fit"
DESCRIPTION = (
    "Choose the [GROUPS] weights (and the solver's alpha) of INPUT by K-fold cross-validation "
    "over compressed blocks ([TUNE] section, all keys optional), then fit with them. Writes "
    "<stem>_tuned.in (runnable with mpisnap fit), the tuned potential and metrics as mpisnap fit "
    "writes them, <stem>_tune.md (best trials, weights and CV errors before/after), "
    "<stem>_tune_trials.csv and two plots. Run under mpiexec to spread the trials over ranks.")


def add_arguments(parser) -> None:
    parser.add_argument("input", help="FitSNAP input file (an optional [TUNE] section)")


def _summary(result) -> str:
    b, t = result.baseline, result.best
    lines = [f"mpisnap tune done in {result.timings['total']:.2f} s: {len(result.trials)} "
             f"trials, objective {b.objective:.6g} (input weights) -> {t.objective:.6g} "
             f"(trial {t.index})"]
    units = {"energy": "eV/atom", "force": "eV/A", "stress": "bar"}
    for k, v in t.errors.rmse.items():
        lines.append(f"  CV RMSE {k:<7s} {b.errors.rmse.get(k, float('nan')):12.6g} -> "
                     f"{v:12.6g} {units[k]}")
    if result.input_metrics is not None:
        before = {(m.split, m.kind): m for m in result.input_metrics
                  if m.group == "*ALL" and m.weighting == "Unweighted"}
        for m in result.fit.metrics:
            if m.group == "*ALL" and m.weighting == "Unweighted" and m.split == "Testing":
                p = before.get((m.split, m.kind))
                if p is not None:
                    lines.append(f"  test RMSE {m.kind:<7s} {p.rmse:10.6g} -> {m.rmse:12.6g} "
                                 f"(MAE {p.mae:.6g} -> {m.mae:.6g})")
    for n in result.notices:
        lines.append(f"note: {n}")
    for f in result.files:
        lines.append(f"wrote {f}")
    return "\n".join(lines)


def run(args, comm) -> int:
    from ..cli import show_progress, start_job
    from .driver import tune

    start_job(args)
    result = tune(args.input, overrides=args.overrides, output_dir=args.output_dir, comm=comm,
                  threads=args.threads,
                  progress=show_progress(args))
    if comm.rank == 0 and not args.quiet:
        print(_summary(result))
    return 0
