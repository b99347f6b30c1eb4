#!/usr/bin/env python
"""Reading benchmark for the FitSNAP JSON reader: rate on real data sets, peak memory and rate on
one huge generated configuration, and the ``read`` stage of whole fits, each against a baseline
reader measured in the same run.

The baseline is the JSON reader (``plugins/readers.py``) and the configuration check
(``mpisnap.records._array``) of a git revision (``--baseline``, default the commit before the
bounded-memory reader), loaded from git into this process; the current code is the working tree.

1. Rate: every configuration of each ``--data`` folder (default: the InP data set and
   examples/Cu_EMT) is read with the reader's ``load``, baseline and current alternating for
   ``--rounds`` rounds; configurations/s, atoms/s and MB/s of JSON from the median round (wall and
   CPU time of the process), and the median of the per-round ratios.
2. One huge configuration (``--atoms``, default 200,000; fcc Cu, positions and forces with 8
   decimals as ``json.dump`` writes them, one line, plus the same file pretty-printed with
   ``indent=1`` for FitSNAP's layout): peak of traced memory (tracemalloc) while reading, against
   the configuration's positions and forces (48 B per atom), the seconds to read it (without
   tracing, median of 3), and the peak RSS of a fresh process that only imports mpisnap and reads
   it (GNU ``time -v``).
3. Fits (``--fit``, default examples/Cu_EMT/Cu_EMT.in and the InP input): ``python -m mpisnap fit``
   in a fresh process, baseline (the baseline reader patched in) and current alternating, the
   ``read`` stage from the run log (listing, reading and checking every configuration).

    python scripts/bench_read.py [--baseline REV] [--rounds 7] [--atoms 200000]
                                 [--data DIR ...] [--fit INPUT ...] [--fit-rounds 5] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BASELINE = "b9ab775"  # the commit before the bounded-memory JSON reader
GNU_TIME = "/usr/bin/time"
MIB = 2.0 ** 20


def say(msg: str) -> None:
    print(msg, flush=True)


def shared(*parts: str) -> Path:
    sys.path.insert(0, str(REPO))
    from mpisnap.testing.shared import shared_data

    return shared_data(*parts)


# -- the baseline reader, from git -----------------------------------------------------------------

def git_show(rev: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def load_baseline(rev: str):
    """(the baseline readers module, the baseline records._array)."""
    mods = []
    for name, path in (("_baseline_records", "mpisnap/records.py"),
                       ("_baseline_readers", "plugins/readers.py")):
        mod = sys.modules[name] = types.ModuleType(name)  # (dataclasses look themselves up)
        exec(compile(git_show(rev, path), f"{rev}:{path}", "exec"), mod.__dict__)
        mods.append(mod)
    return mods[1], mods[0]._array


PATCH = """
import sys
sys.path.insert(0, {repo!r})
sys.argv = ["mpisnap"] + {argv!r}
if {baseline!r}:
    import runpy
    bench = runpy.run_path({script!r}, run_name="bench_read")
    old, old_array = bench["load_baseline"]({baseline!r})
    import mpisnap.records as records
    from mpisnap.plugins import readers
    readers._json_load, readers._json_list = old._json_load, old._json_list
    records._array = old_array
