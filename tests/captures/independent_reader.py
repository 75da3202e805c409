"""A deliberately simple Kafka capture reader for checking the recorded captures' sidecars.

It is independent of kshock's own decoder on purpose: scapy parses the packets, segments are
stitched by sequence number (lab captures are loss-free and begin with the SYN), and kafka-python's
ProduceRequest class decodes Produce bodies. Record counts come straight from the record-batch
headers (magic 2: int32 at batch offset 57; legacy message sets: one message per entry).
"""

from __future__ import annotations

import struct
from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class WireRequest:
    client_ip: str
    client_port: int
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    frame: bytes


@dataclass
class CaptureFacts:
    requests: list[WireRequest] = field(default_factory=list)
    records: Counter = field(default_factory=Counter)  # (client_id, topic) -> records in Produce requests
    codecs: dict = field(default_factory=lambda: defaultdict(set))  # client_id -> batch compression codecs
    frames_starting_mid_segment: int = 0
    frames: int = 0
    max_segment_payload: int = 0


def read_capture(path: str, kafka_port: int) -> CaptureFacts:
    from scapy.all import IP, TCP, rdpcap

    streams: dict[tuple, dict[int, bytes]] = defaultdict(dict)
    first_seq: dict[tuple, int] = {}
    facts_max = 0
    for packet in rdpcap(path):
        if IP not in packet or TCP not in packet or packet[TCP].dport != kafka_port:
            continue
        key = (packet[IP].src, packet[TCP].sport)
        tcp = packet[TCP]
        if tcp.flags & 0x02:  # SYN: data starts one past its sequence number
            first_seq[key] = tcp.seq + 1
        payload = bytes(tcp.payload)
        facts_max = max(facts_max, len(payload))
        if payload:
            streams[key].setdefault(tcp.seq, payload)  # a retransmission keeps the first copy
    facts = CaptureFacts(max_segment_payload=facts_max)
    for key, segments in streams.items():
        data, boundaries = _stitch(segments, first_seq[key])
        _walk_requests(key, data, boundaries, facts)
    return facts


def _stitch(segments: dict[int, bytes], start: int) -> tuple[bytes, set[int]]:
    data = bytearray()
    boundaries = set()
    for seq in sorted(segments):
        payload = segments[seq]
        offset = (seq - start) & 0xFFFFFFFF
        if offset > len(data):
            raise AssertionError(f"gap in a lab capture at stream offset {len(data)}")
        boundaries.add(offset)
        data += payload[len(data) - offset:]
    return bytes(data), boundaries


def _walk_requests(key: tuple, data: bytes, boundaries: set[int], facts: CaptureFacts) -> None:
    offset = 0
    while offset + 4 <= len(data):
        size = struct.unpack_from(">i", data, offset)[0]
        frame = data[offset + 4: offset + 4 + size]
        if len(frame) < size:
            break  # the connection was cut mid-frame
        api_key, api_version, correlation_id, id_length = struct.unpack_from(">hhih", frame, 0)
        client_id = None if id_length < 0 else frame[10:10 + id_length].decode()
        facts.requests.append(WireRequest(key[0], key[1], api_key, api_version, correlation_id, client_id, frame))
        facts.frames += 1
        facts.frames_starting_mid_segment += offset not in boundaries
        if api_key == 0:
            for topic, count, codecs in _produce_records(frame, api_version):
                facts.records[(client_id, topic)] += count
                facts.codecs[client_id] |= codecs
        offset += 4 + size


def _produce_records(frame: bytes, version: int) -> list[tuple[str, int, set[str]]]:
    from kafka.protocol.producer import ProduceRequest

    request = ProduceRequest.decode(frame, version=version, header=True)
    found = []
    for topic in request.topic_data:
        for partition in topic.partition_data:
            found.append((topic.name, *_count_records(bytes(partition.records or b""))))
    return found


CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _count_records(records: bytes) -> tuple[int, set[str]]:
    count, offset, codecs = 0, 0, set()
    while offset + 17 <= len(records):
        length = struct.unpack_from(">i", records, offset + 8)[0]
        magic = records[offset + 16]
        if magic == 2:
            count += struct.unpack_from(">i", records, offset + 57)[0]
            codecs.add(CODECS.get(struct.unpack_from(">h", records, offset + 21)[0] & 7, "?"))
        else:  # a legacy message set holds one message per entry (ignoring nested compressed sets)
            count += 1
        offset += 12 + length
    return count, codecs
