"""EDGE: reading capture files as (timestamp, link-type, raw bytes); live capture is capture.live.

A lean pcap/pcapng reader over mmap (several times faster than scapy's RawPcapReader, which
is kept as `read_with_scapy` for cross-checks). A file that is not a capture raises
CaptureError; a file that ends badly (truncated, corrupt block) stops the iteration and sets
`CaptureReader.problem`, so everything before the damage is still decoded.

    reader = CaptureReader(path)
    for ts, linktype, raw in reader:
        ...
    if reader.problem: ...
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from struct import Struct

from kshock.errors import UserError
from kshock.host.files import open_capture

_MAX_RECORD = 256 * 1024 * 1024  # a record this large means a corrupt header
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class CaptureError(UserError):
    """A file that cannot be read as a capture."""


Packet = tuple[float, int, bytes]


class CaptureReader:
    """Iterate the packets of a pcap or pcapng file; see the module docstring."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.problem: str | None = None
        self.packets = 0
        self._data: bytes | mmap.mmap = b""
        try:
            f = open_capture(self.path)  # a regular file: never a pipe or /dev/zero read whole
        except UserError as exc:
            raise CaptureError(exc.message, exc.hint) from None
        with f:
            if os.fstat(f.fileno()).st_size:  # (an empty file cannot be mapped: it stays b"")
                try:
                    self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except (ValueError, OSError) as exc:
                    raise CaptureError(f"cannot map {self.path} into memory: {getattr(exc, 'strerror', None) or exc}",
                                       "copy the capture to an ordinary file system and try again") from None
        head = bytes(self._data[:4])
        if head in _PCAP_MAGICS:
            self.format = "pcap"
        elif head == _PCAPNG_SHB:
            self.format = "pcapng"
        else:
            self.close()
            raise CaptureError(f"{self.path} is not a pcap or pcapng file",
                               "give a capture written by tcpdump, tshark or dumpcap")

    def close(self) -> None:
        data = self._data
        self._data = b""
        if isinstance(data, mmap.mmap):
            data.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Packet]:
        # one generator per packet, not two: each counts what it yields into self.packets
        return self._pcap() if self.format == "pcap" else self._pcapng()

    def pcap_layout(self) -> tuple | None:
        """(data, first record offset, little-endian?, time unit, link type, largest record) of
        a classic pcap, for a reader that walks the records itself (wire/_lane.pyx) and hands
        back with `resume`; None for pcapng or a pcap too short for its file header."""
        data = self._data
        if self.format != "pcap" or len(data) < 24:
            return None
        order, unit = _PCAP_MAGICS[bytes(data[:4])]
        linktype = Struct(order + "I").unpack_from(data, 20)[0] & 0x0FFFFFFF
        return data, 24, order == "<", unit, linktype, _MAX_RECORD

    def resume(self, pos: int, packets: int) -> Iterator[Packet]:
        """The packets of a classic pcap from byte `pos` on, `packets` records having been read."""
        self.packets = packets
        return self._pcap(pos)

    def _pcap(self, pos: int = 24) -> Iterator[Packet]:
        data = self._data
        order, unit = _PCAP_MAGICS[bytes(data[:4])]
        if len(data) < 24:
            self.problem = "truncated pcap file header"
            return
        linktype = Struct(order + "I").unpack_from(data, 20)[0] & 0x0FFFFFFF
        unpack = Struct(order + "IIII").unpack_from
        end = len(data)
        while pos < end:
            if pos + 16 > end:
                self.problem = f"capture truncated inside the header of record {self.packets + 1}"
                return
            sec, frac, incl, _orig = unpack(data, pos)
            if incl > _MAX_RECORD:
                self.problem = f"corrupt record {self.packets + 1}: captured length {incl}"
                return
            start = pos + 16
            pos = start + incl
            if pos > end:
                self.problem = (f"capture truncated in record {self.packets + 1}: "
                                f"{incl} bytes announced, {end - start} present")
                return
            self.packets += 1
            yield sec + frac * unit, linktype, data[start:pos]

    def _pcapng(self) -> Iterator[Packet]:
        data = self._data
        end = len(data)
        pos = 0
        order = "<"
        interfaces: list[tuple[int, float, float]] = []  # (linktype, units per second, offset)
        while pos < end:
            if pos + 12 > end:
                self.problem = f"capture truncated inside a block header at byte {pos}"
                return
            if bytes(data[pos : pos + 4]) == _PCAPNG_SHB:
                bom = bytes(data[pos + 8 : pos + 12])
                order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
                if not order:
                    self.problem = f"corrupt section header at byte {pos}"
                    return
                interfaces = []
            btype, blen = Struct(order + "II").unpack_from(data, pos)
            if blen < 12 or blen % 4 or pos + blen > end:
                self.problem = (f"capture truncated or corrupt at byte {pos}: block of {blen} "
                                f"bytes, {end - pos} left")
                return
            body = pos + 8
            if btype == 1:  # interface description
                linktype = Struct(order + "H").unpack_from(data, body)[0]
                resol, offset = _if_options(data, body + 8, pos + blen - 4, order)
                interfaces.append((linktype, resol, offset))
            elif btype in (6, 2):  # enhanced packet / obsolete packet block
                if btype == 6:
                    iface, ts_hi, ts_lo, caplen = Struct(order + "IIII").unpack_from(data, body)
                else:
                    iface, _, ts_hi, ts_lo, caplen = Struct(order + "HHIII").unpack_from(data, body)
                start = body + 20
                if iface >= len(interfaces) or start + caplen > pos + blen - 4:
                    self.problem = f"corrupt packet block at byte {pos}"
                    return
                linktype, resol, offset = interfaces[iface]
                self.packets += 1
                yield ((ts_hi << 32 | ts_lo) / resol + offset, linktype, data[start : start + caplen])
            elif btype == 3:  # simple packet block: no timestamp
                if not interfaces:
                    self.problem = f"packet block before any interface at byte {pos}"
                    return
                caplen = min(Struct(order + "I").unpack_from(data, body)[0], blen - 16)
                self.packets += 1
                yield 0.0, interfaces[0][0], data[body + 4 : body + 4 + caplen]
            pos += blen


