"""Kafka record sets: RecordBatch (magic 2) and legacy MessageSets (magic 0 and 1).

`count_records` is on the hot path and reads batch headers only (a compressed legacy wrapper is
the one case that needs decompressing). `batches` and `records` give the full picture on demand,
decompressing gzip (zlib) and snappy/lz4/zstd (cramjam). A batch cut at the end of a Fetch
response (brokers send partial batches) is not counted, like a client would.

Decompression is bounded, because a 2 MB frame can inflate to gigabytes: one batch (or legacy
wrapper) to MAX_BATCH_BYTES, all batches of one frame together to MAX_FRAME_DECOMPRESSED, and a
frame's records read on demand to MAX_FRAME_RECORDS (a `Budget` per frame). Output never grows
past the bound (zlib's max_length; snappy's declared length; lz4/zstd into a buffer of at most
the bound); a batch over it raises RecordsCut, which says what was not read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from struct import Struct

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
MAX_BATCH_BYTES = 32 << 20  # decompressed bytes of one batch: 32x Kafka's default 1 MiB batch bound
MAX_FRAME_DECOMPRESSED = 64 << 20  # all of one frame's batches, like the 64 MiB per-flow bound
MAX_FRAME_RECORDS = 1_000_000  # records of one frame read on demand (~150 bytes of objects each)
_I64_I32 = Struct("!qi")
_I32 = Struct("!i")
# RecordBatch v2 header after baseOffset/batchLength (offsets from the batch start)
_BATCH = Struct("!iBIhiqqqhii")  # leaderEpoch magic crc attributes lastOffsetDelta
#                                  firstTs maxTs producerId producerEpoch baseSequence count
_MSG_HEAD = Struct("!IBB")  # crc magic attributes


class RecordError(ValueError):
    """A record set that does not parse."""


class RecordsCut(RecordError):
    """Reading on would pass a bound (see the module docstring): the records are not read."""


class Budget:
    """What one frame may still decompress (bytes) and read (records); one per frame."""

    __slots__ = ("bytes_left", "records_left")

    def __init__(self, bytes_left: int = MAX_FRAME_DECOMPRESSED, records_left: int = MAX_FRAME_RECORDS) -> None:
        self.bytes_left = bytes_left
        self.records_left = records_left


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


def count_records(data: bytes | None, budget: Budget | None = None) -> int:
    """Records in a record set, reading batch headers only (RecordsCut when a compressed legacy
    wrapper decompresses past the bounds; pass one `budget` for all record sets of a frame)."""
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
                total += sum(1 for _ in _legacy_inner(data, pos, end, budget or Budget()))
            else:
                total += 1
        else:
            break
        pos = end
    return total


def batches(data: bytes | None, budget: Budget | None = None) -> list[BatchInfo]:
    """Header facts of each complete batch (a legacy message counts as a batch of one)."""
    out: list[BatchInfo] = []
    if not data:
        return out
    budget = budget or Budget()
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
            count = sum(1 for _ in _legacy_inner(data, pos, end, budget)) if attrs & 0x07 else 1
            out.append(BatchInfo(magic, base_offset, count, _codec(attrs & 0x07), size=12 + length))
        else:
            break
        pos = end
    return out


def records(data: bytes | None, budget: Budget | None = None) -> Iterator[Record]:
    """Every record with its key, value and headers, decompressed. Raises RecordError (RecordsCut
    at a bound: pass one `budget` for all record sets of a frame)."""
    if not data:
        return
    budget = budget or Budget()
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
                yield from _batch_records(data, pos, end, base_offset, budget)
            elif magic in (0, 1):
                yield from _legacy_records(data, pos, end, budget)
            else:
                raise RecordError(f"unknown record magic {magic}")
            pos = end
    except (IndexError, ValueError, zlib.error, OSError, EOFError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"bad record set: {exc}") from exc


def decompress(codec: str, data: bytes, budget: Budget | None = None) -> bytes:
    """One batch's (or legacy wrapper's) data, decompressed within the batch bound and the
    frame's `budget`; RecordsCut when it would not fit, with no more than the bound in memory."""
    budget = budget or Budget()
    limit = min(MAX_BATCH_BYTES, budget.bytes_left)
    if codec == "gzip":
        out = _gunzip(data, limit)
    elif codec in ("snappy", "lz4", "zstd"):
        import cramjam  # only needed for on-demand record access

        try:
            out = _snappy_decompress(cramjam, data, limit) if codec == "snappy" else \
                _decompress_into(cramjam, getattr(cramjam, codec), data, limit)
        except cramjam.DecompressionError as exc:
            raise RecordError(f"bad {codec} batch: {exc}") from None
    else:
        raise RecordError(f"unknown compression codec {codec}")
    if out is None:
        if limit == MAX_BATCH_BYTES:
            raise RecordsCut(f"a {codec} batch decompresses to more than {MAX_BATCH_BYTES >> 20} MiB, kshock's "
                             "bound per batch: its records were not read")
        raise RecordsCut(f"the frame's compressed batches hold more than {MAX_FRAME_DECOMPRESSED >> 20} MiB "
                         "together, kshock's bound per frame: its records were not all read")
    budget.bytes_left -= len(out)
    return out


