"""The shell's state: frames seen, statistics, the live view's filter, and the rules.

A capture thread calls `feed_packets`; the prompt reads. Everything that both touch is guarded
by `lock`. Memory is bounded: the last `max_frames` frames and `max_packets` packets (the raw
packets are what `replay` runs the rules over) are kept, statistics cover everything seen.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from kshock.conditions import Condition, Matcher
from kshock.rules.kernel import RuleSet
from kshock.rules.spec import RuleSpec
from kshock.wire.model import KafkaFrame
from kshock.wire.sniffer import Sniffer

MAX_FRAMES = 200_000
MAX_PACKETS = 400_000
MAX_PACKET_BYTES = 512 << 20
MAX_LATENCIES = 50_000  # per API: the newest samples
LIVE_LINES = 1000  # frame numbers the live view remembers
FILTER_LOOKBACK = 50_000  # frames a new filter looks back through for the live view
MAX_BROKERS = 64  # broker endpoints remembered (for asking one about topic ids)


@dataclass(slots=True)
class Tally:
    """Counts for one API, client id or topic."""

    requests: int = 0
    responses: int = 0
    records: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=MAX_LATENCIES))

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the kept latencies (q in 0..100)."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
        return ordered[int(rank) - 1]


@dataclass(slots=True)
class ShellRule:
    """One rule of the session: compiled when written, applied on `apply`."""

    spec: RuleSpec
    ruleset: RuleSet
    state: str = "pending"  # pending | applied | reverted | expired
    record: object | None = None  # kshock.apply.faults.FaultRecord once applied
    expires_at: float | None = None  # epoch seconds, once applied


def frame_client(frame: KafkaFrame) -> str | None:
    """The client id a frame carries, or its connection's (KIP-1313 clients, responses)."""
    return frame.client_id if frame.client_id is not None else frame.conn_client_id