def _if_options(data, pos: int, end: int, order: str) -> tuple[float, float]:
    """if_tsresol (units per second) and if_tsoffset (seconds) of an interface block."""
    resol = 1e6
    offset = 0.0
    opt = Struct(order + "HH")
    while pos + 4 <= end:
        code, length = opt.unpack_from(data, pos)
        value = pos + 4
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[value]
            resol = float(2 ** (v & 0x7F)) if v & 0x80 else float(10**v)
        elif code == 14 and length >= 8:
            offset = float(Struct(order + "q").unpack_from(data, value)[0])
        pos = value + (length + 3) // 4 * 4
    return resol, offset


def read_capture(path: str | os.PathLike) -> Iterator[Packet]:
    """Packets of a capture; a damaged end raises CaptureError after the good packets."""
    with CaptureReader(path) as reader:
        yield from reader
        if reader.problem:
            raise CaptureError(f"{reader.path}: {reader.problem}",
                               "the packets before the damage were read")


def read_with_scapy(path: str | os.PathLike) -> Iterator[Packet]:
    """The same through scapy's raw readers (slower; for cross-checking the lean reader)."""
    from scapy.utils import RawPcapNgReader, RawPcapReader, PcapReader_metaclass  # noqa: F401

    with open_capture(path) as f:
        magic = f.read(4)
    if magic == _PCAPNG_SHB:
        reader = RawPcapNgReader(os.fspath(path))
        try:
            for raw, meta in reader:
                resol = meta.tsresol or 1000000
                yield ((meta.tshigh << 32 | meta.tslow) / resol, meta.linktype, raw)
        finally:
            reader.close()
    else:
        reader = RawPcapReader(os.fspath(path))
        try:
            for raw, meta in reader:
                frac = meta.usec if hasattr(meta, "usec") else meta.nsec
                unit = 1e-9 if reader.nano else 1e-6
                yield meta.sec + frac * unit, reader.linktype, raw
        finally:
            reader.close()