def _gunzip(data: bytes, limit: int) -> bytes | None:
    """gzip.decompress (members in turn, zero padding after them) with at most limit + 1 bytes
    of output ever held; None past the limit."""
    parts = []
    size = 0
    rest = data
    while True:
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        part = inflate.decompress(rest, limit + 1 - size)
        size += len(part)
        if size > limit:
            return None
        if not inflate.eof:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        parts.append(part)
        rest = inflate.unused_data.lstrip(b"\x00")
        if not rest:
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _decompress_into(cramjam, codec, data: bytes, limit: int) -> bytes | None:
    """lz4/zstd frames into a buffer grown 4x at a time up to limit + 1 (cramjam stops with
    "failed to write whole buffer" when the output does not fit); None past the limit."""
    size = min(limit + 1, max(len(data) * 4, 1 << 16))
    while True:
        out = bytearray(size)
        try:
            n = codec.decompress_into(data, out)
        except cramjam.DecompressionError as exc:
            if "whole buffer" not in str(exc):
                raise
            if size > limit:
                return None
            size = min(limit + 1, size * 4)
            continue
        if n > limit:
            return None
        del out[n:]
        return bytes(out)


def _codec(bits: int) -> str:
    return CODECS[bits] if bits < len(CODECS) else f"codec{bits}"


_XERIAL = b"\x82SNAPPY\x00"


def _snappy_decompress(cramjam, data: bytes, limit: int) -> bytes | None:
    """Raw snappy, or the Java client's xerial blocks of it; every block declares its length,
    which is checked before it is decompressed. None past the limit."""
    if data[:8] != _XERIAL:
        if cramjam.snappy.decompress_raw_len(data) > limit:
            return None
        return bytes(cramjam.snappy.decompress_raw(data))
    out = bytearray()
    pos = 16
    while pos + 4 <= len(data):
        size = _I32.unpack_from(data, pos)[0]
        if size < 0:  # (pos would never move on)
            raise RecordError("bad snappy block length")
        block = data[pos + 4 : pos + 4 + size]
        if len(out) + cramjam.snappy.decompress_raw_len(block) > limit:
            return None
        out += cramjam.snappy.decompress_raw(block)
        pos += 4 + size
    return bytes(out)


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


def _batch_records(data: bytes, pos: int, end: int, base_offset: int, budget: Budget) -> Iterator[Record]:
    (_, _, _, attrs, _, first_ts, _, _, _, _, count) = _BATCH.unpack_from(data, pos + 12)
    body = data[pos + 61 : end]
    if attrs & 0x07:
        body = decompress(_codec(attrs & 0x07), body, budget)
    at = 0
    for _ in range(count):
        _take_record(budget)
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


def _take_record(budget: Budget) -> None:
    budget.records_left -= 1
    if budget.records_left < 0:
        raise RecordsCut(f"the frame holds more than {MAX_FRAME_RECORDS} records, kshock's bound for reading "
                         "one frame's records: they were not read")


def _legacy_inner(data: bytes, pos: int, end: int, budget: Budget) -> Iterator[tuple[int, int, int, bytes | None]]:
    """The messages inside the compressed wrapper message at pos (counting them only)."""
    try:
        _, _, attrs, _, _, value = _legacy_fields(data, pos, end)
        inner = decompress(_codec(attrs & 0x07), value or b"", budget)
    except RecordsCut:
        raise  # (reported: a count that skipped the wrapper would look right and be wrong)
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


def _legacy_records(data: bytes, pos: int, end: int, budget: Budget) -> Iterator[Record]:
    offset, magic, attrs, timestamp, key, value = _legacy_fields(data, pos, end)
    if not attrs & 0x07:
        _take_record(budget)
        yield Record(offset, timestamp, key, value)
        return
    inner = decompress(_codec(attrs & 0x07), value or b"", budget)
    at = 0
    while at + 17 <= len(inner):
        _take_record(budget)
        length = _I32.unpack_from(inner, at + 8)[0]
        inner_end = at + 12 + length
        if length < 5 or inner_end > len(inner):
            return
        i_off, _, _, i_ts, i_key, i_value = _legacy_fields(inner, at, inner_end)
        yield Record(i_off, i_ts, i_key, i_value)
        at = inner_end
