"""Shared helpers for the wire tests: packet builders, kafka-python frame builders, and the
one feeding helper (after h11's) that feeds every input in many ways."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatchBuilder

from kshock.wire.model import ACK, PSH, SYN, FIN, Closed, Gap, KafkaFrame, Skipped
from kshock.wire.sniffer import Sniffer

# the public captures live beside the project (../shared, see its SOURCES.md), on every machine
EXTERNAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "captures" / "external"



def external_captures(pattern: str = "*.pcap*") -> list[Path]:
    """The public captures matching `pattern` (recursively). Missing captures are a failure that
    says where they were expected, never an empty parametrization or a skip."""
    import pytest

    found = sorted(EXTERNAL.rglob(pattern)) if EXTERNAL.is_dir() else []
    if not found:
        pytest.fail(f"no public captures ({pattern}) in {EXTERNAL.resolve()}: they are expected in "
                    "../shared/captures/external beside the project (see its SOURCES.md)", pytrace=False)
    return found


CLIENT = (bytes([10, 0, 0, 2]), 40000)
BROKER = (bytes([10, 0, 0, 1]), 9092)


# -- packets ---------------------------------------------------------------------------------

def tcp(src, dst, seq: int, ack: int = 0, flags: int = ACK | PSH, payload: bytes = b"",
        options: bytes = b"") -> bytes:
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", src[1], dst[1], seq % 2**32, ack % 2**32, offset << 4,
                       flags, 65535, 0, 0) + options + payload


def ipv4(src: bytes, dst: bytes, body: bytes, proto: int = 6, frag: int = 0x4000,
         options: bytes = b"") -> bytes:
    ihl = (20 + len(options)) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(body), 0, frag, 64, proto,
                       0, src, dst) + options + body


def ipv6(src: bytes, dst: bytes, body: bytes, next_header: int = 6, ext: bytes = b"") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(body), next_header, 64, src,
                       dst) + ext + body


def ether(ip: bytes, ethertype: int = 0x0800, vlans: Iterable[int] = ()) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for i, vid in enumerate(vlans):
        head += struct.pack("!HH", 0x88A8 if i == 0 and len(list(vlans)) > 1 else 0x8100, vid)
    return head + struct.pack("!H", ethertype) + ip


def eth_packet(src, dst, seq, ack=0, flags=ACK | PSH, payload=b"") -> bytes:
    return ether(ipv4(src[0], dst[0], tcp(src, dst, seq, ack, flags, payload)))


def conversation(pairs: list[tuple[bytes, bytes]], handshake: bool = True, close: bool = True,
                 client=CLIENT, broker=BROKER, t0: float = 1000.0) -> list[tuple[float, int, bytes]]:
    """Ethernet packets of one connection: optional handshake, request/response payloads in
    turn (empty payloads are skipped), optional FIN close."""
    out = []
    cseq, sseq = 1000, 9000
    ts = t0

    def add(raw):
        nonlocal ts
        out.append((ts, 1, raw))
        ts += 0.001

    if handshake:
        add(eth_packet(client, broker, cseq - 1, 0, SYN))
        add(eth_packet(broker, client, sseq - 1, cseq, SYN | ACK))
        add(eth_packet(client, broker, cseq, sseq, ACK))
    for req, resp in pairs:
        if req:
            add(eth_packet(client, broker, cseq, sseq, ACK | PSH, req))
            cseq += len(req)
        if resp:
            add(eth_packet(broker, client, sseq, cseq, ACK | PSH, resp))
            sseq += len(resp)
    if close:
        add(eth_packet(client, broker, cseq, sseq, FIN | ACK))
        add(eth_packet(broker, client, sseq, cseq + 1, FIN | ACK))
        add(eth_packet(client, broker, cseq + 1, sseq + 1, ACK))
    return out


# -- kafka frames ----------------------------------------------------------------------------

def record_batch(n: int = 1, base_sequence: int = 0, compression: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=compression,
                                        is_transactional=False, producer_id=7,
                                        producer_epoch=1, base_sequence=base_sequence,
                                        batch_size=1 << 20)
    for i in range(n):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"v%d" % i,
                       headers=[("h", b"x")])
    return bytes(builder.build())


TOPIC_UUID = uuid.UUID("6a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3")


def sample_value(field, version: int, depth: int = 0, parent=None):
    """A non-default value for any schema field (2 elements in arrays, real record batches)."""
    t = field.type_str
    name = field.name
    if field.is_struct_array():
        return [sample_struct(parent, field, version, depth + 1, i) for i in range(2)]
    if field.is_struct():
        return sample_struct(parent, field, version, depth + 1, 0)
    if t == "records":
        return record_batch(2)
    if t == "bytes":
        return b"\x01\x02"
    if t == "string":
        return "topic-a" if "topic" in name or name == "name" else "s-" + name[:8]
    if t == "uuid":
        return TOPIC_UUID
    if t == "bool":
        return True
    if t == "float64":
        return 1.5
    if t in ("int8", "int16", "int32", "int64", "uint16"):
        return 3 if name == "error_code" else 4 if name.endswith("error_code") and t == "int16" else 1
    if t == "[]int32":
        return [0, 1]
    if t == "[]int64":
        return [5, 6]
    if t == "[]string":
        return ["topic-a", "topic-b"]
    if t == "[]uuid":
        return [TOPIC_UUID]
    return field.default


def sample_struct(parent, field, version: int, depth: int, index: int):
    cls = getattr(parent, field.type_str)
    values = {}
    for sub in field._fields:
        if sub.for_version_q(version):
            values[sub.name] = sample_value(sub, version, depth, cls)
            if sub.type_str == "string" and index:
                values[sub.name] = values[sub.name].replace("-a", "-b")
            if sub.type_str == "int32" and sub.name in ("partition_index", "partition", "index"):
                values[sub.name] = index
    return cls(**values)


def sample_message(cls, version: int, populated: bool = True):
    if not populated:
        return cls[version]()
    values = {f.name: sample_value(f, version, 0, cls) for f in cls._struct._fields
              if f.for_version_q(version)}
    return cls[version](**values)


def request_frame(msg, correlation_id: int = 7, client_id: str | None = "client-1") -> bytes:
    msg.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(msg.encode(header=True, framed=True))


def response_frame(msg, correlation_id: int = 7) -> bytes:
    msg.with_header(correlation_id=correlation_id)
    return bytes(msg.encode(header=True, framed=True))


# -- feeding ---------------------------------------------------------------------------------

def run(packets: Iterable[tuple[float, int, bytes]], ports=(9092,), **kw) -> list:
    sniffer = Sniffer(ports, **kw)
    events = []
    for ts, linktype, raw in packets:
        events.extend(sniffer.feed(ts, linktype, raw))
    events.extend(sniffer.finish())
    return events


def frames(events) -> list[KafkaFrame]:
    return [e for e in events if isinstance(e, KafkaFrame)]


def essence(events) -> list[tuple]:
    """What must not depend on how bytes were cut into segments."""
    out = []
    for e in events:
        if isinstance(e, KafkaFrame):
            out.append((e.kind, e.api_key, e.api_version, e.correlation_id, e.client_id,
                        e.topics, e.partitions, e.records, e.error_codes, e.decoded, e.error,
                        e.conn_client_id, e.raw))
        elif isinstance(e, Closed):
            out.append(("closed",))
    return out


def resegment(pairs: list[tuple[bytes, bytes]], cut: Callable[[bytes], list[bytes]], *,
              duplicate: bool = False, reorder: bool = False) -> list[tuple[float, int, bytes]]:
    """A handshake + the client's and broker's byte streams, cut by `cut` into segments;
    optionally each segment sent twice, or adjacent segments swapped."""
    out = []
    cseq, sseq = 1000, 9000
    ts = 1000.0

    def add(raw):
        nonlocal ts
        out.append((ts, 1, raw))
        ts += 0.001

    add(eth_packet(CLIENT, BROKER, cseq - 1, 0, SYN))
    add(eth_packet(BROKER, CLIENT, sseq - 1, cseq, SYN | ACK))
    for req, resp in pairs:
        for stream, (src, dst) in ((req, (CLIENT, BROKER)), (resp, (BROKER, CLIENT))):
            if not stream:
                continue
            segs = []
            seq = cseq if src is CLIENT else sseq
            for piece in cut(stream):
                segs.append(eth_packet(src, dst, seq, 0, PSH, piece))  # no ACK: no gap logic
                seq += len(piece)
            if reorder:
                for i in range(0, len(segs) - 1, 2):
                    segs[i], segs[i + 1] = segs[i + 1], segs[i]
            for raw in segs:
                add(raw)
                if duplicate:
                    add(raw)
            if src is CLIENT:
                cseq = seq
            else:
                sseq = seq
    return out


def every_way(pairs: list[tuple[bytes, bytes]]) -> dict[str, list]:
    """Feed a conversation whole, byte by byte, split at every offset, duplicated and
    reordered; return the essence of the events for each way (all must be equal)."""
    ways: dict[str, list] = {}
    ways["whole"] = essence(run(resegment(pairs, lambda s: [s])))
    ways["bytewise"] = essence(run(resegment(pairs, lambda s: [s[i:i + 1] for i in range(len(s))])))
    ways["duplicated"] = essence(run(resegment(pairs, lambda s: [s[i:i + 7] for i in range(0, len(s), 7)], duplicate=True)))
    ways["reordered"] = essence(run(resegment(pairs, lambda s: [s[i:i + 5] for i in range(0, len(s), 5)], reorder=True)))
    longest = max(max(len(r), len(p)) for r, p in pairs)
    for at in range(1, longest):
        ways[f"split@{at}"] = essence(run(resegment(pairs, lambda s, at=at: [s[:at], s[at:]] if at < len(s) else [s])))
    return ways


def not_frames(events) -> list:
    return [e for e in events if isinstance(e, (Gap, Skipped))]
