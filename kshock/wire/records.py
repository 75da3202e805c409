"""Kafka record sets: RecordBatch (magic 2) and legacy MessageSets (magic 0 and 1).

`count_records` is on the hot path and reads batch headers only (a compressed legacy wrapper is
the one case that needs decompressing). `batches` and `records` give the full picture on demand,
decompressing gzip/snappy/lz4/zstd with cramjam. A batch cut at the end of a Fetch response
(brokers send partial batches) is not counted, like a client would.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from struct import Struct

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
_I64_I32 = Struct("!qi")
_I32 = Struct("!i")
# RecordBatch v2 header after baseOffset/batchLength (offsets from the batch start)
_BATCH = Struct("!iBIhiqqqhii")  # leaderEpoch magic crc attributes lastOffsetDelta
#                                  firstTs maxTs producerId producerEpoch baseSequence count
_MSG_HEAD = Struct("!IBB")  # crc magic attributes


class RecordError(ValueError):
    """A record set that does not parse."""


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True)
class BatchInfo:
    magic: int
    base_offset: int
    record_count: int
    codec: str
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    transactional: bool = False
    control: bool = False
    size: int = 0


def count_records(data: bytes | None) -> int:
    """Records in a record set, reading batch headers only."""
    if not data:
        return 0
    total = 0
    pos = 0
    n = len(data)
    while pos + 17 <= n:
        length = _I32.unpack_from(data, pos + 8)[0]
        end = pos + 12 + length
        if length < 5 or end > n:
            break  # a partial batch at the end (Fetch responses) or garbage
        magic = data[pos + 16]
        if magic == 2:
            if length < 49:
                break
            total += _I32.unpack_from(data, pos + 57)[0]
        elif magic in (0, 1):
            if data[pos + 17] & 0x07:  # a compressed wrapper holds the real messages
                total += sum(1 for _ in _legacy_inner(data, pos, end))
            else:
                total += 1
        else:
            break
        pos = end
    return total


def batches(data: bytes | None) -> list[BatchInfo]:
    """Header facts of each complete batch (a legacy message counts as a batch of one)."""
    out: list[BatchInfo] = []
    if not data:
        return out
    pos = 0
    n = len(data)
    while pos + 17 <= n:
        base_offset, length = _I64_I32.unpack_from(data, pos)
        end = pos + 12 + length
        if length < 5 or end > n:
            break
        magic = data[pos + 16]
        if magic == 2 and length >= 49:
            (_, _, _, attrs, _, _, _, pid, epoch, seq, count) = _BATCH.unpack_from(data, pos + 12)
            out.append(BatchInfo(2, base_offset, count, _codec(attrs & 0x07), pid, epoch, seq,
                                 bool(attrs & 0x10), bool(attrs & 0x20), 12 + length))
        elif magic in (0, 1):
            attrs = data[pos + 17]
            count = sum(1 for _ in _legacy_inner(data, pos, end)) if attrs & 0x07 else 1
            out.append(BatchInfo(magic, base_offset, count, _codec(attrs & 0x07), size=12 + length))
        else:
            break
        pos = end
    return out


def records(data: bytes | None) -> Iterator[Record]:
    """Every record with its key, value and headers, decompressed. Raises RecordError."""
    if not data:
        return
    pos = 0
    n = len(data)
    try:
        while pos + 17 <= n:
            base_offset, length = _I64_I32.unpack_from(data, pos)
            end = pos + 12 + length
            if length < 5 or end > n:
                return
            magic = data[pos + 16]
            if magic == 2:
                yield from _batch_records(data, pos, end, base_offset)
            elif magic in (0, 1):
                yield from _legacy_records(data, pos, end)
            else:
                raise RecordError(f"unknown record magic {magic}")
            pos = end
    except (IndexError, ValueError, zlib.error, OSError, EOFError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"bad record set: {exc}") from exc


def decompress(codec: str, data: bytes) -> bytes:
    import cramjam  # only needed for on-demand record access

    if codec == "gzip":
        return gzip.decompress(data)
    if codec == "snappy":
        return _snappy_decompress(cramjam, data)
    if codec == "lz4":
        return bytes(cramjam.lz4.decompress(data))
    if codec == "zstd":
        return bytes(cramjam.zstd.decompress(data))
    raise RecordError(f"unknown compression codec {codec}")


def _codec(bits: int) -> str:
    return CODECS[bits] if bits < len(CODECS) else f"codec{bits}"


_XERIAL = b"\x82SNAPPY\x00"


def _snappy_decompress(cramjam, data: bytes) -> bytes:
    if data[:8] == _XERIAL:  # the Java client's block framing
        out = bytearray()
        pos = 16
        while pos + 4 <= len(data):
            size = _I32.unpack_from(data, pos)[0]
            out += cramjam.snappy.decompress_raw(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
        return bytes(out)
    return bytes(cramjam.snappy.decompress_raw(data))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (record fields)."""
    shift = 0
    value = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise RecordError("varint too long")
    return (value >> 1) ^ -(value & 1), pos


