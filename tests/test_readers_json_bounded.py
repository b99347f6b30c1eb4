"""The JSON reader's own parse (``mpisnap.plugins.readers._FastJSON``): a large configuration is
read in memory close to its final arrays, and every configuration it reads is the one json.loads
gives, number for number (float rounding, ``-0``, integers, exponents), with the errors of the
json path, word for word, for everything it does not vouch for."""
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mpisnap.plugins import readers as rmod
from mpisnap.records import ConfigRef
from mpisnap.testing.shared import shared_data

INP_JSON = shared_data("InP_JPCA2020", "JSON")

UNITS = {"PositionsStyle": 1.0, "ForcesStyle": 1.0, "LatticeStyle": 1.0, "StressStyle": 1.0,
         "EnergyStyle": 1.0}


def load(path):
    path = Path(path)
    return rmod._json_load(ConfigRef(f"g/{path.name}", "g", str(path)))


@pytest.fixture
def no_json_path(monkeypatch):
    """The json.loads path must not be taken (the bounded parse handles the file itself)."""
    def refuse(path):
        raise AssertionError(f"{path}: fell back to json.loads")
    monkeypatch.setattr(rmod, "_json_text_document", refuse)


def expected(path, skip_comment=True):
    """The configuration as json.loads and np.array make it (the oracle)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    first, _, rest = text.partition("\n")
    doc = json.loads(rest if not first.lstrip().startswith("{") else text)["Dataset"]
    cfg = {**{k: v for k, v in doc.items() if k != "Data"}, **doc["Data"][0]}
    out = {}
    for key, style in (("Positions", "PositionsStyle"), ("Forces", "ForcesStyle"),
                       ("Lattice", "LatticeStyle"), ("Stress", "StressStyle")):
        if cfg.get(key) is not None:
            unit = rmod._STYLES[style][0](cfg.get(style, rmod._STYLES[style][1]))
            out[key] = np.array(cfg[key], dtype=float) * unit
    e = cfg.get("Energy")
    out["Energy"] = None if e is None else float(e) * rmod._STYLES["EnergyStyle"][0](
        cfg.get("EnergyStyle", "eV"))
    out["AtomTypes"] = tuple(cfg["AtomTypes"])
    return out


def assert_bitwise(c, exp):
    for got, key in ((c.positions, "Positions"), (c.forces, "Forces"), (c.cell, "Lattice"),
                     (c.stress, "Stress")):
        if key not in exp:
            assert got is None
            continue
        assert got.dtype == np.float64 and got.shape == exp[key].shape
        # bit for bit: -0.0 and 0.0 differ here
        np.testing.assert_array_equal(got.view(np.int64), exp[key].view(np.int64), err_msg=key)
    assert c.energy == exp["Energy"] and c.symbols == exp["AtomTypes"]


# Numbers whose parse is easy to get wrong: exponents of both cases and signs, integers (json
# reads "-0" as the integer 0 but "-0.0" as -0.0), 17 significant digits, halfway cases,
# subnormals, long integers and mantissas (within the ±1e8 bound of coordinates and forces).
TRICKY = ["0", "-0", "-0.0", "0.0", "-0e0", "1e5", "1E5", "1e+05", "-1.5E-07", "12",
          "-7", "3.141592653589793", "0.1000000000000000055511151231257827021181583404541015625",
          "90071992.54740993", "16777217", "1.7976931348623157e-300", "4.9e-324",
          "2.2250738585072011e-308",
          "123456.78901234567890123", "-0.000001", "1e-400", "99999999.99999999",
          "18446744073709551617e-12", "0.30000000000000004"]


def tricky_rows(n, rng):
    """n rows of 3 number strings, the tricky ones first, then random doubles written with 17
    significant digits, in fixed point and in plain repr."""
    toks = TRICKY + [repr(float(x)) for x in rng.normal(0, 3, 3 * n)]
    toks += [f"{x:.17g}" for x in rng.uniform(-50, 50, 3 * n)]
    toks += [f"{x:.9f}" for x in rng.uniform(-50, 50, 3 * n)]
    toks = toks[:3 * n]
    return [toks[3 * i:3 * i + 3] for i in range(n)]


def write_config(path, n, rng, *, layout="compact", comment="# generated\n", styles=None,
                 at_top=False, names=None):
    """A FitSNAP JSON file with n atoms whose numbers are the TRICKY strings and random ones,
    written as text (so exactly these digits reach the parser)."""
    pos = tricky_rows(n, rng)
    frc = tricky_rows(n, rng)[::-1]
    cell = [["20.5", "0", "0"], ["0.5", "21", "0"], ["-0.25", "1e-1", "2.2E1"]]
    stress = [["1e3", "-0", "2"], ["-0", "-2.5e+3", "0.0"], ["2", "0.0", "3E-2"]]
    if layout == "compact":
        arr = lambda rows: "[" + ",".join("[" + ",".join(r) + "]" for r in rows) + "]"  # noqa
        sep, nl = ", ", ""
    else:  # FitSNAP's pretty layout, one number per line, with CRLF and tabs in places
        arr = lambda rows: ("[\r\n" + ",\n".join(  # noqa: E731
            "\t  [\n" + ",\n".join(f"      {x} " for x in r) + "\n   ]" for r in rows) + "\n ]")
        sep, nl = ",\n  ", "\n"
    names = names or ["Cu" if i % 3 else "Ni" for i in range(n)]
    items = [f'"Positions": {arr(pos)}', f'"Lattice": {arr(cell)}',
             '"AtomTypes": [' + ", ".join(f'"{s}"' for s in names) + "]",
             f'"NumAtoms": {n}', '"Energy": -3.25e2', f'"Forces": {arr(frc)}',
             f'"Stress": {arr(stress)}']
    style_items = [f'"{k}": "{v}"' for k, v in (styles or {}).items()]
    cfg = "{" + nl + sep.join(items + ([] if at_top else style_items)) + nl + "}"
    ds = sep.join((style_items if at_top else []) + ['"Data": [' + cfg + "]"])
    path.write_text(comment + '{"Dataset": {' + ds + "}}" + nl, encoding="utf-8")
    return path


# -- memory ---------------------------------------------------------------------------------------

def test_huge_configuration_is_read_in_bounded_memory(tmp_path, no_json_path):
    """200,000 atoms (17 MB of JSON): the peak of traced memory while reading is below twice the
    final positions and forces (json.loads: about 10 times, ~500 B per atom)."""
    n = 200_000
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 100, (n, 3)).round(8)
    frc = rng.normal(0, 1, (n, 3)).round(8)
    path = tmp_path / "big.json"
    with open(path, "w") as fh:  # json.dumps' layout, one line, as bench_memory writes it
        json.dump({"Dataset": {"Data": [{
            "Positions": pos.tolist(), "Lattice": (np.eye(3) * 100).tolist(),
            "AtomTypes": ["Cu"] * n, "NumAtoms": n, "Energy": -3.5 * n,
            "Forces": frc.tolist(), "Stress": np.eye(3).tolist()}]}}, fh)
    tracemalloc.start()
    try:
        c = load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    final = c.positions.nbytes + c.forces.nbytes
    assert peak < 2.0 * final, f"peak {peak / 2**20:.1f} MiB for {final / 2**20:.1f} MiB of arrays"
    np.testing.assert_array_equal(c.positions, pos)
    np.testing.assert_array_equal(c.forces, frc)
    assert c.natoms == n and set(c.symbols) == {"Cu"}


# -- the same numbers as json ---------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["compact", "pretty"])
@pytest.mark.parametrize("natoms", [5, 40, 7000])  # one read (small) and piece by piece (large)
def test_numbers_bit_for_bit_as_json(tmp_path, no_json_path, layout, natoms):
    rng = np.random.default_rng(natoms)
    path = write_config(tmp_path / "a.json", natoms, rng, layout=layout)
    if natoms == 7000 and layout == "pretty":
        assert path.stat().st_size > rmod._SMALL_FILE  # the piece-by-piece path
    assert_bitwise(load(path), expected(path))


def test_large_file_arrays_come_in_many_pieces(tmp_path, no_json_path, monkeypatch):
    """Tiny read chunks and pieces: every row split across pieces and reads still parses to
    json's numbers (and an array ending right after a piece boundary)."""
    monkeypatch.setattr(rmod, "_SMALL_FILE", 0)
    monkeypatch.setattr(rmod, "_READ_CHUNK", 97)
    monkeypatch.setattr(rmod, "_PIECE", 300)  # a pretty row is about 100 bytes
    monkeypatch.setattr(rmod, "_BIG_ARRAY", 50)
    rng = np.random.default_rng(5)
    for layout in ("compact", "pretty"):
        path = write_config(tmp_path / f"{layout}.json", 60, rng, layout=layout)
        c = load(path)
        assert isinstance(c.positions, np.ndarray)
        assert_bitwise(c, expected(path))


