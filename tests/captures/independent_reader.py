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


# -- packets and frames, both directions: what a one-packet-at-a-time kernel rule can see ---------

@dataclass
class WirePacket:
    number: int  # 1-based, as in Wireshark
    conn: tuple  # (client ip, client port)
    toward: bool  # toward the Kafka port (a request's direction)
    offset: int  # stream offset of its first payload byte (from the direction's SYN)
    length: int  # payload bytes
    flags: int  # TCP flags
    head: bytes = b""  # the first 4 payload bytes: what a u32 test at payload offset 0 reads


@dataclass
class WireFrame:
    conn: tuple
    toward: bool
    offset: int  # stream offset of the length prefix
    size: int  # the length prefix's value
    correlation_id: int
    api_key: int | None  # a response's: its request's (by correlation id on the connection)
    api_version: int | None
    client_id: str | None  # a response's: its request's

    @property
    def end(self) -> int:
        return self.offset + 4 + self.size


@dataclass
class WireView:
    packets: list[WirePacket] = field(default_factory=list)
    frames: list[WireFrame] = field(default_factory=list)

    def _of(self, conn: tuple, toward: bool) -> list[WirePacket]:
        index = self.__dict__.setdefault("_index", {})
        if not index:
            for packet in self.packets:
                if packet.length:
                    index.setdefault((packet.conn, packet.toward), []).append(packet)
        return index.get((conn, toward), [])

    def starting(self, frame: WireFrame) -> WirePacket | None:
        """The first packet whose payload begins exactly with this frame's length prefix."""
        return next((p for p in self._of(frame.conn, frame.toward) if p.offset == frame.offset), None)

    def carriers(self, frame: WireFrame) -> set[int]:
        """The numbers of the packets carrying any byte of the frame."""
        return {p.number for p in self._of(frame.conn, frame.toward)
                if p.offset < frame.end and frame.offset < p.offset + p.length}

    def carrying(self, frame: WireFrame, numbers: set[int]) -> bool:
        """Whether any packet among `numbers` carries a byte of the frame."""
        return not self.carriers(frame).isdisjoint(numbers)


def read_view(path: str, kafka_port: int) -> WireView:
    """Every TCP packet on the Kafka port (numbered as Wireshark does) and every frame of both
    directions, parsed from the stitched streams by their length prefixes and headers only."""
    from scapy.all import IP, TCP, rdpcap

    view = WireView()
    streams: dict[tuple, dict[int, bytes]] = defaultdict(dict)
    base: dict[tuple, int] = {}
    raw_packets = []
    for number, packet in enumerate(rdpcap(path), start=1):
        if IP not in packet or TCP not in packet or kafka_port not in (packet[TCP].sport, packet[TCP].dport):
            continue
        tcp = packet[TCP]
        toward = tcp.dport == kafka_port
        conn = (packet[IP].src, tcp.sport) if toward else (packet[IP].dst, tcp.dport)
        if tcp.flags & 0x02:
            base[(conn, toward)] = tcp.seq + 1
        payload = bytes(tcp.payload)
        raw_packets.append((number, conn, toward, tcp.seq, payload, int(tcp.flags)))
        if payload:
            streams[(conn, toward)].setdefault(tcp.seq, payload)
    for number, conn, toward, seq, payload, flags in raw_packets:
        start = base[(conn, toward)]
        view.packets.append(WirePacket(number, conn, toward, (seq - start) & 0xFFFFFFFF, len(payload), flags,
                                       payload[:4]))
    requests: dict[tuple, tuple] = {}
    for toward in (True, False):  # requests first: responses take their api from them
        for (conn, direction), segments in streams.items():
            if direction != toward:
                continue
            data, _ = _stitch(segments, base[(conn, toward)])
            offset = 0
            while offset + 4 <= len(data):
                size = struct.unpack_from(">i", data, offset)[0]
                if offset + 4 + size > len(data):
                    break
                if toward:
                    api_key, api_version, corr, id_length = struct.unpack_from(">hhih", data, offset + 4)
                    client_id = None if id_length < 0 else data[offset + 14:offset + 14 + id_length].decode()
                    requests[(conn, corr)] = (api_key, api_version, client_id)
                else:
                    corr = struct.unpack_from(">i", data, offset + 4)[0]
                    api_key, api_version, client_id = requests.get((conn, corr), (None, None, None))
                view.frames.append(WireFrame(conn, toward, offset, size, corr, api_key, api_version, client_id))
                offset += 4 + size
    return view
