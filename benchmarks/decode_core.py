"""Benchmark the wire core against tshark, in one run, on the same synthetic capture.

Builds N Produce requests (one record each, like confluent-kafka with linger.ms=0 and
batch.num.messages=1: one small request per message, one frame per TCP segment) and their
responses with kafka-python's encoders, wraps them as Ethernet/IPv4/TCP packets on one
connection and writes them to a temporary pcap. Then it times:

- core, in memory: Sniffer.feed over the packets (fast path, and schema decoding only);
- the decode path from the file: CaptureReader -> Sniffer -> frame events -> as_json() dicts,
  and -> JSON Lines text (`JsonLineEncoder`, what `kshock decode --json` prints);
- tshark -o kafka.tcp.ports:9092 -T fields -e kafka.api_key -e kafka.client_id
  -e kafka.topic_name on the same file (skipped with a note when tshark is missing);

and prints packets/s, frames/s, MB/s and the ratio to tshark. Every record must be counted.

    python benchmarks/decode_core.py [N] [--version V] [--keep FILE.pcap] [--no-schema]
    python benchmarks/decode_core.py --pcap LAB.pcap    # the same timings on a real capture
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import struct
import subprocess
import tempfile
import time

from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from kshock.capture.reader import CaptureReader
from kshock.wire.model import JsonLineEncoder, KafkaFrame
from kshock.wire.sniffer import Sniffer

CLIENT = (bytes([10, 0, 0, 2]), 40000)
BROKER = (bytes([10, 0, 0, 1]), 9092)
TSHARK_FIELDS = ["-e", "kafka.api_key", "-e", "kafka.client_id", "-e", "kafka.topic_name"]


def record_batch(i: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=1000, producer_epoch=0, base_sequence=i,
                                        batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000 + i, key=None, value=b"value-%08d" % i,
                   headers=[])
    return bytes(builder.build())


def produce_frames(n: int, version: int = 9) -> tuple[list[bytes], list[bytes]]:
    """Encoded with kafka-python once per partition, then the correlation id patched in."""
    T = ProduceRequest.TopicProduceData
    P = T.PartitionProduceData
    RT = ProduceResponse.TopicProduceResponse
    RP = RT.PartitionProduceResponse
    templates = []
    for part in range(3):
        req = ProduceRequest[version](
            transactional_id=None, acks=1, timeout_ms=30000,
            topic_data=[T(name="bench", partition_data=[P(index=part, records=record_batch(part))])])
        req.with_header(correlation_id=0, client_id="rdkafka")
        resp = ProduceResponse[version](
            responses=[RT(name="bench", partition_responses=[RP(index=part, error_code=0,
                                                               base_offset=part)])],
            throttle_time_ms=0)
        resp.with_header(correlation_id=0)
        templates.append((bytes(req.encode(header=True, framed=True)),
                          bytes(resp.encode(header=True, framed=True))))
    requests, responses = [], []
    for i in range(n):
        req, resp = templates[i % 3]
        cid = struct.pack("!i", i)
        requests.append(req[:8] + cid + req[12:])
        responses.append(resp[:4] + cid + resp[8:])
    return requests, responses


def tcp_packet(src, dst, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6,
                     0, src[0], dst[0])
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    return eth + ip + tcp + payload


def packets(n: int, version: int = 9) -> list[tuple[float, int, bytes]]:
    requests, responses = produce_frames(n, version)
    out = []
    cseq, sseq = 1000, 5000
    ts = 1_700_000_000.0
    out.append((ts, 1, tcp_packet(CLIENT, BROKER, cseq - 1, 0, 0x02, b"")))
    out.append((ts, 1, tcp_packet(BROKER, CLIENT, sseq - 1, cseq, 0x12, b"")))
    for req, resp in zip(requests, responses):
        out.append((ts, 1, tcp_packet(CLIENT, BROKER, cseq, sseq, 0x18, req)))
        cseq += len(req)
        ts += 0.0001
        out.append((ts, 1, tcp_packet(BROKER, CLIENT, sseq, cseq, 0x18, resp)))
        sseq += len(resp)
        ts += 0.0001
    return out


def write_pcap(path: str, pkts) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        head = struct.Struct("<IIII")
        for ts, _linktype, raw in pkts:
            sec = int(ts)
            usec = int(round((ts - sec) * 1e6))
            f.write(head.pack(sec, usec, len(raw), len(raw)))
            f.write(raw)


def count(event, tally: list) -> None:
    kind = event.kind
    if kind == "request":
        tally[0] += 1
        tally[1] += event.records or 0
    elif kind == "response":
        tally[0] += 1


def core(pkts, fast: bool) -> tuple[float, int, int]:
    """Sniffer.feed over packets in memory (no reader, no output)."""
    sniffer = Sniffer({9092}, fast=fast)
    feed = sniffer.feed
    tally = [0, 0]
    gc.collect()
    start = time.perf_counter()
    for ts, linktype, raw in pkts:
        for event in feed(ts, linktype, raw):
            count(event, tally)
    sniffer.finish()
    return time.perf_counter() - start, tally[0], tally[1]


def from_file(path: str, output: str) -> tuple[float, int, int, int]:
    """The decode path from the file: reader -> Sniffer -> events -> dicts or JSON lines."""
    sniffer = Sniffer({9092})
    feed = sniffer.feed
    frames = records = nbytes = 0
    sink = []
    encode = JsonLineEncoder().encode
    gc.collect()
    start = time.perf_counter()
    with CaptureReader(path) as reader:
        for ts, linktype, raw in reader:
            for event in feed(ts, linktype, raw):
                if isinstance(event, KafkaFrame):
                    frames += 1
                    records += event.records or 0 if event.kind == "request" else 0
                    if output == "dicts":
                        sink.append(event.as_json())
                    else:
                        sink.append(encode(event))
                if len(sink) >= 4096:
                    if output == "lines":
                        nbytes += len("".join(sink))
                    sink.clear()
        for event in sniffer.finish():
            if isinstance(event, KafkaFrame):
                frames += 1
    if output == "lines":
        nbytes += len("".join(sink))
    return time.perf_counter() - start, frames, records, nbytes


def tshark(path: str) -> tuple[float, int] | None:
    exe = shutil.which("tshark")
    if exe is None:
        return None
    cmd = [exe, "-r", path, "-o", "kafka.tcp.ports:9092", "-T", "fields", *TSHARK_FIELDS]
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        subprocess.run(cmd, stdout=out, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - start
        out.seek(0)
        lines = sum(1 for line in out if line.strip())
    return elapsed, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000, help="Produce requests")
    ap.add_argument("--version", type=int, default=9, help="Produce version (default 9)")
    ap.add_argument("--keep", help="also write the capture here")
    ap.add_argument("--pcap", help="time this capture instead (e.g. a lab flood recording)")
    ap.add_argument("--no-schema", action="store_true", help="skip the (slow) schema path")
    args = ap.parse_args()
    n = args.n
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.pcap:
            path = args.pcap
            with CaptureReader(path) as reader:
                pkts = list(reader)
            expect = None
            print(f"read {len(pkts)} packets from {path}")
        else:
            pkts = packets(n, args.version)
            path = args.keep or os.path.join(tmp, "produce.pcap")
            write_pcap(path, pkts)
            expect = n
        npk = len(pkts)
        mbytes = sum(len(raw) for _, _, raw in pkts) / 1e6
        if not args.pcap:
            print(f"synthesized {npk} packets ({n} Produce v{args.version} requests + responses, "
                  f"{mbytes:.1f} MB) in {time.perf_counter() - t0:.1f}s -> {path}")

        def line(label, elapsed, frames, extra=""):
            rate = f"{frames / elapsed:10,.0f} frames/s" if frames is not None else " " * 19
            print(f"{label:<28} {npk / elapsed:10,.0f} packets/s {rate} {mbytes / elapsed:6.1f} MB/s"
                  f"  ({elapsed:.2f}s{extra})")

        results = {}
        for fast in (True, False) if not args.no_schema else (True,):
            elapsed, frames, records = core(pkts, fast)
            assert expect is None or records == expect, f"{records} records, expected {expect}"
            label = "core, fast path" if fast else "core, schema path"
            line(label, elapsed, frames, f", {frames} frames, {records} records")
            results[label] = elapsed
        del pkts
        for output in ("dicts", "lines"):
            elapsed, frames, records, nbytes = from_file(path, output)
            assert expect is None or records == expect, f"{records} records, expected {expect}"
            assert expect is None or frames == 2 * expect, f"{frames} frames, expected {2 * expect}"
            label = "file -> as_json() dicts" if output == "dicts" else "file -> JSON lines"
            line(label, elapsed, frames, f", {nbytes / 1e6:.0f} MB of JSON" if nbytes else "")
            results[label] = elapsed
        ts = tshark(path)
        if ts is None:
            print("tshark not found: no ratio")
            return
        elapsed, lines = ts
        line("tshark -T fields", elapsed, None, f", {lines} non-empty lines")
        print(f"ratio, tshark time / kshock time (target >= 5): "
              + "  ".join(f"{label}: {elapsed / mine:.2f}x" for label, mine in results.items()))


if __name__ == "__main__":
    main()
