"""EDGE: the one pcap writer — nanosecond pcap, as `kshock shell` `save` and the demo's tap write it.

Nanosecond resolution because AF_PACKET timestamps are nanoseconds (SO_TIMESTAMPNS) and the
reader (capture.reader) keeps them; a microsecond file would merge packets that were apart.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

NANOSECOND_MAGIC = 0xA1B23C4D
SNAPLEN = 262144  # as the live source captures (whole GRO/TSO super-packets)
_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


def file_header(linktype: int) -> bytes:
    """The 24-byte pcap global header (version 2.4, nanosecond timestamps) for `linktype`."""
    return _HEADER.pack(NANOSECOND_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)


def record(ts: float, raw: bytes) -> bytes:
    """One packet record: its 16-byte header (seconds, nanoseconds, lengths) and the bytes."""
    sec = int(ts)
    nsec = min(int(round((ts - sec) * 1e9)), 999_999_999)  # never carry into the next second
    return _RECORD.pack(sec, nsec, len(raw), len(raw)) + raw


class PcapWriter:
    """A pcap file written as packets come: `with PcapWriter(path, linktype) as pcap: pcap.write(ts, raw)`."""

    def __init__(self, path: str | os.PathLike, linktype: int) -> None:
        self.path = path
        self._out: BinaryIO = open(path, "wb")
        self._out.write(file_header(linktype))

    def write(self, ts: float, raw: bytes) -> None:
        self._out.write(record(ts, raw))

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_pcap(path: str | os.PathLike, linktype: int, packets: Iterable[tuple[float, bytes]]) -> None:
    """Write a whole pcap of (timestamp, bytes) packets."""
    with PcapWriter(path, linktype) as pcap:
        for ts, raw in packets:
            pcap.write(ts, raw)
