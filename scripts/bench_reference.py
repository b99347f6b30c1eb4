#!/usr/bin/env python
"""Reference-stage benchmark: the built-in ZBL (``[REFERENCE] pair_style hybrid/overlay zero 10.0
zbl 4.0 4.8``) over a WBe-sized training set, the core (C++, ``mpisnap.zbl.ZBL``) against the
NumPy implementation it replaced (``mpisnap.testing.zbl_numpy.NumpyZBL``), in one run.

The stage is timed as the fit pipeline runs it: the reference plugin's ``compute(config)``
(``mpisnap.plugins.references.ZBLReference``: symbols to types, then ZBL energy, forces, virial)
once per configuration, in a loop. The old path is the same plugin object with its ZBL swapped for
the NumPy one. Passes alternate (NumPy, core, NumPy, core, ...) so that the load of this shared
machine hits both alike; the figures are medians over --repeats passes and the ratio is taken
from the medians.

Data: FitSNAP's WBe training set (Wood & Thompson, PRB 2019; 25,422 configurations, 1.77 M
design rows, about 530,000 atoms) is not on this machine, so a set of the same size and make-up
is generated: W/Be bcc cells of 2, 16, 54 and 128 atoms (52/30/11/7 %, 20.8 atoms on average)
with the lattice constant interpolated between W (3.165 Å) and a compressed Be (2.55 Å) by the
Be fraction, random strains (3 %) and displacements (0.1 Å); every 20th cell is a slab (open
along z). ZBL charges of FitSNAP's WBe example: W 74, Be 4.

A second table times one large configuration (bcc W, --big atoms) with 1 and 2 threads.

    python scripts/bench_reference.py [--configs 25422] [--repeats 5] [--big 128000]

Before timing, both paths are compared on every configuration (largest relative differences of
energy, forces and virial; they agree to round-off).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

import numpy as np

INNER, OUTER = 4.0, 4.8
COEFFS = ["1 1 zbl 74 74", "1 2 zbl 74 4", "2 2 zbl 4 4"]
SIZES = (1, 2, 3, 4)            # bcc cubic cells per edge: 2, 16, 54, 128 atoms
SHARES = (0.52, 0.30, 0.11, 0.07)


def say(msg: str) -> None:
    print(msg, flush=True)


def bcc(n: int) -> np.ndarray:
    """Fractional coordinates of an n x n x n bcc supercell (2 n^3 atoms)."""
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return (np.concatenate([g, g + 0.5]) / n).astype(float)


def wbe_like(nconf: int, seed: int = 0):
    from mpisnap.records import Configuration

    rng = np.random.default_rng(seed)
    fracs = {n: bcc(n) for n in SIZES}
    out = []
    for k in range(nconf):
        n = SIZES[rng.choice(len(SIZES), p=SHARES)]
        f = fracs[n]
        x_be = rng.random()
        a = (3.165 * (1 - x_be) + 2.55 * x_be) * n
        cell = a * (np.eye(3) + rng.normal(scale=0.03, size=(3, 3)))
        pos = f @ cell + rng.normal(scale=0.1, size=f.shape)
        pbc = (True, True, k % 20 != 19)
        if not pbc[2]:
            cell = cell.copy()
        syms = tuple(np.where(rng.random(len(f)) < x_be, "Be", "W"))
        out.append(Configuration(f"wbe{k}", "g", pos, cell, pbc, syms))
    return out


def references():
    from mpisnap.plugins.references import ZBLReference
    from mpisnap.testing.zbl_numpy import NumpyZBL

    settings = SimpleNamespace(
        reference=SimpleNamespace(pair_style=f"hybrid/overlay zero 10.0 zbl {INNER} {OUTER}",
                                  pair_coeffs=["* * zero"] + COEFFS),
        bispectrum=SimpleNamespace(type=["W", "Be"]))
    new = ZBLReference(settings)
    old = ZBLReference(settings)
    old.zbl = NumpyZBL(old.zbl.inner, old.zbl.outer, old.zbl.z)
    return old, new


def stage(ref, configs) -> tuple[float, float]:
    """(wall, CPU) seconds of the stage: the CPU time of this process (one thread computes
    small configurations) is less disturbed by the other users of a shared machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    for c in configs:
        ref.compute(c)
    return time.perf_counter() - t0, time.process_time() - c0


