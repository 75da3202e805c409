"""Benchmark the pure wire core: Sniffer.feed over synthetic Produce traffic.

Builds N Produce v9 requests (one record each, like confluent-kafka with linger.ms=0 and
batch.num.messages=1) and their responses with kafka-python's encoders, wraps them as raw
Ethernet/IPv4/TCP packets on one connection, and times Sniffer.feed with the fast path and
with schema decoding only. No files, no tshark (the lead's benchmarks/decode.py compares).

    python benchmarks/decode_core.py [N]
"""

from __future__ import annotations

import struct
import sys
import time

from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from kshock.wire.sniffer import Sniffer

CLIENT = (bytes([10, 0, 0, 2]), 40000)
BROKER = (bytes([10, 0, 0, 1]), 9092)


def record_batch(i: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=1000, producer_epoch=0, base_sequence=i,
                                        batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000 + i, key=None, value=b"value-%08d" % i,
                   headers=[])
    return bytes(builder.build())


def produce_frames(n: int, version: int = 9) -> tuple[list[bytes], list[bytes]]:
    T = ProduceRequest.TopicProduceData
    P = T.PartitionProduceData
    RT = ProduceResponse.TopicProduceResponse
    RP = RT.PartitionProduceResponse
    requests, responses = [], []
    batch = record_batch(0)
    for i in range(n):
        req = ProduceRequest[version](
            transactional_id=None, acks=1, timeout_ms=30000,
            topic_data=[T(name="bench", partition_data=[P(index=i % 3, records=batch)])])
        req.with_header(correlation_id=i, client_id="rdkafka")
        requests.append(bytes(req.encode(header=True, framed=True)))
        resp = ProduceResponse[version](
            responses=[RT(name="bench", partition_responses=[RP(index=i % 3, error_code=0,
                                                               base_offset=i)])],
            throttle_time_ms=0)
        resp.with_header(correlation_id=i)
        responses.append(bytes(resp.encode(header=True, framed=True)))
    return requests, responses


def tcp_packet(src, dst, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6,
                     0, src[0], dst[0])
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    return eth + ip + tcp + payload


def packets(n: int) -> list[tuple[float, int, bytes]]:
    requests, responses = produce_frames(n)
    out = []
    cseq, sseq = 1000, 5000
    ts = 1_700_000_000.0
    for req, resp in zip(requests, responses):
        out.append((ts, 1, tcp_packet(CLIENT, BROKER, cseq, sseq, 0x18, req)))
        cseq += len(req)
        ts += 0.0001
        out.append((ts, 1, tcp_packet(BROKER, CLIENT, sseq, cseq, 0x18, resp)))
        sseq += len(resp)
        ts += 0.0001
    return out


def run(pkts, fast: bool) -> tuple[float, int, int]:
    sniffer = Sniffer({9092}, fast=fast)
    frames = records = 0
    feed = sniffer.feed
    start = time.perf_counter()
    for ts, linktype, raw in pkts:
        for event in feed(ts, linktype, raw):
            if event.kind == "request":
                frames += 1
                records += event.records or 0
            elif event.kind == "response":
                frames += 1
    sniffer.finish()
    return time.perf_counter() - start, frames, records


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    t0 = time.perf_counter()
    pkts = packets(n)
    print(f"synthesized {len(pkts)} packets ({n} Produce v9 requests + responses) "
          f"in {time.perf_counter() - t0:.1f}s")
    for fast in (True, False):
        elapsed, frames, records = run(pkts, fast)
        assert records == n, f"{records} records counted, expected {n}"
        label = "fast path  " if fast else "schema path"
        print(f"{label}: {len(pkts) / elapsed:10,.0f} packets/s  {frames / elapsed:10,.0f} frames/s"
              f"  ({elapsed:.2f}s, {frames} frames, {records} records)")


if __name__ == "__main__":
    main()
