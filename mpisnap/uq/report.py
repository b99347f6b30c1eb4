"""The uncertainty report of a fit: ``<metrics stem>_uq.md`` and ``_uq.json`` (separate from the
FitSNAP-format metrics file, whose columns stay as they are) and the reliability plot
``<potential>_uq_reliability.png`` (observed against nominal coverage of central intervals, raw
and calibrated, per row kind; a calibrated curve on the diagonal is a calibrated model)."""
from __future__ import annotations

import json

__all__ = ["markdown", "json_text", "reliability_plot"]

UNITS = {"energy": "eV/atom", "force": "eV/Å", "stress": "bar"}
_KIND = {"Energy": "energy", "Force": "force", "Stress": "stress"}


def _g(x, fmt=".4g") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(summary: dict) -> str:
    """The Markdown report of a :meth:`mpisnap.uq.analysis.UQResult.summary`."""
    cal = summary["calibration"]
    lines = [f"# Uncertainty ({summary['solver']})", "",
             "Noise per row kind (evidence-optimised; σ of a typical training row's label, the "
             "noise of a new one, ± Laplace standard error; a row of weight w has 1/(w √α)):",
             "", "| kind | noise σ | ± | unit |", "|---|---:|---:|---|"]
    for k, s in summary["noise_std"].items():
        lines.append(f"| {k} | {s:.6g} | {_g(summary['noise_std_error'].get(k))} | "
                     f"{UNITS.get(k, '')} |")
    lines += ["", f"Prior precision λ (standardised columns) {_g(summary['prior_precision'])}, "
              f"effective parameters {_g(summary['effective_parameters'], '.2f')}, "
              f"log evidence {_g(summary['log_evidence'], '.8g')}, coefficient nugget "
              f"{_g(summary['cov_nugget'])}.", "",
              f"Calibration: {cal['method']} at {cal['level']:g} from {cal['folds']}-fold "
              f"cross-validation by configuration inside the training split (seed "
              f"{cal['seed']}); reported σ = scale × raw σ.", "",
              "| kind | scale | conformal quantile | held-out rows |", "|---|---:|---:|---:|"]
    for k in summary["noise_std"]:
        lines.append(f"| {k} | {_g(cal['scale'].get(k))} | {_g(cal['quantile'].get(k))} | "
                     f"{cal['scores'].get(k, 0)} |")
    where = ("the test split" if summary["split"] == "test" else
             "the held-out cross-validation folds (no test split; calibrated coverage is the "
             "conformal level there by construction)")
    lines += ["", f"Coverage of central intervals on {where}, raw Bayesian / calibrated, and "
              "the mean negative log-likelihood per row:", "",
              "| group | kind | rows | 50% | 90% | 95% | NLL raw | NLL calibrated |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    nll = {(r["group"], r["kind"]): r for r in summary["nll"]}
    seen = []
    for c in summary["coverage"]:
        key = (c["group"], c["kind"])
        if key not in seen:
            seen.append(key)
    cov = {(c["group"], c["kind"], c["level"]): c for c in summary["coverage"]}
    for g, k in seen:
        cells = []
        for p in (0.5, 0.9, 0.95):
            c = cov.get((g, k, p))
            cells.append("—" if c is None else f"{c['raw']:.3f} / {c['calibrated']:.3f}")
        n = nll.get((g, k))
        rows = cov[(g, k, 0.5)]["n"] if (g, k, 0.5) in cov else 0
        lines.append(f"| {g} | {k} | {rows} | " + " | ".join(cells)
                     + f" | {_g(n and n['raw'])} | {_g(n and n['calibrated'])} |")
    if summary["split"] == "test":
        lines += ["", "Held-out cross-validation folds (`*ALL`), raw / calibrated:", "",
                  "| kind | rows | 50% | 90% | 95% |", "|---|---|---:|---:|---:|"]
        cvc = {(c["kind"], c["level"]): c for c in summary["cv_coverage"]
               if c["group"] == "*ALL"}
        for k in ("Energy", "Force", "Stress"):
            if (k, 0.5) not in cvc:
                continue
            cells = [f"{cvc[(k, p)]['raw']:.3f} / {cvc[(k, p)]['calibrated']:.3f}"
                     for p in (0.5, 0.9, 0.95)]
            lines.append(f"| {k} | {cvc[(k, 0.5)]['n']} | " + " | ".join(cells) + " |")
    if summary.get("nsamples"):
        lines += ["", f"{summary['nsamples']} posterior samples written as "
                  "`<potential>_sample<k>.snapcoeff` / `.mod`."]
    return "\n".join(lines) + "\n"


def json_text(summary: dict) -> str:
    return json.dumps(summary, indent=1, default=float) + "\n"


def reliability_plot(path: str, summary: dict) -> str:
    """Write the reliability plot (PNG) to ``path`` (matplotlib, Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rel = summary["reliability"]
    levels = rel["levels"]
    kinds = [k for k in ("Energy", "Force", "Stress") if k in rel]
    fig = Figure(figsize=(3.2 * max(len(kinds), 1), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(kinds), 1), squeeze=False)[0]
    split = "test split" if summary["split"] == "test" else "CV folds"
    for ax, k in zip(axes, kinds):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        ax.plot(levels, rel[k]["raw"], "o--", ms=3, label="raw Bayesian")
        ax.plot(levels, rel[k]["calibrated"], "s-", ms=3, label="calibrated")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal coverage")
        ax.set_title(f"{k} ({rel[k]['n']} rows, {split})", fontsize=9)
    axes[0].set_ylabel("observed coverage")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=110, format="png")
    return path