def _batch_records(data: bytes, pos: int, end: int, base_offset: int) -> Iterator[Record]:
    (_, _, _, attrs, _, first_ts, _, _, _, _, count) = _BATCH.unpack_from(data, pos + 12)
    body = data[pos + 61 : end]
    if attrs & 0x07:
        body = decompress(_codec(attrs & 0x07), body)
    at = 0
    for _ in range(count):
        length, at = _varint(body, at)
        rec_end = at + length
        if length < 0 or rec_end > len(body):
            raise RecordError("record length beyond its batch")
        at += 1  # attributes
        ts_delta, at = _varint(body, at)
        off_delta, at = _varint(body, at)
        key, at = _varbytes(body, at)
        value, at = _varbytes(body, at)
        n_headers, at = _varint(body, at)
        headers = []
        for _ in range(n_headers):
            hkey, at = _varbytes(body, at)
            hval, at = _varbytes(body, at)
            headers.append(((hkey or b"").decode("utf-8", "replace"), hval))
        yield Record(base_offset + off_delta, first_ts + ts_delta, key, value, tuple(headers))
        at = rec_end


def _varbytes(data: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = _varint(data, pos)
    if length < 0:
        return None, pos
    if pos + length > len(data):
        raise RecordError("record field beyond its record")
    return bytes(data[pos : pos + length]), pos + length


def _legacy_fields(data: bytes, pos: int, end: int):
    """(offset, magic, attributes, timestamp, key, value) of the message at pos."""
    offset = _I64_I32.unpack_from(data, pos)[0]
    _, magic, attrs = _MSG_HEAD.unpack_from(data, pos + 12)
    at = pos + 18
    timestamp = None
    if magic == 1:
        timestamp = Struct("!q").unpack_from(data, at)[0]
        at += 8
    key_len = _I32.unpack_from(data, at)[0]
    at += 4
    key = None
    if key_len >= 0:
        key = bytes(data[at : at + key_len])
        at += key_len
    value_len = _I32.unpack_from(data, at)[0]
    at += 4
    value = None
    if value_len >= 0:
        if at + value_len > end:
            raise RecordError("message value beyond its message")
        value = bytes(data[at : at + value_len])
    return offset, magic, attrs, timestamp, key, value


def _legacy_inner(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, bytes | None]]:
    """The messages inside the compressed wrapper message at pos (counting them only)."""
    try:
        _, _, attrs, _, _, value = _legacy_fields(data, pos, end)
        inner = decompress(_codec(attrs & 0x07), value or b"")
    except Exception:  # noqa: BLE001 - any codec failure means: cannot count inside
        yield (0, 0, 0, None)  # count the wrapper as one record
        return
    at = 0
    while at + 17 <= len(inner):
        length = _I32.unpack_from(inner, at + 8)[0]
        if length < 5 or at + 12 + length > len(inner):
            return
        yield (0, 0, 0, None)
        at += 12 + length


def _legacy_records(data: bytes, pos: int, end: int) -> Iterator[Record]:
    offset, magic, attrs, timestamp, key, value = _legacy_fields(data, pos, end)
    if not attrs & 0x07:
        yield Record(offset, timestamp, key, value)
        return
    inner = decompress(_codec(attrs & 0x07), value or b"")
    at = 0
    while at + 17 <= len(inner):
        length = _I32.unpack_from(inner, at + 8)[0]
        inner_end = at + 12 + length
        if length < 5 or inner_end > len(inner):
            return
        i_off, _, _, i_ts, i_key, i_value = _legacy_fields(inner, at, inner_end)
        yield Record(i_off, i_ts, i_key, i_value)
        at = inner_end