@pytest.mark.parametrize("comment", ["", "# comment\n", "no hash either\n", "\n", "   \n",
                                     "\ufeff# a BOM, then a comment\n", "\ufeff"])
def test_comment_line_and_bom(tmp_path, no_json_path, comment):
    path = write_config(tmp_path / "a.json", 7, np.random.default_rng(0), comment=comment)
    assert_bitwise(load(path), expected(path))


@pytest.mark.parametrize("at_top", [False, True])
def test_styles_in_dataset_or_configuration_scale_in_place(tmp_path, no_json_path, at_top):
    styles = {"PositionsStyle": "bohr", "ForcesStyle": "kcal/mol/Angstrom", "StressStyle": "kB",
              "EnergyStyle": "Ha", "LatticeStyle": "nm"}
    for natoms in (6, 7000):
        path = write_config(tmp_path / f"s{natoms}.json", natoms, np.random.default_rng(2),
                            styles=styles, at_top=at_top, layout="pretty")
        assert_bitwise(load(path), expected(path))


def test_every_inp_file_as_json(no_json_path):
    """The real data set (pretty-printed, a comment line, kB stress): every 7th file."""
    paths = sorted(INP_JSON.glob("*/*.json"))[::7]
    assert len(paths) > 250
    for path in paths:
        assert_bitwise(load(path), expected(path))


