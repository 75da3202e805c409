"""Kafka framing: in-order stream bytes -> length-prefixed frames (RawFrame), per direction.

A frame is a big-endian int32 size followed by that many bytes. Frames may span many segments
and many frames may share one segment. After a Gap, or when a capture starts mid-stream, the
framer hunts for the next plausible frame: the caller's `plausible(buf, at)` judges a candidate
(known api key/version for requests, an outstanding correlation id for responses) and returns
STRONG, WEAK or NO. A WEAK candidate is only taken when it starts at a segment boundary and ends
exactly at one (or at the end of what has arrived): most small frames sit alone in a segment.

Absurd sizes (negative, too small, > 100 MB) become a RawFrame with `truncated` set and the
framer hunts again. Frames larger than the memory bound keep only their head.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct

from kshock.wire.model import Flow, RawFrame, Skipped, format_endpoint, new_raw_frame

MAX_FRAME_BYTES = 100 * 1000 * 1000
NO, WEAK, STRONG = 0, 1, 2
_HEAD_KEEP = 64 * 1024  # of an oversized frame, this much is kept for its header
_WEAK_WAIT_MAX = 1 << 20  # a weak candidate longer than this is not waited for
_I32 = Struct("!i")

Plausible = Callable[[bytes | bytearray, int], int]


def _always(buf: bytes | bytearray, at: int) -> int:
    return WEAK


class Framer:
    """Frames of one direction. `feed`/`gap`/`close` append RawFrame and Skipped to `out`."""

    __slots__ = (
        "flow", "min_size", "keep_limit", "plausible", "buf", "buf_off", "chunks",
        "hunting", "skip_to", "src", "dst", "is_request", "state",
    )

    def __init__(
        self,
        flow: Flow,
        *,
        is_request: bool,
        plausible: Plausible = _always,
        keep_limit: int = 48 * 1024 * 1024,
        midstream: bool = False,
    ) -> None:
        self.flow = flow
        self.is_request = is_request
        self.state = None  # the owner's per-connection state
        self.min_size = 8 if is_request else 4
        self.keep_limit = max(keep_limit, _HEAD_KEEP)
        self.plausible = plausible
        self.buf = bytearray()
        self.buf_off = 0  # stream offset of buf[0]
        self.chunks: list[tuple[int, int]] = []  # (stream offset, packet) of bytes in buf
        self.hunting = midstream
        self.skip_to: int | None = None  # drop bytes before this offset (rest of a lost frame)
        self.src = format_endpoint(flow.src, flow.sport)
        self.dst = format_endpoint(flow.dst, flow.dport)

    def feed(self, offset: int, data: bytes, ts: float, packet: int, out: list) -> None:
        skip_to = self.skip_to
        if skip_to is not None:
            end = offset + len(data)
            if end <= skip_to:
                return
            data = data[skip_to - offset :] if skip_to > offset else data
            offset = max(offset, skip_to)
            self.skip_to = None
        buf = self.buf
        if buf and not self.hunting and len(buf) >= 4:
            # the rest of a frame begun earlier: complete it from `data` without copying the
            # segment into the buffer, then frame the remainder like a fresh segment
            size = _I32.unpack_from(buf, 0)[0]
            need = 4 + size - len(buf)
            if self.min_size <= size <= MAX_FRAME_BYTES and size <= self.keep_limit \
                    and need > 0:
                if need > len(data):
                    buf += data
                    self.chunks.append((offset, packet))
                    return
                packets = self._packets(len(buf))
                if packet not in packets:
                    packets += (packet,)
                out.append(new_raw_frame(self.flow, ts, self.buf_off, size,
                                         bytes(buf[4:]) + data[:need], packets, ""))
                self.buf = bytearray()
                self.chunks = []
                offset += need
                self.buf_off = offset
                if need == len(data):
                    return
                data = data[need:]
        if not self.buf and not self.hunting:
            # hot path: whole frames straight from the segment, no copying into the buffer
            self.buf_off = offset
            n = len(data)
            pos = 0
            flow = self.flow
            while n - pos >= 4:
                size = _I32.unpack_from(data, pos)[0]
                if size < self.min_size or size > MAX_FRAME_BYTES or size > self.keep_limit:
                    break
                end = pos + 4 + size
                if end > n:
                    break
                out.append(new_raw_frame(flow, ts, offset + pos, size, data[pos + 4 : end], (packet,), ""))
                pos = end
            if pos == n:
                self.buf_off = offset + n
                return
            self.buf = bytearray(data[pos:]) if pos else bytearray(data)
            self.buf_off = offset + pos
            self.chunks = [(offset + pos, packet)]
            self._scan(ts, out)
            return
        if not self.buf:
            self.buf_off = offset
        self.buf += data
        self.chunks.append((offset, packet))
        self._scan(ts, out)

    def gap(self, offset: int, length: int, ts: float, out: list) -> None:
        """Bytes [offset, offset+length) were lost."""
        gap_end = offset + length
        if self.skip_to is not None:
            if gap_end <= self.skip_to:
                return  # lost bytes inside a frame we are already skipping
            self.skip_to = None
            self.hunting = True
        buf = self.buf
        if not self.hunting and len(buf) >= 4:
            size = _I32.unpack_from(buf, 0)[0]
            frame_end = self.buf_off + 4 + size
            out.append(self._frame(ts, size, len(buf), "bytes lost in capture (gap)"))
            self._drop(len(buf))
            if frame_end >= gap_end:
                self.skip_to = frame_end  # the next frame starts right after this one
            else:
                self.hunting = True
        elif buf:
            self._skipped(ts, len(buf), out)
            self.hunting = True
        else:
            self.hunting = True
        self.buf = bytearray()
        self.chunks = []
        self.buf_off = gap_end

    def close(self, ts: float, out: list) -> None:
        """The connection ended: a partial frame is reported as cut."""
        buf = self.buf
        if buf and not self.hunting and len(buf) >= 4:
            size = _I32.unpack_from(buf, 0)[0]
            out.append(self._frame(ts, size, len(buf), "connection closed mid-frame"))
        elif buf:
            self._skipped(ts, len(buf), out)
        self.buf = bytearray()
        self.chunks = []

    # -- internals -------------------------------------------------------------------------

    def _scan(self, ts: float, out: list) -> None:
        while True:
            if self.hunting and not self._hunt(ts, out):
                return
            buf = self.buf
            n = len(buf)
            if n < 4:
                return
            size = _I32.unpack_from(buf, 0)[0]
            if size < self.min_size or size > MAX_FRAME_BYTES:
                out.append(
                    RawFrame(self.flow, ts, self.buf_off, size, b"", self._packets(4),
                             f"implausible frame length {size}")
                )
                self._drop(4)
                self.hunting = True
                continue
            if size > self.keep_limit:
                keep = min(n - 4, _HEAD_KEEP)
                if keep < _HEAD_KEEP and n - 4 < size:
                    return
                out.append(self._frame(ts, size, 4 + keep,
                                       f"frame of {size} bytes exceeds the per-flow memory bound"))
                frame_end = self.buf_off + 4 + size
                if n >= 4 + size:
                    self._drop(4 + size)
                else:
                    self._drop(n)
                    self.buf_off = frame_end
                    self.skip_to = frame_end
                    return
                continue
            if n < 4 + size:
                return
            out.append(RawFrame(self.flow, ts, self.buf_off, size, bytes(buf[4 : 4 + size]),
                                self._packets(4 + size)))
            self._drop(4 + size)

    def _hunt(self, ts: float, out: list) -> bool:
        """Find a plausible frame start in buf; drop what precedes it. False: need more bytes."""
        buf = self.buf
        n = len(buf)
        plausible = self.plausible
        starts = {off - self.buf_off for off, _ in self.chunks}
        at = 0
        need = 14 if self.is_request else 8  # what `plausible` reads
        while at + need <= n:
            if buf[at] <= 5:  # sizes <= 100 MB have a small first byte
                verdict = plausible(buf, at)
                if verdict == STRONG:
                    return self._found(at, ts, out)
                if verdict == WEAK and at in starts:
                    size = _I32.unpack_from(buf, at)[0]
                    end = at + 4 + size
                    if end == n or end in starts:
                        return self._found(at, ts, out)
                    if end > n and size <= _WEAK_WAIT_MAX:
                        self._skip_before(at, ts, out)
                        return False  # wait and see whether it ends on a boundary
            at += 1
        self._skip_before(at, ts, out)
        return False

    def _found(self, at: int, ts: float, out: list) -> bool:
        self._skip_before(at, ts, out)
        self.hunting = False
        return True

    def _skip_before(self, at: int, ts: float, out: list) -> None:
        if at > 0:
            self._skipped(ts, at, out)
            self._drop(at)

    def _skipped(self, ts: float, length: int, out: list) -> None:
        out.append(Skipped(self.flow, ts, self.buf_off, length, self.src, self.dst))

    def _frame(self, ts: float, size: int, have: int, why: str) -> RawFrame:
        data = bytes(self.buf[4:have])
        return RawFrame(self.flow, ts, self.buf_off, size, data, self._packets(have), why)

    def _packets(self, length: int) -> tuple[int, ...]:
        """Packets that carried buf[0:length]."""
        start = self.buf_off
        end = start + length
        chunks = self.chunks
        found = []
        for i, (off, packet) in enumerate(chunks):
            if off >= end:
                break
            chunk_end = chunks[i + 1][0] if i + 1 < len(chunks) else start + len(self.buf)
            if chunk_end > start and packet not in found:
                found.append(packet)
        return tuple(found)

    def _drop(self, length: int) -> None:
        del self.buf[:length]
        self.buf_off += length
        chunks = self.chunks
        keep_from = 0
        for i in range(1, len(chunks)):
            if chunks[i][0] <= self.buf_off:
                keep_from = i
            else:
                break
        if keep_from:
            del chunks[:keep_from]
        if not self.buf:
            chunks.clear()
