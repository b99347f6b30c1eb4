#!/usr/bin/env python
"""Memory benchmark for one huge configuration: peak RSS of ``mpisnap fit`` against atom count,
and how fast SIGTERM ends a fit that is computing descriptors.

Each size is one periodic fcc Cu supercell (lattice 3.615 Å, Gaussian displacements 0.05 Å, random
force labels, an energy and a stress) in a FitSNAP JSON file; the input is examples/Cu_EMT's
(twojmax 6, rcutfac 4.8: 42 neighbours per atom) with energy, force and stress rows on, or
``--twojmax 8``. Every fit runs in a fresh subprocess, ``python -m mpisnap fit INPUT -q``, under GNU
``/usr/bin/time -v`` (peak RSS = "Maximum resident set size"). Next to it, a fresh subprocess that
only reads the configuration with the JSON reader plugin gives the reading stage's own peak, and the
design rows of the configuration ((1 + 3N + 6) x columns x 8 B) are listed, so the table shows what
is left: peak − rows is the working memory beyond the configuration's own rows.

SIGTERM: the fit of the --sigterm-atoms configuration is started again, SIGTERM is sent once it is
in the descriptor stage (the read time plus half the descriptor time measured in the memory run of
the nearest size, or --sigterm-at seconds), and the seconds from the signal to the process's exit
are reported with its exit status (130 expected) and whether any output file was written (none
expected).

    python scripts/bench_memory.py [--sizes 10000 100000 400000] [--twojmax 6] [--threads 2]
                                   [--sigterm-atoms 100000] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GNU_TIME = "/usr/bin/time"
MIB = 1024.0 ** 2
LATTICE = 3.615

INPUT = """[BISPECTRUM]
numTypes = 1
type = Cu
twojmax = {twojmax}
rcutfac = 4.8
rfac0 = 0.99363
rmin0 = 0.0
wj = 1.0
radelem = 0.5
bzeroflag = 0
quadraticflag = 0

[CALCULATOR]
calculator = LAMMPSSNAP
energy = 1
force = 1
stress = 1

[SOLVER]
solver = SVD

[SCRAPER]
scraper = JSON

[PATH]
dataPath = JSON

[OUTFILE]
metrics = big_metrics.md
potential = big_pot

