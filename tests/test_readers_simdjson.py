"""The JSON reader's simdjson path (issue 14 item 6): a plain FitSNAP file's Positions, Forces,
Lattice and Stress go from the text straight into float64 arrays (pysimdjson's ``as_buffer``),
with the same values, bit for bit, as json.loads gives; every other form (rows that are not three
numbers, nesting that ``as_buffer`` would flatten, repeated keys, structure characters inside
strings, numbers simdjson refuses) is refused and read as before, with the same result or the
same error word for word."""
import json
import math

import numpy as np
import pytest
import simdjson

from mpisnap.plugins import readers
from mpisnap.records import ConfigRef

DOC = {"Dataset": {"Data": [{
    "AtomTypes": ["In", "P", "In"], "NumAtoms": 3, "Energy": -12.345678901234567,
    "Positions": [[0.0, -0.0, 1.5], [1e-300, 2.5e-320, 3.0000000000000004], [7, -8, 9.75]],
    "Forces": [[-0.0, 1.0, -2.5], [0.1, 0.2, 0.30000000000000004], [1e3, -1e-3, 12345.125]],
    "Lattice": [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]],
    "Stress": [[1.5, 0.25, 0], [0.25, -3, 0], [0, 0, 12345.678]]}],
    "PositionsStyle": "angstrom", "EnergyStyle": "electronvolt"}}


def _text(doc=DOC, indent=2) -> bytes:
    return ("# a comment line\n" + json.dumps(doc, indent=indent)).encode()


def _start(buf: bytes) -> int:
    return buf.index(b"\n") + 1


def test_plain_file_numbers_straight_into_arrays(tmp_path):
    for indent in (None, 1, 2):
        buf = _text(indent=indent)
        cfg = readers._simd_document(buf, _start(buf))
        ref = json.loads(buf[_start(buf):])["Dataset"]
        want = {k: v for k, v in ref.items() if k != "Data"} | ref["Data"][0]
        assert list(cfg) == list(want)  # Dataset's keys, then the configuration's
        for key in ("Positions", "Forces", "Lattice", "Stress"):
            a, b = cfg[key], np.array(want[key], dtype=float)
            assert isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), key  # bit for bit, the signs of zeros too
        assert {k: v for k, v in cfg.items() if not isinstance(v, np.ndarray)} == {
            k: v for k, v in want.items() if k not in readers._ARRAY_KEYS}
        path = tmp_path / f"plain{indent}.json"
        path.write_bytes(buf)
        parsed, fast = readers._json_parse(str(path))  # what the reader goes on with
        assert fast and type(parsed) is readers._Merged and list(parsed) == list(cfg)


def _with_positions(text: str) -> bytes:
    cfg = dict(DOC["Dataset"]["Data"][0], Positions="@POSITIONS@")
    doc = {"Dataset": dict(DOC["Dataset"], Data=[cfg])}
    return _text(doc).replace(b'"@POSITIONS@"', text.encode())


REFUSED = {
    "ragged rows, three numbers a row on average": _with_positions("[[1, 2], [3, 4, 5, 6], [7, 8, 9]]"),
    "a row nested one deeper": _with_positions("[[[1], 2, 3], [4, 5, 6], [7, 8, 9]]"),
    "a number beside a nested row": _with_positions("[1, [[2, 3], 4, 5, 6], [7, 8, 9]]"),
    "a comma in a name": _text().replace(b'"P"', b'"P,"'),
    "a bracket in a name": _text().replace(b'"P"', b'"P["'),
    "a repeated key": _text().replace(b'"NumAtoms": 3', b'"NumAtoms": 3, "NumAtoms": 4'),
    "a repeated Dataset key": _text().replace(b'"EnergyStyle": "electronvolt"',
                                              b'"EnergyStyle": "electronvolt", "EnergyStyle": "ha"'),
    "a key in both objects": _text().replace(b'"PositionsStyle": "angstrom"',
                                             b'"PositionsStyle": "angstrom", "NumAtoms": 3'),
    "an object among the values": _text().replace(b'"NumAtoms": 3',
                                                  b'"NumAtoms": 3, "Extra": {"a": 1}'),
    "two configurations": _text({"Dataset": {"Data": [DOC["Dataset"]["Data"][0]] * 2}}),
    "no Dataset object": _text({"Dataset": [1, 2]}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_other_forms_refused(case):
    buf = REFUSED[case]
    assert readers._simd_document(buf, _start(buf)) is None


BROKEN = {
    "a number beyond double": _with_positions("[[1e400, 2, 3], [4, 5, 6], [7, 8, 9]]"),
    "a big integer": _with_positions("[[123456789012345678901234567890, 2, 3], [4, 5, 6], "
                                     "[7, 8, 9]]"),
    "a boolean in a row": _with_positions("[[true, 2, 3], [4, 5, 6], [7, 8, 9]]"),
    "null in a row": _with_positions("[[null, 2, 3], [4, 5, 6], [7, 8, 9]]"),
    "NaN": _with_positions("[[NaN, 2, 3], [4, 5, 6], [7, 8, 9]]"),
    "not UTF-8": _text().replace(b'"P"', b'"P\xff"'),
    "truncated": _text()[:-40],
}


def _read(tmp_path, buf: bytes, name: str):
    path = tmp_path / "g" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(buf)
    try:
        c = readers._json_load(ConfigRef(name=f"g/{name}", group="g", source=str(path)))
    except ValueError as exc:
        return "error", str(exc)
    return "record", (c.positions.tobytes(), c.cell.tobytes(), c.symbols, c.energy,
                      None if c.forces is None else c.forces.tobytes(),
                      None if c.stress is None else c.stress.tobytes())


OTHER_UNITS = _text().replace(b'"angstrom"', b'"bohr"').replace(b'"electronvolt"', b'"hartree"')


@pytest.mark.parametrize("case", ["plain", "other units"] + sorted(REFUSED) + sorted(BROKEN))
def test_same_record_or_error_as_without_simdjson(case, tmp_path, monkeypatch):
    buf = {"plain": _text(), "other units": OTHER_UNITS, **REFUSED, **BROKEN}[case]
    name = case.replace(" ", "_").replace(",", "")
    got = _read(tmp_path, buf, name)
    monkeypatch.setattr(readers, "_simdjson", None)
    want = _read(tmp_path, buf, name)
    assert got == want
    if case == "plain":
        assert got[0] == "record" and not math.isnan(got[1][3])


def test_parser_reused_and_replaced_while_a_value_lives():
    buf = _text()
    first = readers._simd_document(buf, _start(buf))
    parser = readers._SIMD.parser
    held = parser.parse(b'{"Dataset": [1]}')["Dataset"]  # a live value of the shared parser
    second = readers._simd_document(buf, _start(buf))
    assert readers._SIMD.parser is not parser  # a new one: the old one is still in use
    assert isinstance(held, simdjson.Array) and len(held) == 1
    for key in readers._ARRAY_KEYS:
        assert np.array_equal(first[key], second[key])
