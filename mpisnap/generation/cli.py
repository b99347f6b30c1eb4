"""``mpisnap generate INPUT``: the command-line verb (see :mod:`mpisnap.cli`)."""
from __future__ import annotations

HELP = "generate a training set by descriptor-entropy maximisation"
DESCRIPTION = (
    "Generate training structures whose per-atom SNAP descriptors have maximal entropy, from the "
    "[BISPECTRUM] and [GENERATE] sections of INPUT (the other sections are not read). Writes "
    "generated.extxyz, with an oracle the labelled structures as FitSNAP JSON in "
    "JSON/Generated/, the entropy per iteration (generate_entropy.csv) and a summary plot. Run "
    "under mpiexec to spread the structures over ranks.")


def add_arguments(parser) -> None:
    parser.add_argument("input", help="input file with [BISPECTRUM] and [GENERATE]")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in the output directory (labels "
                             "already made are not made again)")


def run(args, comm) -> int:
    from ..cli import show_progress, start_job
    from .driver import generate

    start_job(args)
    result = generate(args.input, overrides=args.overrides, output_dir=args.output_dir,
                      comm=comm, threads=args.threads, resume=args.resume,
                      progress=show_progress(args))
    if comm.rank == 0 and not args.quiet:
        h0, h1 = result.history[0], result.history[-1]
        print(f"mpisnap generate done: {len(result.structures)} structures in "
              f"{result.timings['total']:.2f} s; entropy (Kozachenko-Leonenko) {h0['kl']:.4g} -> "
              f"{h1['kl']:.4g} nats; shortest distance {h1['min_distance']:.4g} A")
        if result.replaced:
            print(f"replaced after failed labels: {len(result.replaced)} structure(s)")
        for f in result.files:
            print(f"wrote {f}")
    return 0
