"""How much the BAYES calibration leaks because the held-out folds reuse the full fit's
hyper-parameters (mpisnap.uq.fitting.analysis_for): the conformal quantile of the cross-validation
scores per kind, as the fit computes it and with α_k, λ re-optimised without each fold (both the
fold's posterior and its rows' noise from the fold's own hyper-parameters). Serial.

    python scripts/uq_fold_leak.py examples/Cu_EMT/Cu_EMT_bayes.in [SECTION.key=value ...]
"""
import math
import sys
import time

import numpy as np

import mpisnap
import mpisnap.uq.fitting as fitting
from mpisnap.comm import SerialComm
from mpisnap.pipeline.solving import Blocks
from mpisnap.uq.calibration import conformal_quantile
from mpisnap.uq.posterior import KIND_NAMES, leave_one_out, optimise, posterior
from mpisnap.uq.solver import fold_triangles, hyper_of, problem_of


def main(inp, overrides):
    seen = {}
    analysis_for = fitting.analysis_for

    def keep(blocks, sol, coefficients, options):
        seen.update(blocks=blocks, sol=sol, options=options)
        return analysis_for(blocks, sol, coefficients, options)

    fitting.analysis_for = keep
    r = mpisnap.fit(inp, overrides=["UQ.nsamples=0", *overrides], write=False)
    fitting.analysis_for = analysis_for
    blocks, hyper, level = seen["blocks"], hyper_of(seen["sol"].info), seen["options"].level
    problem = problem_of(blocks)
    shard = r.shard
    lab = shard.labels
    kind = lab["kind"].astype(int)
    fold = blocks.folds[lab["config"]]
    held = (~lab["test"]) & (shard.w > 0) & (fold >= 0)
    scores = {k: [] for k in range(3)}
    t0 = time.perf_counter()
    for f in range(blocks.nfolds):
        rest = Blocks({c: s for c, s in blocks.systems.items() if blocks.decode(c)[0] != f},
                      blocks.folds, blocks.nfolds, blocks.log_weight2, blocks.flat)
        hf = optimise(problem_of(rest))[0]
        ratio = ", ".join(f"{KIND_NAMES[k]} {math.sqrt(hyper.alpha[k] / a):.3f}"
                          for k, a in hf.alpha.items())
        print(f"fold {f}: noise σ without the fold / full: {ratio}; λ ratio "
              f"{hf.lam / hyper.lam:.3f}")
        post = posterior(problem, hf, [(1.0, leave_one_out(fold_triangles(problem, blocks,
                                                                          hf))[f])])
        sel = np.flatnonzero(held & (fold == f))
        A = shard.A[sel]
        noise = 1.0 / (np.array([hf.alpha[k] for k in kind[sel]]) * shard.w[sel] ** 2)
        s = np.abs(shard.b[sel] - A @ post.mean) / np.sqrt(post.variance(A) + noise)
        for k in range(3):
            scores[k] += list(s[kind[sel] == k])
    print(f"{blocks.nfolds} more evidence optimisations: {time.perf_counter() - t0:.1f} s "
          f"({blocks.ncols} columns)")
    for k in range(3):
        if scores[k]:
            q = conformal_quantile(SerialComm(), np.array(scores[k]), level)[0]
            change = 100 * (q / r.uq.quantile[k] - 1)
            print(f"{KIND_NAMES[k]:7s} conformal quantile: full-fit hyper-parameters "
                  f"{r.uq.quantile[k]:.4f}, per fold {q:.4f} ({change:+.1f} %)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
