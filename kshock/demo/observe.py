"""EDGE: what the demo sees — a live capture on the lab bridge, decoded as it comes, kept as a
log of frames (and written to a pcap for act 6's replay); plus the questions acts ask of it.

The tap runs in one background thread: AF_PACKET socket (kshock.capture.live) -> pcap file and
wire.Sniffer -> FrameLog. The acts read the log from the main thread; the log only grows, and a
snapshot is a list copy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from kshock.wire.model import Closed, KafkaFrame, Request, Response



def client_of(frame: KafkaFrame) -> str:
    return frame.client_id or frame.conn_client_id or "?"


@dataclass(slots=True)
class FrameLog:
    """Every decoded frame and connection close, in capture order."""

    frames: list[KafkaFrame] = field(default_factory=list)
    closes: list[Closed] = field(default_factory=list)
    packets: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, events: Iterable) -> None:
        with self.lock:
            for event in events:
                if isinstance(event, KafkaFrame):
                    self.frames.append(event)
                elif isinstance(event, Closed):
                    self.closes.append(event)

    def snapshot(self) -> list[KafkaFrame]:
        with self.lock:
            return list(self.frames)

    def between(self, start: float, end: float | None = None) -> list[KafkaFrame]:
        end = time.time() if end is None else end
        return [f for f in self.snapshot() if start <= f.ts <= end]

    def latest(self, client: str, api: str, kind: str = "request") -> KafkaFrame | None:
        for frame in reversed(self.snapshot()):
            if frame.kind == kind and frame.api == api and client_of(frame) == client:
                return frame
        return None


class LiveTap:
    """Capture on the lab bridge in the broker's namespace; decode and record as packets come."""

    def __init__(self, netns: str, interface: str, port: int, pcap_path: Path) -> None:
        self.netns, self.interface, self.port = netns, interface, port
        self.pcap_path = pcap_path
        self.log = FrameLog()
        self.drops = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._capture = None
        self._pcap = None

    def start(self) -> LiveTap:
        from kshock.capture.live import LiveCapture
        from kshock.capture.writer import PcapWriter
        from kshock.wire.sniffer import Sniffer

        self._capture = LiveCapture(ports={self.port}, interface=self.interface, netns=self.netns).open()
        self._sniffer = Sniffer(ports={self.port})
        self.pcap_path.parent.mkdir(parents=True, exist_ok=True)
        self._pcap = PcapWriter(self.pcap_path, self._capture.linktype)  # Ethernet on the bridge
        self._thread = threading.Thread(target=self._run, name="kshock-demo-tap", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import select

        capture, sniffer, pcap, log = self._capture, self._sniffer, self._pcap, self.log
        try:
            while not self._stop.is_set():
                batch = capture.read_ready()
                if not batch:
                    select.select([capture], [], [], 0.05)
                    continue
                events = []
                with self._write_lock:
                    for ts, linktype, raw in batch:
                        pcap.write(ts, raw)
                        events += sniffer.feed(ts, linktype, raw)
                log.packets += len(batch)
                if events:
                    log.add(events)
        except BaseException as error:  # noqa: BLE001 — reported by stop() and checked by the acts
            self.error = error

    def snapshot(self, path: Path) -> Path:
        """A complete pcap of everything captured so far (the tap goes on writing its own)."""
        time.sleep(0.2)  # what is queued in the socket reaches the file
        with self._write_lock:
            if self._pcap is not None:
                self._pcap.flush()
            size = self.pcap_path.stat().st_size
        with open(self.pcap_path, "rb") as source, open(path, "wb") as out:
            left = size
            while left > 0:
                chunk = source.read(min(left, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                left -= len(chunk)
        return path

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._capture is not None:
            self.drops = self._capture.stats().drops
            self._capture.close()
            self._capture = None
        if self._pcap is not None:
            self._pcap.close()
            self._pcap = None

    def capture_drops(self) -> int:
        if self._capture is not None:
            return self._capture.stats().drops
        return self.drops


# -- questions the acts ask of a list of frames ----------------------------------------------

@dataclass(slots=True)
class ClientStats:
    client: str
    requests: int = 0
    produce_requests: int = 0
    acks: int = 0  # Produce responses
    records_acked: int = 0  # records of the Produce requests those responses answer
    fetched_records: int = 0  # records in Fetch responses
    fetch_partitions: set[int] = field(default_factory=set)
    apis: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float | None:
        return median(self.latencies_ms) if self.latencies_ms else None


def client_stats(frames: Iterable[KafkaFrame]) -> dict[str, ClientStats]:
    stats: dict[str, ClientStats] = {}
    produce_records: dict[tuple, int] = {}
    for frame in frames:
        client = client_of(frame)
        entry = stats.get(client) or stats.setdefault(client, ClientStats(client))
        if isinstance(frame, Request):
            entry.requests += 1
            entry.apis[frame.api or str(frame.api_key)] += 1
            if frame.api == "Produce":
                entry.produce_requests += 1
                produce_records[(frame.src, frame.correlation_id)] = frame.records or 0
            elif frame.api == "Fetch":
                entry.fetch_partitions.update(frame.partitions)
        elif isinstance(frame, Response):
            if frame.latency_ms is not None:
                entry.latencies_ms.append(frame.latency_ms)
            if frame.api == "Produce":
                entry.acks += 1
                entry.records_acked += produce_records.get((frame.dst, frame.correlation_id), 0)
            elif frame.api == "Fetch":
                entry.fetched_records += frame.records or 0
    return stats


def rate_series(frames: Iterable[KafkaFrame], start: float, end: float, bucket_s: float = 0.5,
                kind: str = "request", api: str | None = None) -> dict[str, list[float]]:
    """client -> frames per second in each bucket of [start, end) (requests by default)."""
    buckets = max(1, int((end - start) / bucket_s + 0.999))
    series: dict[str, list[float]] = {}
    for frame in frames:
        if frame.kind != kind or (api is not None and frame.api != api) or not start <= frame.ts < end:
            continue
        row = series.setdefault(client_of(frame), [0.0] * buckets)
        row[min(buckets - 1, int((frame.ts - start) / bucket_s))] += 1 / bucket_s
    return series