def test_large_names_are_shared_and_kept(tmp_path, no_json_path):
    n = 30000
    names = [("In", " P", "Ga_2", "X-1")[i % 4] for i in range(n)]
    path = write_config(tmp_path / "names.json", n, np.random.default_rng(3), names=names)
    c = load(path)
    assert c.symbols == tuple(s.strip() for s in names)
    assert len({id(s) for s in c.symbols}) == 4


def test_duplicate_keys_last_wins(tmp_path, no_json_path):
    text = ('{"Dataset": {"Data": [{"Positions": [[0, 0, 0]], "Lattice": [[3, 0, 0], [0, 3, 0], '
            '[0, 0, 3]], "AtomTypes": ["Ta"], "Energy": 1.0, "Energy": -2.0}]}}')
    path = tmp_path / "dup.json"
    path.write_text(text)
    assert load(path).energy == -2.0 == json.loads(text)["Dataset"]["Data"][0]["Energy"]


# -- what the bounded parse does not vouch for: json's values and errors ------------------------

def big_text(n, positions_rows=None, forces_rows=None, names=None, extra=""):
    rows = lambda k: ",".join(f"[{i}.5, {i % 7}, -{i}e-3]" for i in range(k))  # noqa: E731
    pos = positions_rows if positions_rows is not None else rows(n)
    frc = forces_rows if forces_rows is not None else rows(n)
    names = names if names is not None else ", ".join(['"Ta"'] * n)
    return ('{"Dataset": {"Data": [{"Positions": [' + pos + '], "Lattice": [[1e3, 0, 0], '
            '[0, 1e3, 0], [0, 0, 1e3]], "AtomTypes": [' + names + '], "Forces": [' + frc + ']'
            + extra + "}]}}")


