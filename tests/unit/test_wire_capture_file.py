"""kshock.capture.reader: the lean pcap/pcapng reader (an edge, tested on files)."""

from __future__ import annotations

import pytest

from kshock.capture.reader import CaptureError, CaptureReader, read_capture, read_with_scapy
from wire_helpers import EXTERNAL, external_captures

ALL = external_captures()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_lean_reader_equals_scapy(path):
    mine = list(CaptureReader(path))
    theirs = list(read_with_scapy(path))
    assert [(lt, raw) for _, lt, raw in mine] == [(lt, bytes(raw)) for _, lt, raw in theirs]
    assert [ts for ts, _, _ in mine] == pytest.approx([float(ts) for ts, _, _ in theirs], abs=2e-6)


def test_nanosecond_pcap_timestamps():
    ts = [t for t, _, _ in CaptureReader(EXTERNAL / "deepflow/01-fetch-v12-unknown.pcap")]
    assert ts and all(t == int(t) for t in ts)


@pytest.mark.parametrize("name", ["go-sniffer/kafka.pcap", "ndpi/kafka.pcapng"])
def test_truncated_files_keep_the_good_packets_and_say_why(tmp_path, name):
    data = (EXTERNAL / name).read_bytes()
    whole = len(list(CaptureReader(EXTERNAL / name)))
    cut = tmp_path / "cut"
    cut.write_bytes(data[: len(data) - 30])
    reader = CaptureReader(cut)
    got = list(reader)
    assert len(got) == whole - 1
    assert "truncated" in reader.problem
    with pytest.raises(CaptureError, match="truncated"):
        list(read_capture(cut))


def test_not_a_capture(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        CaptureReader(bad)
    with pytest.raises(CaptureError, match="cannot read"):
        CaptureReader(tmp_path / "missing.pcap")