class Session:
    def __init__(self, ports: Collection[int] = (9092,), *, max_frames: int = MAX_FRAMES,
                 max_packets: int = MAX_PACKETS) -> None:
        self.ports = frozenset(ports)
        self.lock = threading.Lock()
        self.sniffer = Sniffer(ports=self.ports)
        self.linktype: int | None = None
        self.frames: deque[KafkaFrame] = deque(maxlen=max_frames)
        self.frame_count = 0  # frames ever seen; frame N is the N-th (1-based)
        self.packets: deque[tuple[float, bytes]] = deque(maxlen=max_packets)
        self.packet_bytes = 0
        self.packets_dropped_from_memory = 0
        self.requests = self.responses = self.malformed = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.by_api: dict[str, Tally] = {}
        self.by_client: dict[str, Tally] = {}
        self.by_topic: dict[str, Tally] = {}
        self.live: deque[int] = deque(maxlen=LIVE_LINES)  # numbers of frames the live filter let through
        self.filter_text: str | None = None
        self._filter: Matcher | None = None
        self.rules: list[ShellRule] = []
        self.kernel_drops = 0  # PACKET_STATISTICS, kept up to date by the live source
        self.kernel_packets = 0
        self.source = ""  # what is being captured, for the toolbar
        self.source_done = False  # a capture file was read to its end
        self.source_problem: str | None = None
        self.brokers: dict[str, None] = {}  # "ip:port" the requests went to, newest last
        self.asked_topic_ids: dict[str, bytes] = {}  # ids a broker told us (Metadata), by topic name

    # -- the capture side --------------------------------------------------------------------

    def feed_packets(self, packets: Iterable[tuple[float, int, bytes]]) -> None:
        """Decode a batch of packets and record what they complete (one lock for the batch)."""
        with self.lock:
            feed = self.sniffer.feed
            keep = self.packets
            for ts, linktype, raw in packets:
                if self.linktype is None:
                    self.linktype = linktype
                if len(keep) == keep.maxlen:
                    self.packet_bytes -= len(keep[0][1])
                    self.packets_dropped_from_memory += 1
                keep.append((ts, raw))
                self.packet_bytes += len(raw)
                while self.packet_bytes > MAX_PACKET_BYTES and keep:
                    self.packet_bytes -= len(keep.popleft()[1])
                    self.packets_dropped_from_memory += 1
                events = feed(ts, linktype, raw)
                if events:
                    self._record(events)

    def finish(self) -> None:
        """The source ended: flush every connection's partial frames."""
        with self.lock:
            self._record(self.sniffer.finish())

    def _record(self, events: list) -> None:
        live_filter = self._filter
        for event in events:
            if not isinstance(event, KafkaFrame):
                continue
            self.frames.append(event)
            self.frame_count += 1
            ts = event.ts
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
            request = event.is_request
            if event.kind == "malformed":
                self.malformed += 1
            if request:
                self.requests += 1
            elif event.is_response:
                self.responses += 1
            api = event.api or (f"key {event.api_key}" if event.api_key is not None else "?")
            tally = self.by_api.get(api) or self.by_api.setdefault(api, Tally())
            client = frame_client(event) or "-"
            ctally = self.by_client.get(client) or self.by_client.setdefault(client, Tally())
            if request:
                tally.requests += 1
                ctally.requests += 1
                if event.dst not in self.brokers and len(self.brokers) < MAX_BROKERS:
                    self.brokers[event.dst] = None
                if event.records:
                    tally.records += event.records
                    ctally.records += event.records
                for topic in set(event.topics):
                    ttally = self.by_topic.get(topic) or self.by_topic.setdefault(topic, Tally())
                    ttally.requests += 1
                    if event.records and len(event.topics) == 1:
                        ttally.records += event.records
            else:
                tally.responses += 1
                ctally.responses += 1
                if event.latency_ms is not None:
                    tally.latencies_ms.append(event.latency_ms)
                    ctally.latencies_ms.append(event.latency_ms)
            if live_filter is None or live_filter(event):
                self.live.append(self.frame_count)

    # -- the prompt side ---------------------------------------------------------------------

    @property
    def first_number(self) -> int:
        """The number of the oldest frame still kept."""
        return self.frame_count - len(self.frames) + 1

    def frame(self, number: int) -> KafkaFrame | None:
        index = number - self.first_number
        if 0 <= index < len(self.frames) and number >= 1:
            return self.frames[index]
        return None

    def numbered(self) -> list[tuple[int, KafkaFrame]]:
        """Every kept frame with its number (a snapshot; take the lock around it)."""
        first = self.first_number
        return [(first + i, frame) for i, frame in enumerate(self.frames)]

    def set_filter(self, text: str | None, condition: Condition | None) -> None:
        """Filter the live view; it starts with the newest kept frames that pass."""
        with self.lock:
            self.filter_text = text
            keep = self._filter = Matcher(condition, self.sniffer.decoder.schemas) if condition is not None else None
            self.live.clear()
            found: list[int] = []
            number = self.frame_count
            for frame in reversed(self.frames):
                if len(found) == LIVE_LINES or self.frame_count - number >= FILTER_LOOKBACK:
                    break
                if keep is None or keep(frame):
                    found.append(number)
                number -= 1
            self.live.extend(reversed(found))

    def matcher(self, condition: Condition) -> Matcher:
        return Matcher(condition, self.sniffer.decoder.schemas)

    def topic_ids(self) -> dict[str, bytes]:
        """Topic name -> 16-byte id: from the Metadata responses seen so far, or asked of a broker."""
        with self.lock:
            seen = {name: topic_id for topic_id, name in self.sniffer.decoder.topic_names.items()}
            return {**self.asked_topic_ids, **seen}

    def broker_endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of the brokers requests went to, the most recently first seen first."""
        with self.lock:
            seen = list(self.brokers)
        return [(host.strip("[]"), int(port)) for host, _, port in (e.rpartition(":") for e in reversed(seen))]

    def client_ids(self) -> list[str]:
        return sorted(c for c in self.by_client if c != "-")

    def topics(self) -> list[str]:
        return sorted(self.by_topic)

    def rule(self, name: str) -> ShellRule | None:
        return next((r for r in self.rules if r.spec.name == name), None)

    def active_rules(self) -> list[ShellRule]:
        return [r for r in self.rules if r.state == "applied"]

    def elapsed_s(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return self.last_ts - self.first_ts


__all__ = ["Session", "ShellRule", "Tally", "frame_client"]