def json_path_error(path, monkeypatch):
    """The error of the json path alone (the reader before the bounded parse)."""
    with monkeypatch.context() as m:
        m.setattr(rmod, "_FastJSON", None)  # any use raises: the json path decides
        with pytest.raises(ValueError) as info:
            load(path)
    return str(info.value)


N = 40000  # > _SMALL_FILE of text: read piece by piece


def last_row(row):
    """N rows, all [1, 2, 3] but the last."""
    return ",".join(["[1, 2, 3]"] * (N - 1) + [row])


CASES = {
    "ragged row": dict(forces_rows=last_row("[1, 2]")),
    "NaN deep in an array": dict(forces_rows=last_row("[1, NaN, 3]")),
    "Infinity": dict(positions_rows=last_row("[1, -Infinity, 3]")),
    "a string among numbers": dict(forces_rows=last_row('[1, "2", 3]')),
    "a huge integer": dict(positions_rows=last_row("[1, 2, " + "9" * 400 + "]")),
    "an integer beyond 2**64": dict(positions_rows=last_row("[1, 2, 18446744073709551617]")),
    "a leading zero": dict(forces_rows=last_row("[1, 02, 3]")),
    "a trailing comma": dict(forces_rows=",".join(["[1, 2, 3]"] * N) + ","),
    "an escaped name": dict(names=", ".join(['"Ta"'] * (N - 1) + ['"T\\u0061"'])),
    "a name that is a number": dict(names=", ".join(['"Ta"'] * (N - 1) + ["1"])),
    "truncated": dict(extra=', "Stress": [[1, 2, 3], [4, 5'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_large_file_not_vouched_for_gives_json_path_result(tmp_path, monkeypatch, case):
    path = tmp_path / "odd.json"
    path.write_text(big_text(N, **CASES[case]))
    assert path.stat().st_size > rmod._SMALL_FILE
    try:
        want = json_path_error(path, monkeypatch)
    except pytest.fail.Exception:  # the json path reads it: so must the reader, identically
        with monkeypatch.context() as m:
            m.setattr(rmod, "_FastJSON", None)
            ref = load(path)
        got = load(path)
        assert got.symbols == ref.symbols
        for a, b in ((got.positions, ref.positions), (got.forces, ref.forces)):
            np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))
        return
    with pytest.raises(ValueError) as info:
        load(path)
    assert str(info.value) == want


@pytest.mark.parametrize("value, fragment", [
    ("12345678901234567890123", "NumAtoms: 12345678901234567890123 but AtomTypes lists 1 atoms"),
    ("1e400", "NumAtoms: expected a whole number, got inf"),
    ("NaN", "NumAtoms: expected a whole number, got nan"),
])
def test_small_file_scalars_as_json(tmp_path, value, fragment):
    """orjson reads integers beyond 64 bits as floats and refuses NaN and 1e400: the messages are
    still json's."""
    path = tmp_path / "a.json"
    path.write_text('{"Dataset": {"Data": [{"Positions": [[0, 0, 0]], "Lattice": [[3, 0, 0], '
                    '[0, 3, 0], [0, 0, 3]], "AtomTypes": ["Ta"], "NumAtoms": ' + value + "}]}}")
    with pytest.raises(ValueError, match="NumAtoms") as info:
        load(path)
    assert str(info.value) == f"{path}: {fragment}"


@pytest.mark.parametrize("depth", [300, 1010, 5000])
def test_deeply_nested_extra_key_as_json(tmp_path, monkeypatch, depth):
    """json.loads stops near Python's recursion limit (orjson at 1024 levels): an unknown key
    nested that deep gives json's verdict."""
    path = tmp_path / "deep.json"
    path.write_text(big_text(2, extra=', "Extra": ' + "[" * depth + "]" * depth))
    try:
        want = json_path_error(path, monkeypatch)
    except pytest.fail.Exception:
        assert load(path).natoms == 2
        return
    assert "nested too deeply" in want
    with pytest.raises(ValueError) as info:
        load(path)
    assert str(info.value) == want