def relerr(x, y) -> float:
    s = float(np.abs(y).max()) if np.size(y) else 0.0
    return float(np.abs(np.asarray(x) - y).max() / s) if s > 0 else float(np.abs(x).max(initial=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=25422)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big", type=int, default=128000, help="atoms of the large configuration")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    say(f"# load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    t0 = time.perf_counter()
    configs = wbe_like(args.configs, args.seed)
    natoms = sum(c.natoms for c in configs)
    rows = sum(1 + 3 * c.natoms + 6 for c in configs)
    say(f"# {len(configs)} configurations, {natoms} atoms, {rows} design rows "
        f"(generated in {time.perf_counter() - t0:.1f} s)")
    old, new = references()

    worst = {"energy": 0.0, "forces": 0.0, "virial": 0.0}
    for c in configs:
        a, b = old.compute(c), new.compute(c)
        worst["energy"] = max(worst["energy"], relerr(b.energy, a.energy))
        worst["forces"] = max(worst["forces"], relerr(b.forces, a.forces))
        worst["virial"] = max(worst["virial"], relerr(b.virial, a.virial))
    say("# core vs NumPy, largest relative difference over all configurations: " +
        ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))

    t_old, t_new = [], []
    for r in range(args.repeats):
        t_old.append(stage(old, configs))
        t_new.append(stage(new, configs))
        say(f"# pass {r + 1}: NumPy {t_old[-1][0]:.2f} s wall, {t_old[-1][1]:.2f} s CPU; "
            f"core {t_new[-1][0]:.3f} s wall, {t_new[-1][1]:.3f} s CPU")
    say(f"# median of the per-pass ratios: wall "
        f"{statistics.median(o[0] / n[0] for o, n in zip(t_old, t_new)):.1f}x, CPU "
        f"{statistics.median(o[1] / n[1] for o, n in zip(t_old, t_new)):.1f}x")
    # Where the core path's time goes: the plugin (symbols to types, the record), mpisnap.zbl's
    # checks and normalisation, the C++ call alone (arguments prepared beforehand).
    z = new.zbl
    prepared = []
    for c in configs:
        pos, cell, pbc = z._normalise(c.positions, c.cell, c.pbc)
        types = np.fromiter(map(new.types.__getitem__, c.symbols), np.int32, len(c.symbols))
        prepared.append((c.positions, c.cell, c.pbc, pos, cell, pbc, types))
    layers = {"plugin compute (the stage)": [], "ZBL.compute": [], "C++ call alone": []}
    for _ in range(args.repeats):
        c0 = time.process_time()
        for c in configs:
            new.compute(c)
        layers["plugin compute (the stage)"].append(time.process_time() - c0)
        c0 = time.process_time()
        for p0, c1, b1, _p, _c, _b, t in prepared:
            z.compute(p0, c1, b1, t)
        layers["ZBL.compute"].append(time.process_time() - c0)
        c0 = time.process_time()
        for _p0, _c1, _b1, p, c, b, t in prepared:
            z._core.compute(p, c, b, t, 0, z.BLOCK_ATOMS)
        layers["C++ call alone"].append(time.process_time() - c0)
    say("# core path by layer, CPU µs/config (median of passes): " + ", ".join(
        f"{k} {1e6 * statistics.median(v) / len(configs):.1f}" for k, v in layers.items()))
    say("")
    say(f"| reference stage, {len(configs):,} WBe-like configurations, median of "
        f"{args.repeats} | NumPy (before) | core | speed-up |")
    say("|---|---:|---:|---:|")
    for k, what in enumerate(("wall", "CPU time")):
        mo = statistics.median(t[k] for t in t_old)
        mn = statistics.median(t[k] for t in t_new)
        say(f"| {what} | {mo:.2f} s ({1e6 * mo / len(configs):.0f} µs/config) | {mn:.3f} s "
            f"({1e6 * mn / len(configs):.1f} µs/config) | {mo / mn:.1f}x |")

    if args.big:
        from mpisnap.zbl import ZBL

        n = max(1, round((args.big / 2) ** (1 / 3)))
        rng = np.random.default_rng(1)
        f = bcc(n)
        cell = 3.165 * n * np.eye(3)
        pos = f @ cell + rng.normal(scale=0.1, size=f.shape)
        types = (rng.random(len(f)) < 0.3).astype(np.int32)
        z = ZBL(INNER, OUTER, {(0, 0): (74, 74), (0, 1): (74, 4), (1, 1): (4, 4)})
        zo = old.zbl
        args_ = (pos, cell, (True,) * 3, types)
        res = {}
        ref = z.compute(*args_, threads=1)
        for label, fn in [("NumPy", lambda: zo.compute(*args_)),
                          ("core, 1 thread", lambda: z.compute(*args_, threads=1)),
                          ("core, 2 threads", lambda: z.compute(*args_, threads=2))]:
            ts = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = fn()
                ts.append(time.perf_counter() - t0)
            if label.startswith("core"):
                assert out[0] == ref[0] and np.array_equal(out[1], ref[1]), "thread dependence"
            res[label] = statistics.median(ts)
        say("")
        say(f"| one configuration, {len(f):,} atoms (bcc W/Be) | wall (median of {args.repeats}) "
            "| vs NumPy |")
        say("|---|---:|---:|")
        for label, t in res.items():
            say(f"| {label} | {t:.3f} s | {res['NumPy'] / t:.1f}x |")


if __name__ == "__main__":
    main()