[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
smartweights = 0
random_sampling = 0
Big = 1.0 0.0 100.0 1.0 1.0e-4
"""


def say(msg: str) -> None:
    print(msg, flush=True)


def supercell(natoms: int, seed: int = 7):
    """fcc Cu, n x n x n conventional cells with 4 n^3 ≈ natoms atoms, displaced."""
    n = max(1, round((natoms / 4) ** (1 / 3)))
    basis = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    frac = (grid + basis).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    pos = frac * LATTICE + rng.normal(0, 0.05, frac.shape)
    return pos, np.eye(3) * n * LATTICE, rng


def make_case(folder: Path, natoms: int, twojmax: int) -> tuple[Path, int, int]:
    """Input file and JSON data for one configuration; returns (input, atoms, JSON bytes)."""
    pos, cell, rng = supercell(natoms)
    (folder / "JSON" / "Big").mkdir(parents=True)
    data = {"Positions": np.round(pos, 8).tolist(), "Lattice": cell.tolist(),
            "AtomTypes": ["Cu"] * len(pos), "NumAtoms": len(pos), "Energy": -3.5 * len(pos),
            "Forces": np.round(rng.normal(0, 0.5, pos.shape), 8).tolist(),
            "Stress": (np.eye(3) * 1000.0).tolist()}
    doc = {"Dataset": {"PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
                       "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
                       "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol", "Data": [data]}}
    path = folder / "JSON" / "Big" / "big.json"
    path.write_text(json.dumps(doc))
    inp = folder / "big.in"
    inp.write_text(INPUT.format(twojmax=twojmax))
    return inp, len(pos), path.stat().st_size


def _maxrss_mib(stderr: str) -> float:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if not m:
        raise RuntimeError("GNU time output lacks the maximum resident set size")
    return int(m.group(1)) / 1024.0


def fit_peak(inp: Path, threads: int) -> dict:
    """Peak RSS (MiB), wall (s) and stage timings of one fit in a fresh process."""
    out = inp.parent / "out"
    cmd = [GNU_TIME, "-v", sys.executable, "-m", "mpisnap", "fit", str(inp), "--output-dir",
           str(out), "--threads", str(threads), "--no-progress"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"fit failed ({p.returncode}):\n{p.stderr[-3000:]}")
    stages = dict(re.findall(r"(\w[\w ]*?) ([\d.]+) s", p.stdout.splitlines()[0]))
    cols = re.search(r"\((\d+) coefficients\)", next(out.glob("*.log")).read_text())
    return {"rss": _maxrss_mib(p.stderr), "wall": wall, "ncols": int(cols.group(1)),
            **{k: float(v) for k, v in stages.items()}}


READ_ONLY = """
import sys
from mpisnap.plugin_manager import build_registry, get_plugin_manager
from mpisnap.records import ConfigRef
reader = build_registry(get_plugin_manager()).get("readers", "JSON", what="scraper")
c = reader.load(ConfigRef("Big/big.json", "Big", sys.argv[1]))
print(c.natoms)
"""


def read_peak(json_path: Path) -> float:
    """Peak RSS (MiB) of a fresh process that imports mpisnap and reads the configuration."""
    p = subprocess.run([GNU_TIME, "-v", sys.executable, "-c", READ_ONLY, str(json_path)],
                       capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return _maxrss_mib(p.stderr)


def sigterm_exit(inp: Path, threads: int, delay: float) -> dict:
    """Start a fit, send SIGTERM after ``delay`` s, time the exit."""
    out = inp.parent / "out_sigterm"
    cmd = [sys.executable, "-m", "mpisnap", "fit", str(inp), "--output-dir", str(out),
           "--threads", str(threads), "--no-progress", "-q"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    if p.poll() is not None:
        raise SystemExit(f"the fit ended before SIGTERM (after {delay:.1f} s): use --sigterm-at")
    t0 = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=600)
    dt = time.perf_counter() - t0
    outputs = sorted(f.name for f in out.iterdir()) if out.exists() else []
    return {"seconds": dt, "status": p.returncode, "outputs": outputs, "stderr": err.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 400000])
    ap.add_argument("--twojmax", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sigterm-atoms", type=int, default=100000, help="0: no SIGTERM check")
    ap.add_argument("--sigterm-at", type=float, default=None,
                    help="seconds after start to send SIGTERM (default: mid descriptor stage)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    rows, timings = [], {}
    with tempfile.TemporaryDirectory(prefix="mpisnap-bench-memory-") as tmp:
        for natoms in args.sizes:
            folder = Path(tmp) / f"n{natoms}"
            folder.mkdir()
            inp, n, nbytes = make_case(folder, natoms, args.twojmax)
            read = read_peak(inp.parent / "JSON" / "Big" / "big.json")
            r = fit_peak(inp, args.threads)
            rows_mib = (1 + 3 * n + 6) * r["ncols"] * 8 / MIB
            timings[n] = r
            rows.append((n, nbytes / MIB, read, rows_mib, r))
            say(f"{n} atoms ({nbytes / MIB:.0f} MiB JSON): peak RSS {r['rss']:.0f} MiB "
                f"({r['rss'] * MIB / n / 1024:.1f} KiB/atom), rows {rows_mib:.0f} MiB, "
                f"peak - rows {r['rss'] - rows_mib:.0f} MiB, read-only peak {read:.0f} MiB, "
                f"wall {r['wall']:.1f} s (read {r.get('read', 0):.1f} s, descriptors "
                f"{r.get('descriptors', 0):.1f} s, design matrix {r.get('design matrix', 0):.1f} s)")
        sig = None
        if args.sigterm_atoms:
            folder = Path(tmp) / "sigterm"
            folder.mkdir()
            inp, n, _ = make_case(folder, args.sigterm_atoms, args.twojmax)
            delay = args.sigterm_at
            if delay is None:
                near = min(timings, key=lambda k: abs(k - n)) if timings else None
                if near is None or abs(near - n) > 0.2 * n:
                    timings[n] = fit_peak(inp, args.threads)
                    near = n
                t = timings[near]
                delay = 0.5 + t.get("setup", 0) + t.get("read", 0) + 0.5 * t.get("descriptors", 0)
            sig = sigterm_exit(inp, args.threads, delay)
            say(f"SIGTERM on {n} atoms after {delay:.1f} s: exit after {sig['seconds']:.2f} s, "
                f"status {sig['status']}, outputs {sig['outputs'] or 'none'}, "
                f"stderr {sig['stderr']!r}")
    if args.markdown:
        say("\n| atoms | JSON | peak RSS | per atom | design rows | peak − rows | read-only peak |"
            " fit wall |")
        say("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n, js, read, rm, r in rows:
            say(f"| {n:,} | {js:.0f} MiB | {r['rss']:,.0f} MiB | {r['rss'] * 1024 / n:.1f} KiB |"
                f" {rm:,.0f} MiB | {r['rss'] - rm:,.0f} MiB | {read:,.0f} MiB | {r['wall']:.0f} s |")
        if sig:
            say(f"\nSIGTERM during the descriptor stage ({args.sigterm_atoms:,}-atom target): "
                f"exit {sig['seconds']:.2f} s later, status {sig['status']}, outputs: "
                f"{', '.join(sig['outputs']) or 'none'}.")


if __name__ == "__main__":
    main()