from mpisnap.cli import main
sys.exit(main())
"""


class Swap:
    """Baseline or current reader (and configuration check) in this process."""

    def __init__(self, rev: str):
        import mpisnap.records as records
        from mpisnap.plugins import readers

        self.records, self.readers = records, readers
        self.cur_array = records._array
        self.old, self.old_array = load_baseline(rev)

    def load(self, which: str):
        self.records._array = self.old_array if which == "baseline" else self.cur_array
        return (self.old if which == "baseline" else self.readers)._json_load


# -- 1. rate on data sets --------------------------------------------------------------------------

def rate(swap: Swap, folder: Path, rounds: int) -> dict:
    from mpisnap.records import ConfigRef

    refs = [ConfigRef(f"{g.name}/{p.name}", g.name, str(p))
            for g in sorted(folder.iterdir()) if g.is_dir() for p in sorted(g.glob("*.json"))]
    nbytes = sum(os.path.getsize(r.source) for r in refs)
    natoms = sum(swap.load("current")(r).natoms for r in refs)  # warm the page cache
    res = {"baseline": [], "current": []}
    for _ in range(rounds):
        for which in ("baseline", "current"):
            load = swap.load(which)
            w, c = time.perf_counter(), time.process_time()
            for r in refs:
                load(r)
            res[which].append((time.perf_counter() - w, time.process_time() - c))
    swap.load("current")
    out = {"configs": len(refs), "atoms": natoms, "MB": nbytes / 1e6}
    for which, times in res.items():
        wall = statistics.median(t[0] for t in times)
        cpu = statistics.median(t[1] for t in times)
        out[which] = {"wall": wall, "cpu": cpu, "configs/s": len(refs) / wall,
                      "atoms/s": natoms / wall, "MB/s": nbytes / 1e6 / wall}
    out["ratio wall"] = statistics.median(b[0] / c[0] for b, c in zip(*res.values()))
    out["ratio cpu"] = statistics.median(b[1] / c[1] for b, c in zip(*res.values()))
    return out


# -- 2. one huge configuration ---------------------------------------------------------------------

def write_huge(folder: Path, natoms: int, indent: int | None) -> Path:
    rng = np.random.default_rng(7)
    n = max(1, round((natoms / 4) ** (1 / 3)))
    basis = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    pos = ((grid + basis).reshape(-1, 3) * 3.615 + rng.normal(0, 0.05, (4 * n ** 3, 3)))
    doc = {"Dataset": {"PositionsStyle": "angstrom", "ForcesStyle": "electronvoltperangstrom",
                       "Data": [{"Positions": pos.round(8).tolist(),
                                 "Lattice": (np.eye(3) * n * 3.615).tolist(),
                                 "AtomTypes": ["Cu"] * len(pos), "NumAtoms": len(pos),
                                 "Energy": -3.5 * len(pos),
                                 "Forces": rng.normal(0, 0.5, pos.shape).round(8).tolist(),
                                 "Stress": (np.eye(3) * 1000.0).tolist()}]}}
    path = folder / f"huge_{'pretty' if indent else 'line'}.json"
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=indent)
    return path


READ_ONLY = """
import sys
sys.path.insert(0, {repo!r})
if {baseline!r}:
    import runpy
    bench = runpy.run_path({script!r}, run_name="bench_read")
    old, old_array = bench["load_baseline"]({baseline!r})
    import mpisnap.records as records
    records._array = old_array
    load = old._json_load
else:
    from mpisnap.plugins.readers import _json_load as load