def test_json_path_errors_unchanged_for_small_files(tmp_path, monkeypatch):
    """Errors found after the parse (shape, bounds, zero volume ...) read as the json path's."""
    texts = [
        big_text(3, positions_rows="[0, 0, 0], [1, 1, 1e300], [2, 2, 2]"),
        big_text(3, forces_rows="[0, 0, 0], [1, 1], [2, 2, 2]"),
        big_text(3, forces_rows="[0, 0, 0], [0, 0, 0], [0, 1e300, 0]"),
        big_text(3, extra=', "Energy": 1e300'),
        big_text(3, extra=', "Energy": [1.0]'),
        big_text(3, extra=', "Energy": 12345678901234567890123'),
        big_text(3, extra=', "Stress": [[1, 0, 0], [0, 1, 1e300], [0, 1e300, 1]]'),
        big_text(3, extra=', "Stress": [[1, 0, 0], [0, 1, 0]]'),
        big_text(3, extra=', "ForcesStyle": "hartree/bohr", "Stress": [[1, 0, 0]]'),
        big_text(3, extra=', "NumAtoms": 3.5'),
        big_text(3, names='"Ta", "Ta", ""'),
        big_text(3, names='"Ta", ["Ta"], "W"'),
        big_text(3, positions_rows='[0, 0, 0], [1, 1, 1], [2, 2, "x"]'),
        big_text(3, positions_rows="[0, 0, 0], [1, 1, 1], [2, 2, null]"),
    ]
    for k, text in enumerate(texts):
        path = tmp_path / f"e{k}.json"
        path.write_text(text)
        want = json_path_error(path, monkeypatch)
        with pytest.raises(ValueError) as info:
            load(path)
        assert str(info.value) == want
    # and a zero-volume cell
    path = tmp_path / "flat.json"
    path.write_text(big_text(3).replace("[0, 0, 1e3]", "[1e3, 0, 0]"))
    assert "linearly dependent" in json_path_error(path, monkeypatch)
    with pytest.raises(ValueError, match="linearly dependent"):
        load(path)


def test_parse_is_exact_on_random_doubles(tmp_path, no_json_path):
    """Random bit patterns (every exponent up to the coordinate bound) and normal numbers, written
    by repr and with 17 and 25 digits, through the piece-by-piece and the one-read parse."""
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63, 200_000, dtype=np.int64).view(np.float64)
    vals = bits[np.isfinite(bits) & (np.abs(bits) < 1e8)]
    vals = np.concatenate([vals, rng.normal(0, 10, 60_000)])
    vals = vals[: len(vals) // 3 * 3]
    toks = ([repr(float(v)) for v in vals[0::3]] + [f"{v:.17g}" for v in vals[1::3]]
            + [f"{v:.25e}" for v in vals[2::3]])
    rows = ["[" + ",".join(toks[3 * i:3 * i + 3]) + "]" for i in range(len(toks) // 3)]
    for name, count in (("big", len(rows)), ("small", 2000)):
        text = ",".join(rows[:count])
        path = tmp_path / f"{name}.json"
        path.write_text(big_text(count, positions_rows=text, forces_rows=text))
        assert (path.stat().st_size > rmod._SMALL_FILE) == (name == "big")
        c = load(path)
        want = np.array(json.loads("[" + text + "]"), dtype=float).view(np.int64)
        np.testing.assert_array_equal(c.positions.view(np.int64), want)
        np.testing.assert_array_equal(c.forces.view(np.int64), want)


def test_unit_cache_tells_absent_from_null(tmp_path):
    """The unit factors are remembered per set of *Style values: an absent style (the default)
    and an explicit null (an error) are different sets."""
    ok = tmp_path / "ok.json"
    ok.write_text(big_text(2))
    assert load(ok).natoms == 2
    bad = tmp_path / "bad.json"
    bad.write_text(big_text(2, extra=', "StressStyle": null'))
    with pytest.raises(ValueError, match="StressStyle: expected a unit name, got None"):
        load(bad)
