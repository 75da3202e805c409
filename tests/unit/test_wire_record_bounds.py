"""Decompression is bounded: per batch, per frame, and in records read (issue 10: a 2.1 MB pcap
holding a gzip bomb took a plain `decode` to 4.1 GB). What was cut is reported: an undecodable
frame saying why, or a summary line for a filter that could not see a frame's records."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import cramjam
import pytest
from kafka.protocol.producer import ProduceRequest

from cli_run import run_kshock
from kshock.conditions import Matcher, parse_condition
from kshock.wire.decode import frame_records
from kshock.wire.model import Malformed, Request
from kshock.wire.records import (
    MAX_BATCH_BYTES,
    MAX_FRAME_RECORDS,
    Budget,
    RecordsCut,
    count_records,
    decompress,
    records,
)
from kshock.wire.schema import SchemaTable
from wire_helpers import frames, record_batch, request_frame, resegment, run

MEMORY_BOUND_MB = 400
CODES = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_XERIAL = b"\x82SNAPPY\x00" + struct.pack("!ii", 1, 1)


def compressed(codec: str, data: bytes) -> bytes:
    return {"gzip": lambda: gzip.compress(data, 1), "snappy": lambda: bytes(cramjam.snappy.compress_raw(data)),
            "lz4": lambda: bytes(cramjam.lz4.compress(data)),
            "zstd": lambda: bytes(cramjam.zstd.compress(data))}[codec]()


def bomb(codec: str, mib: int) -> bytes:
    """`mib` MiB of zeros, cheaply: gzip members, lz4/zstd frames and snappy (xerial) blocks
    may follow one another, so one small piece is repeated."""
    piece_mib = 1 if codec == "snappy" else 8
    piece = compressed(codec, bytes(piece_mib << 20))
    if codec == "snappy":
        return _XERIAL + (struct.pack("!i", len(piece)) + piece) * (mib // piece_mib)
    return piece * (mib // piece_mib)


def legacy_wrapper(codec: str, value: bytes) -> bytes:
    """One magic-1 message whose value is a compressed message set (Produce v0-2)."""
    body = struct.pack("!BBq", 1, CODES[codec], 0) + struct.pack("!i", -1) + struct.pack("!i", len(value)) + value
    message = struct.pack("!I", zlib.crc32(body)) + body
    return struct.pack("!qi", 0, len(message)) + message


def magic2_batch(codec: str, body: bytes, count: int = 1) -> bytes:
    """A RecordBatch header (from kafka-python's builder) over an arbitrary compressed body."""
    head = bytearray(record_batch(1)[:61])
    struct.pack_into("!i", head, 8, 49 + len(body))
    attrs = struct.unpack_from("!h", head, 21)[0]
    struct.pack_into("!h", head, 21, (attrs & ~0x07) | CODES[codec])
    struct.pack_into("!i", head, 57, count)
    return bytes(head) + body


def produce(version: int, record_set: bytes) -> bytes:
    T = ProduceRequest.TopicProduceData
    fields = dict(acks=1, timeout_ms=1000,
                  topic_data=[T(name="t", partition_data=[T.PartitionProduceData(index=0, records=record_set)])])
    if version >= 3:
        fields["transactional_id"] = None
    return request_frame(ProduceRequest[version](**fields))


def segments(frame: bytes) -> list[tuple[float, int, bytes]]:
    return resegment([(frame, b"")], lambda b: [b[i:i + 8000] for i in range(0, len(b), 8000)])


def write_pcap(path: Path, frame: bytes) -> Path:
    packets = segments(frame)
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, _, raw in packets:
            out.write(struct.pack("<IIII", int(ts), int(ts % 1 * 1e6), len(raw), len(raw)) + raw)
    return path


def _batch_cut(codec: str) -> str:
    return f"a {codec} batch decompresses to more than 32 MiB, kshock's bound per batch: its records were not read"


FRAME_CUT = ("the frame's compressed batches hold more than 64 MiB together, kshock's bound per frame: its records "
             "were not all read")


# -- the codec layer ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec", sorted(CODES))
def test_within_the_bound_decompression_is_exact(codec):
    data = bytes(range(256)) * 4000 + b"tail"
    assert decompress(codec, compressed(codec, data)) == data
    if codec == "gzip":  # members in turn, zero padding after them, as gzip.decompress reads them
        assert decompress(codec, compressed(codec, b"ab") + compressed(codec, b"cd") + b"\0\0") == b"abcd"


@pytest.mark.parametrize("codec", sorted(CODES))
def test_a_bomb_is_cut_at_the_batch_bound(codec):
    data = bomb(codec, 96)
    with pytest.raises(RecordsCut) as caught:
        decompress(codec, data)
    assert str(caught.value) == _batch_cut(codec)
    exact = compressed(codec, bytes(MAX_BATCH_BYTES))  # exactly the bound still fits
    assert len(decompress(codec, exact)) == MAX_BATCH_BYTES


def test_corrupt_cramjam_input_is_a_record_error_not_a_crash():
    for codec in ("lz4", "zstd", "snappy"):
        good = compressed(codec, b"hello " * 500)
        with pytest.raises(ValueError):
            decompress(codec, good[: len(good) // 2] + b"\x00" * 8)


def test_the_frame_bound_is_shared_by_its_batches():
    batch = magic2_batch("gzip", compressed("gzip", bytes(24 << 20)))  # each under the batch bound
    budget = Budget()
    with pytest.raises(RecordsCut) as caught:
        list(records(batch * 3, budget))
    assert str(caught.value) == FRAME_CUT
    assert len(list(records(batch * 2))) == 2  # two of them fit


def test_records_read_from_one_frame_are_bounded():
    # seven-byte records (no key, no value, no header): ~150 bytes of objects each once read,
    # so a frame's count is bounded too (a budget of 1,000 here; 1,000,000 by default)
    assert Budget().records_left == MAX_FRAME_RECORDS == 1_000_000
    body = b"\x0c\x00\x00\x00\x01\x01\x00" * 1001
    batch = magic2_batch("zstd", compressed("zstd", body), count=1001)
    with pytest.raises(RecordsCut) as caught:
        list(records(batch, Budget(records_left=1000)))
    assert str(caught.value) == (f"the frame holds more than {MAX_FRAME_RECORDS} records, kshock's bound for "
                                 "reading one frame's records: they were not read")
    assert len(list(records(batch, Budget(records_left=1001)))) == 1001


def test_counting_a_legacy_wrapper_bomb_says_it_was_cut():
    wrapper = legacy_wrapper("gzip", bomb("gzip", 64))
    with pytest.raises(RecordsCut) as caught:
        count_records(wrapper)
    assert str(caught.value) == _batch_cut("gzip")
    small = legacy_wrapper("gzip", compressed("gzip", b"".join(
        struct.pack("!qi", i, 14) + struct.pack("!IBBii", 0, 0, 0, -1, -1) for i in range(3))))
    assert count_records(small) == 3  # what fits is still counted


# -- the decoder and conditions ----------------------------------------------------------------

def test_a_bomb_frame_is_reported_undecodable_with_its_header():
    (frame,) = frames(run(segments(produce(2, legacy_wrapper("gzip", bomb("gzip", 64))))))
    assert isinstance(frame, Malformed)
    assert (frame.api, frame.api_version, frame.client_id, frame.records) == ("Produce", 2, "client-1", None)
    assert frame.error == _batch_cut("gzip")


def test_a_filter_on_record_values_counts_the_frames_it_could_not_read():
    (frame,) = frames(run(segments(produce(9, magic2_batch("zstd", bomb("zstd", 96))))))
    assert isinstance(frame, Request) and frame.records == 1  # counting reads the header only
    matcher = Matcher(parse_condition('value contains "x"'), SchemaTable())
    assert matcher(frame) is False
    assert (matcher.cut, matcher.cut_reason) == (1, _batch_cut("zstd"))
    with pytest.raises(RecordsCut):
        frame_records(frame, SchemaTable())


# -- the command line, with a memory ceiling ---------------------------------------------------

@pytest.mark.parametrize("codec,mib", [("gzip", 2048), ("lz4", 1024), ("snappy", 128)])
def test_decode_of_a_legacy_bomb_stays_bounded_and_reports_the_cut(tmp_path, codec, mib):
    pcap = write_pcap(tmp_path / "bomb.pcap", produce(2, legacy_wrapper(codec, bomb(codec, mib))))
    outcome = run_kshock("decode", str(pcap))
    assert outcome.returncode == 0 and outcome.stderr == ""
    assert f"! not decoded: {_batch_cut(codec)}\n" in outcome.stdout
    assert "1 frames: 0 requests, 0 responses, 1 undecodable\n" in outcome.stdout
    assert outcome.maxrss_mb < MEMORY_BOUND_MB, outcome.maxrss_mb
    assert outcome.seconds < 10
    as_json = run_kshock("decode", "--json", str(pcap))
    assert f'"error": "{_batch_cut(codec)}"' in as_json.stdout.replace("\\u2019", "'")
    assert as_json.maxrss_mb < MEMORY_BOUND_MB


@pytest.mark.parametrize("codec,mib", [("gzip", 2048), ("lz4", 1024), ("snappy", 128), ("zstd", 4096)])
def test_a_record_filter_over_a_bomb_stays_bounded_and_says_so(tmp_path, codec, mib):
    pcap = write_pcap(tmp_path / "bomb.pcap", produce(9, magic2_batch(codec, bomb(codec, mib))))
    outcome = run_kshock("decode", str(pcap), "--filter", 'value contains "x"')
    assert outcome.returncode == 0 and outcome.stderr == ""
    assert outcome.stdout.endswith(f"0 of 1 frames matched the filter\n1 frames were filtered without their "
                                   f"records: {_batch_cut(codec)}\n")
    assert outcome.maxrss_mb < MEMORY_BOUND_MB, outcome.maxrss_mb
    assert outcome.seconds < 10
