"""The one pcap writer: what it writes, the reader (and tshark's libpcap rules) read back."""

from __future__ import annotations

import struct

import pytest

from kshock.capture.reader import CaptureReader
from kshock.capture.writer import PcapWriter, write_pcap


def test_round_trip_keeps_nanoseconds_bytes_and_linktype(tmp_path):
    packets = [(1_700_000_000.123456789, b"\x01" * 60), (1_700_000_000.999999999, b""), (5.0, bytes(range(256)))]
    path = tmp_path / "out.pcap"
    write_pcap(path, 101, packets)
    back = list(CaptureReader(str(path)))
    assert [raw for _ts, _link, raw in back] == [raw for _ts, raw in packets]
    assert {link for _ts, link, _raw in back} == {101}
    for (ts, _raw), (read_ts, _link, _raw2) in zip(packets, back):
        assert read_ts == pytest.approx(ts, abs=2e-9)


def test_header_is_nanosecond_pcap_2_4(tmp_path):
    path = tmp_path / "h.pcap"
    with PcapWriter(path, 1) as pcap:
        pcap.write(1.5, b"ab")
    data = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B23C4D, 2, 4, 1)
    assert snaplen >= 65535
    assert struct.unpack("<IIII", data[24:40]) == (1, 500_000_000, 2, 2)
    assert data[40:] == b"ab"


def test_a_fraction_that_rounds_up_stays_in_its_second(tmp_path):
    path = tmp_path / "edge.pcap"
    write_pcap(path, 1, [(7.9999999999, b"x")])
    sec, nsec = struct.unpack("<II", path.read_bytes()[24:32])
    assert (sec, nsec) == (7, 999_999_999)