from mpisnap.records import ConfigRef
print(load(ConfigRef("g/huge.json", "g", sys.argv[1])).natoms)
"""


def rss_peak(path: Path, baseline: str) -> float:
    code = READ_ONLY.format(repo=str(REPO), baseline=baseline, script=__file__)
    p = subprocess.run([GNU_TIME, "-v", sys.executable, "-c", code, str(path)],
                       capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024


def huge(swap: Swap, path: Path, rev: str) -> dict:
    from mpisnap.records import ConfigRef

    ref = ConfigRef(f"g/{path.name}", "g", str(path))
    out = {"MB": path.stat().st_size / 1e6}
    for which in ("baseline", "current"):
        load = swap.load(which)
        tracemalloc.start()
        c = load(ref)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        arrays = c.positions.nbytes + c.forces.nbytes
        del c
        times = []
        for _ in range(3):
            t = time.perf_counter()
            c = load(ref)
            times.append(time.perf_counter() - t)
            del c
        out[which] = {"peak": peak / MIB, "peak/arrays": peak / arrays,
                      "B/atom": peak * 3 * 8 * 2 / arrays, "s": statistics.median(times),
                      "rss": rss_peak(path, rev if which == "baseline" else "")}
        out["atoms"] = arrays // 48
    swap.load("current")
    return out


# -- 3. the read stage of fits ---------------------------------------------------------------------

def fit_read(inp: Path, baseline: str, out: Path) -> float:
    code = PATCH.format(repo=str(REPO), baseline=baseline, script=__file__,
                        argv=["fit", str(inp), "--output-dir", str(out), "-q", "--no-progress"])
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(f"fit failed:\n{p.stderr[-3000:]}")
    log = next(out.glob("*.log")).read_text()
    return float(re.search(r"^\s*read\s+([\d.]+)", log, re.M).group(1))


def fits(inputs: list[Path], rev: str, rounds: int, tmp: Path) -> dict:
    out = {}
    for inp in inputs:
        res = {"baseline": [], "current": []}
        for k in range(rounds):
            for which in ("baseline", "current"):
                res[which].append(fit_read(inp, rev if which == "baseline" else "",
                                           tmp / f"{inp.stem}_{which}_{k}"))
        out[inp] = {w: statistics.median(v) for w, v in res.items()}
        out[inp]["ratio"] = statistics.median(b / c for b, c in zip(*res.values()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline reader")
    ap.add_argument("--data", type=Path, nargs="*", default=None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--atoms", type=int, default=200000, help="0: no huge configuration")
    ap.add_argument("--fit", type=Path, nargs="*", default=None)
    ap.add_argument("--fit-rounds", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    data = args.data if args.data is not None else [shared("InP_JPCA2020", "JSON"),
                                                    REPO / "examples" / "Cu_EMT" / "JSON"]
    inputs = args.fit if args.fit is not None else [
        REPO / "examples" / "Cu_EMT" / "Cu_EMT.in", shared("InP_JPCA2020", "InP-example.in")]
    swap = Swap(args.baseline)
    try:
        import orjson
        parser = f"orjson {orjson.__version__}"
    except ImportError:
        parser = "json (orjson not installed)"
    say(f"baseline {args.baseline}; current: working tree, small files parsed by {parser}; "
        f"load average {os.getloadavg()[0]:.1f}")
    rates = {}
    for folder in data:
        rates[folder] = r = rate(swap, folder, args.rounds)
        b, c = r["baseline"], r["current"]
        say(f"{folder}: {r['configs']} configurations, {r['atoms']} atoms, {r['MB']:.1f} MB: "
            f"baseline {b['configs/s']:.0f} configs/s ({b['atoms/s']:.0f} atoms/s, "
            f"{b['MB/s']:.1f} MB/s), current {c['configs/s']:.0f} configs/s "
            f"({c['atoms/s']:.0f} atoms/s, {c['MB/s']:.1f} MB/s): {r['ratio wall']:.2f}x wall, "
            f"{r['ratio cpu']:.2f}x CPU")
    huges = {}
    with tempfile.TemporaryDirectory(prefix="mpisnap-bench-read-") as tmp:
        tmp = Path(tmp)
        if args.atoms:
            for indent in (None, 1):
                path = write_huge(tmp, args.atoms, indent)
                huges[path.name] = h = huge(swap, path, args.baseline)
                path.unlink()
                b, c = h["baseline"], h["current"]
                say(f"{path.name}: {h['atoms']} atoms, {h['MB']:.0f} MB: traced peak baseline "
                    f"{b['peak']:.0f} MiB ({b['peak/arrays']:.1f}x positions+forces), current "
                    f"{c['peak']:.0f} MiB ({c['peak/arrays']:.2f}x); read {b['s']:.2f} s -> "
                    f"{c['s']:.2f} s; RSS of a read-only process {b['rss']:.0f} -> "
                    f"{c['rss']:.0f} MiB")
        fit_res = fits(inputs, args.baseline, args.fit_rounds, tmp) if inputs else {}
        for inp, f in fit_res.items():
            say(f"fit {inp.name}: read stage baseline {f['baseline']:.3f} s, current "
                f"{f['current']:.3f} s: {f['ratio']:.2f}x")
    if args.markdown:
        say("\n| data | configs | atoms | baseline configs/s | current configs/s | wall ratio |"
            " CPU ratio |")
        say("|---|---:|---:|---:|---:|---:|---:|")
        for folder, r in rates.items():
            say(f"| {folder.name if folder.name != 'JSON' else folder.parent.name} | "
                f"{r['configs']:,} | {r['atoms']:,} | {r['baseline']['configs/s']:,.0f} | "
                f"{r['current']['configs/s']:,.0f} | {r['ratio wall']:.2f}x | "
                f"{r['ratio cpu']:.2f}x |")
        if fit_res:
            say("\n| fit | read stage, baseline | current | ratio |")
            say("|---|---:|---:|---:|")
            for inp, f in fit_res.items():
                say(f"| {inp.name} | {f['baseline']:.3f} s | {f['current']:.3f} s | "
                    f"{f['ratio']:.2f}x |")
        if huges:
            say("\n| file | atoms | JSON | traced peak, baseline | current | read, baseline |"
                " current | RSS read-only, baseline | current |")
            say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for name, h in huges.items():
                b, c = h["baseline"], h["current"]
                say(f"| {name} | {h['atoms']:,} | {h['MB']:.0f} MB | {b['peak']:.0f} MiB "
                    f"({b['peak/arrays']:.1f}x) | {c['peak']:.1f} MiB ({c['peak/arrays']:.2f}x) "
                    f"| {b['s']:.2f} s | {c['s']:.2f} s | {b['rss']:.0f} MiB | "
                    f"{c['rss']:.0f} MiB |")


if __name__ == "__main__":
    main()
