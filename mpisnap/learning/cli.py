"""``mpisnap learn INPUT``: the command-line verb (see :mod:`mpisnap.cli`)."""
from __future__ import annotations

HELP = "active learning: label the structures the potential is least sure of, refit, repeat"
DESCRIPTION = (
    "Active learning from the fit of INPUT (its [PATH]/[GROUPS] data is the starting training "
    "set) and its [LEARN] section: candidates from a pool of unlabelled structures and/or MD "
    "with the current potential, batches chosen from the Bayesian posterior (ivar, dopt, "
    "maxstd or random), labelled by an oracle (any ASE calculator, or LAMMPS) and folded into "
    "the fit incrementally, until a stop rule holds (budget, stop_std, validation patience). "
    "Writes every label at once (labelled/<group>/*.json), per-round potentials (rounds/), "
    "<stem>_learned.in (refit everything with mpisnap fit), the final potential and the "
    "learning curve (learn_curve.csv, .png). Run under mpiexec to share the pool, MD and "
    "labels over ranks.")


def add_arguments(parser) -> None:
    parser.add_argument("input", help="input file with the starting fit and [LEARN]")
    parser.add_argument("--resume", action="store_true",
                        help="continue the campaign in the output directory (no written label "
                             "is requested again; the result equals an uninterrupted run)")


def run(args, comm) -> int:
    from ..cli import show_progress, start_job
    from .campaign import learn

    start_job(args)
    result = learn(args.input, overrides=args.overrides, output_dir=args.output_dir, comm=comm,
                   threads=args.threads, resume=args.resume,
                   progress=show_progress(args))
    if comm.rank == 0 and not args.quiet:
        last = result.rounds[-1]
        print(f"mpisnap learn done: {len(result.labelled)} labels in {len(result.rounds)} rounds "
              f"(stop: {result.stop}); oracle calls {result.oracle_calls}; largest force σ "
              f"{last['max_std']:.4g} eV/A; {result.timings['total']:.2f} s")
        if result.failed:
            print(f"the oracle failed on {len(result.failed)} structure(s) (skipped)")
        for f in result.files:
            print(f"wrote {f}")
    return 0
