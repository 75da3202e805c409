"""With the compiled lane (kshock/wire/_lane.pyx) `kshock decode --json` prints exactly what the
pure-Python path prints, on real captures, edited captures and odd values. (test_wire_lanes.py
runs both of its outputs, frames and JSON lines, on every synthetic stream it makes.)"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kshock.capture.reader import CaptureReader
from kshock.replay.listing import open_run

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


def decode_json(path, compiled: bool, packets=None) -> tuple[str, str, int, str | None, int]:
    """(the JSON lines, the stats, frames shown, the capture's problem, packets read) of
    `kshock decode --json` on a capture."""
    run = open_run(str(path), [9092], compiled=compiled)
    if packets is not None:
        run.reader.close()
        run.reader = _ListReader(packets)
    out = io.StringIO()
    run.write_json(out.write)
    return out.getvalue(), repr(run.sniffer.stats), run.shown, run.problem, run.packets


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


# -- the lane reads classic pcap records in place (wire._lane.run_pcap) ---------------------------

def _records(path: Path) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """(file header, [(seconds, microseconds, packet)]) of a little-endian microsecond pcap."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, pos = [], 24
    while pos < len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        out.append((sec, usec, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return data[:24], out


def _write(path: Path, header: bytes, records, order: str = "<", scale: int = 1) -> Path:
    with open(path, "wb") as f:
        f.write(header)
        for sec, frac, raw in records:
            f.write(struct.pack(order + "IIII", sec, frac * scale, len(raw), len(raw)) + raw)
    return path


def test_big_endian_and_nanosecond_pcaps_print_the_same_json_both_ways(tmp_path):
    header, records = _records(ROOT / "captures" / "lab-mixed.pcap")
    fields = struct.unpack("<HHiIII", header[4:])  # version, zone, sigfigs, snaplen, link type
    big = _write(tmp_path / "big.pcap", b"\xa1\xb2\xc3\xd4" + struct.pack(">HHiIII", *fields), records, ">")
    nano = _write(tmp_path / "nano.pcap", b"\x4d\x3c\xb2\xa1" + header[4:], records, "<", 1000)
    plain = decode_json(ROOT / "captures" / "lab-mixed.pcap", True)
    for path in (big, nano):
        compiled, pure = decode_json(path, True), decode_json(path, False)
        assert compiled == pure
        assert compiled[2] == plain[2] and compiled[4] == plain[4] == len(records)


@pytest.mark.parametrize("damage", ["cut in a record header", "cut in a record", "absurd record length", "empty"])
def test_damaged_pcaps_stop_at_the_same_place_with_the_same_message(tmp_path, damage):
    data = (ROOT / "captures" / "lab-slow-link.pcap").read_bytes()
    header, records = _records(ROOT / "captures" / "lab-slow-link.pcap")
    at = 24 + sum(16 + len(raw) for _, _, raw in records[:300])  # record 301 starts here
    damaged = {
        "cut in a record header": data[:at + 9],
        "cut in a record": data[:at + 16 + 20],
        "absurd record length": data[:at + 8] + struct.pack("<I", 1 << 30) + data[at + 12:],
        "empty": data[:24],
    }[damage]
    path = tmp_path / "damaged.pcap"
    path.write_bytes(damaged)
    compiled, pure = decode_json(path, True), decode_json(path, False)
    assert compiled == pure
    assert compiled[4] == (0 if damage == "empty" else 300)
    assert (compiled[3] is None) == (damage == "empty")


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


# -- what a review of the lane found (each failed before its fix) ------------------------------

def _conversation_with(last: tuple) -> list:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_wire_lanes import produce, produce_response
    from wire_helpers import conversation

    packets = conversation([(produce(9, cid), produce_response(9, cid)) for cid in range(4)], close=False)
    return packets + [last]


def test_a_sniffer_that_raises_leaves_the_counters_it_made():
    """The lane keeps counters in C between Python calls; when the Python sniffer raises on a
    packet the lane declined (here ts=None), its counters must not be written back over it."""
    from wire_helpers import BROKER, CLIENT, eth_packet
    from kshock.wire.model import ACK, FIN, JsonLineEncoder, KafkaFrame
    from kshock.wire.sniffer import Sniffer

    packets = _conversation_with((None, 1, eth_packet(CLIENT, BROKER, 999_999, 0, FIN | ACK)))
    pure, compiled = Sniffer((9092,), compiled=False), Sniffer((9092,))
    with pytest.raises(TypeError):
        for ts, linktype, raw in packets:
            pure.feed(ts, linktype, raw)
    with pytest.raises(TypeError):
        lane_module().JsonLane(compiled).run(iter(packets), compiled.feed, compiled.finish,
                                             JsonLineEncoder().encode, lambda _: None, KafkaFrame)
    assert compiled.stats == pure.stats and compiled.stats.packets == len(packets)


@pytest.mark.parametrize("linktype", [2**31, 2**40, -2**70, 1.0, True])
def test_any_link_type_value_is_what_the_python_sniffer_makes_of_it(linktype):
    from wire_helpers import BROKER, CLIENT, eth_packet
    from kshock.wire.model import ACK
    from kshock.wire.sniffer import Sniffer

    packets = _conversation_with((1.0, linktype, eth_packet(CLIENT, BROKER, 5, 0, ACK)))
    pure, compiled = Sniffer((9092,), compiled=False), Sniffer((9092,))
    assert [pure.feed(*p) for p in packets] == [compiled.feed(*p) for p in packets]
    assert compiled.stats == pure.stats


def test_a_write_that_fails_mid_pcap_leaves_the_packet_count_true():
    run = open_run(str(ROOT / "captures" / "lab-mixed.pcap"), [9092])
    written = []

    def write(text: str) -> None:
        if written:
            raise BrokenPipeError
        written.append(text)

    with pytest.raises(BrokenPipeError):
        run.write_json(write)
    assert run.packets == run.sniffer.stats.packets > 0


# -- the Python state the lane reads and writes (the contract listed in _lane.pxd) -------------

LANE_CONTRACT = {
    "sniffer": ("stats", "decoder", "_lanes", "_next_expire", "_last_ts"),
    "stats": ("packets", "kafka_segments", "frames", "requests", "responses"),
    "decoder": ("fast",),
    "direction": ("half", "other", "framer", "dconn", "src", "dst", "flow", "is_request", "min_size", "max_size"),
    "half": ("pending", "fin_off", "gate", "base_seq", "next_off", "started", "conn"),
    "connection": ("last_ts",),
    "framer": ("buf", "hunting", "skip_to", "buf_off"),
    "dconn": ("request_shapes", "response_shapes", "outstanding", "max_outstanding", "client_id"),
    "request shape": ("head", "middle", "index_at", "flexible", "api_key", "api_version", "api", "topics",
                      "topic_ids", "client_id"),
    "response shape": ("api_key", "api_version", "head", "index_at", "fixed", "total", "fixed_at", "flexible",
                       "api", "topics", "topic_ids"),
}


def test_the_python_state_the_lane_reads_is_there():
    from wire_helpers import conversation
    from test_wire_lanes import produce_pairs
    from kshock.wire.sniffer import Sniffer

    sniffer = Sniffer((9092,), compiled=False)
    for ts, linktype, raw in conversation(produce_pairs(9, 6), close=False):
        sniffer.feed(ts, linktype, raw)
    direction = next(iter(sniffer._lanes.values()))
    dconn = direction.dconn
    objects = {"sniffer": sniffer, "stats": sniffer.stats, "decoder": sniffer.decoder, "direction": direction,
               "half": direction.half, "connection": direction.half.conn, "framer": direction.framer,
               "dconn": dconn, "request shape": dconn.request_shapes[0],
               "response shape": dconn.response_shapes[0]}
    for name, attributes in LANE_CONTRACT.items():
        for attribute in attributes:
            assert hasattr(objects[name], attribute), f"{name}.{attribute}"
    pxd = (ROOT / "kshock" / "wire" / "_lane.pxd").read_text()
    for attributes in LANE_CONTRACT.values():
        for attribute in attributes:
            assert attribute in pxd, attribute


def test_the_reference_path_takes_no_shortcut():
    from wire_helpers import conversation
    from test_wire_lanes import produce_pairs
    from kshock.wire.sniffer import Sniffer

    sniffer = Sniffer((9092,), shortcuts=False)
    assert not sniffer.compiled and not sniffer.shortcuts
    for ts, linktype, raw in conversation(produce_pairs(9, 6), close=False):
        sniffer.feed(ts, linktype, raw)
    assert not sniffer._lanes
    assert all(not s.decoder_conn.request_shapes and not s.decoder_conn.response_shapes
               for s in sniffer._conns.values())
    assert Sniffer((9092,)).compiled and not Sniffer((9092,), compiled=False).compiled
