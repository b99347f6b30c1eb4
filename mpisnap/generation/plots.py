"""The summary figure of ``mpisnap generate`` (matplotlib, Agg): entropy per outer iteration,
the histogram of nearest-neighbour distances, and a 2-D projection of the descriptor cloud
against the reference set (or against the initial random structures when there is none)."""
from __future__ import annotations

import numpy as np

__all__ = ["summary_plot", "nearest_distances"]


def nearest_distances(atoms, cutoff: float) -> np.ndarray:
    """Each atom's distance to its nearest neighbour (periodic images included), for the atoms
    that have one within ``cutoff`` Å."""
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list("id", atoms, cutoff)
    out = np.full(len(atoms), np.inf)
    np.minimum.at(out, i, d)
    return out[np.isfinite(out)]


def summary_plot(path, inp, structures, history, clouds, init_clouds, whitening) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = inp.generate
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    its = [h["iteration"] for h in history]
    ax.plot(its, [h["kl"] for h in history], "o-", color="C0", label="Kozachenko–Leonenko")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("entropy (KL), nats", color="C0")
    ax2 = ax.twinx()
    ax2.plot(its, [h["smooth"] for h in history], "s--", color="C1", label=g.estimator)
    ax2.set_ylabel(f"entropy ({g.estimator}, optimised), nats", color="C1")
    ax.set_title("entropy of the descriptor cloud")

    ax = axes[1]
    d = np.concatenate([nearest_distances(a, 3.0 * g.min_distance) for a in structures] or
                       [np.zeros(0)])
    if len(d):
        ax.hist(d, bins=40, color="C2")
    ax.axvline(g.min_distance, color="k", ls=":", label=f"min_distance {g.min_distance:g} Å")
    ax.set_xlabel("nearest-neighbour distance (Å)")
    ax.set_ylabel("atoms")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{len(structures)} generated structures")

    ax = axes[2]
    e = max(clouds, key=lambda k: len(clouds[k][0])) if clouds else None
    if e is not None:
        B, owner = clouds[e]
        W = whitening[e]
        gen = W(B[owner >= 0])
        has_ref = bool(np.any(owner < 0))
        base = W(B[owner < 0]) if has_ref else W(init_clouds[e][0])
        centre = base.mean(0)
        _, _, Vt = np.linalg.svd(base - centre, full_matrices=False)
        P = Vt[:2].T
        b2, g2 = (base - centre) @ P, (gen - centre) @ P
        ax.scatter(b2[:, 0], b2[:, 1], s=6, c="0.6", alpha=0.6,
                   label="reference set" if has_ref else "initial random structures")
        ax.scatter(g2[:, 0], g2[:, 1], s=6, c="C3", alpha=0.7, label="generated")
        ax.set_xlabel("principal component 1 (whitened)")
        ax.set_ylabel("principal component 2")
        ax.legend(loc="best", fontsize=8)
        ax.set_title(f"descriptors of {e} atoms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
