"""The compiled JSON lane of `kshock decode --json` (kshock/wire/_lane.pyx) prints exactly
what the pure-Python path prints, on real captures, edited captures and odd values.
(test_wire_lanes.py runs it on every synthetic stream it makes, through assert_same.)"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kshock.capture import CaptureReader
from kshock.decoding import open_run

ROOT = Path(__file__).resolve().parents[2]
LAB = sorted((ROOT / "captures").glob("lab-*.pcap"))


def lane_module():
    try:
        from kshock.wire import _lane
    except ImportError as error:
        pytest.fail(f"the compiled lane is not built ({error}): `make setup` installs gcc, libc6-dev and "
                    "python3-dev, then `.venv/bin/pip install -e .` builds it")
    return _lane


def test_the_compiled_lane_is_built():
    assert lane_module().JsonLane is not None


def decode_json(path, compiled: bool, packets=None) -> tuple[str, str, int]:
    """(the JSON lines, the stats, frames shown) of `kshock decode --json` on a capture."""
    run = open_run(str(path), [9092])
    if packets is not None:
        run.reader.close()
        run.reader = _ListReader(packets)
    out = io.StringIO()
    run.write_json(out.write, compiled=compiled)
    return out.getvalue(), repr(run.sniffer.stats), run.shown


class _ListReader(list):
    """Edited packets in place of a capture file, with the reader's bookkeeping."""
    problem = None

    @property
    def packets(self) -> int:
        return len(self)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.stem)
def test_every_lab_capture_prints_the_same_json_both_ways(path):
    compiled, pure = decode_json(path, True), decode_json(path, False)
    assert compiled == pure
    assert compiled[0].count("\n") == compiled[2] > 0


def test_the_lane_takes_most_frames_of_the_produce_captures():
    """(So that the comparisons above compare the lane with Python, not Python with itself.)"""
    from kshock.wire.model import JsonLineEncoder, KafkaFrame
    from kshock.wire.sniffer import Sniffer

    made = {}
    for name in ("lab-mixed", "lab-compression", "lab-slow-link"):
        sniffer = Sniffer({9092})
        lane = lane_module().JsonLane(sniffer)
        with CaptureReader(ROOT / "captures" / f"{name}.pcap") as reader:
            lines = lane.run(reader, sniffer.feed, sniffer.finish, JsonLineEncoder().encode, lambda _: None,
                             KafkaFrame)
        made[name] = lane.made / lines
    assert min(made.values()) > 0.5, made


def _packets(name: str) -> list:
    with CaptureReader(ROOT / "captures" / f"{name}.pcap") as reader:
        return list(reader)


EDITS = {
    "drop every 97th packet": lambda pk: [p for i, p in enumerate(pk) if i % 97 != 50],
    "duplicate every 41st packet": lambda pk: [q for i, p in enumerate(pk) for q in ((p, p) if i % 41 == 7 else (p,))],
    "swap neighbours now and then": lambda pk: _swapped(pk, every=53),
    "start mid-stream": lambda pk: pk[len(pk) * 2 // 5:],
    "cut packets short": lambda pk: [(ts, lt, raw[:60] if i % 89 == 30 else raw) for i, (ts, lt, raw) in enumerate(pk)],
    "flip a byte in frames": lambda pk: [(ts, lt, _flip(raw, 80 + i % 40) if i % 31 == 3 else raw)
                                         for i, (ts, lt, raw) in enumerate(pk)],
    "odd timestamps": lambda pk: [(math.nan if i % 67 == 5 else math.inf if i % 67 == 6 else int(ts) if i % 67 == 7
                                   else ts, lt, raw) for i, (ts, lt, raw) in enumerate(pk)],
    "time runs backwards": lambda pk: [(ts - (i % 5) * 0.01, lt, raw) for i, (ts, lt, raw) in enumerate(pk)],
}


def _swapped(pk: list, every: int) -> list:
    out = list(pk)
    for i in range(5, len(out) - 1, every):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0x5A]) + raw[at + 1:] if at < len(raw) else raw


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("name", ["lab-mixed", "lab-slow-link"])
def test_edited_captures_print_the_same_json_both_ways(name, edit):
    packets = EDITS[edit](_packets(name))
    path = ROOT / "captures" / f"{name}.pcap"
    assert decode_json(path, True, packets) == decode_json(path, False, packets)


# -- round(x, 3) without the decimal conversion ------------------------------------------------

@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_round3_is_pythons_round(x):
    got, want = lane_module().round3(x), round(x, 3)
    assert struct.pack("<d", got) == struct.pack("<d", want)  # the same double, the sign of zero too


@settings(max_examples=3000, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(-3, 3))
def test_round3_near_half_way(thousandths, nudge):
    x = (thousandths + 0.5) / 1000.0 + nudge * 1e-15  # latencies in ms sit on these boundaries too
    assert struct.pack("<d", lane_module().round3(x)) == struct.pack("<d", round(x, 3))


def test_round3_odd_values():
    for x in (0.0, -0.0, -0.0001, 0.0005, -0.0005, 0.0015, 2.675, 1e12, -1e12, 1e15 + 0.5, 5e-324, 1.7e308):
        assert struct.pack("<d", lane_module().round3(x)) == struct.pack("<d", round(x, 3)), x
