"""EDGE glue for `kshock decode`: a capture file in, a table or JSON Lines out.

Reading is `capture.CaptureReader`, decoding is the pure `wire.Sniffer`; this module only
drives them and formats what comes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from kshock.capture.reader import CaptureReader
from kshock.wire.model import Gap, JsonLineEncoder, KafkaFrame, Malformed, Skipped
from kshock.wire.sniffer import Sniffer
from kshock.wire.text import terminal_safe

if TYPE_CHECKING:  # (the condition language loads only for --filter: 45 ms of every start)
    from kshock.conditions import Condition


@dataclass(slots=True)
class DecodeRun:
    """One pass over a capture; iterate `events()`, then read `sniffer.stats` and `problem`."""

    reader: CaptureReader
    ports: frozenset[int]
    sniffer: Sniffer
    keep: Callable[[KafkaFrame], bool] | None = None  # a --filter condition's matcher
    problem: str | None = None
    packets: int = 0
    seconds: float = 0.0
    shown: int = 0  # frames that passed the filter

    @property
    def compiled(self) -> bool:
        """Whether the compiled lane decodes (it was built and the run was not opened with
        compiled=False); the output is the same either way."""
        return self.sniffer.compiled

    def events(self) -> Iterator:
        started = time.perf_counter()
        reader = self.reader
        try:
            feed = self.sniffer.feed
            for ts, linktype, raw in reader:
                events = feed(ts, linktype, raw)
                if events:
                    yield from self._kept(events)
            yield from self._kept(self.sniffer.finish())
        finally:
            self._done(started)

    def write_json(self, write: Callable[[str], object]) -> None:
        """Write the JSON line of every frame event, in order ("...\\n" chunks through `write`).

        With the compiled lane (kshock.wire._lane) the common packet goes straight to its
        line; every other packet, and every packet where the lane was not built (or the run
        was opened with compiled=False), goes the general way (Sniffer, then JsonLineEncoder)."""
        encode = JsonLineEncoder().encode
        lane = _json_lane(self.sniffer) if self.keep is None else None
        if lane is None:
            for event in self.events():
                if isinstance(event, KafkaFrame):
                    write(encode(event) + "\n")
            return
        started = time.perf_counter()
        reader, sniffer = self.reader, self.sniffer
        try:
            packets = reader
            layout = reader.pcap_layout() if isinstance(reader, CaptureReader) else None
            if layout is not None:  # a classic pcap: the lane reads its records in place
                from kshock.wire._lane import run_pcap

                try:
                    shown, pos, records = run_pcap(lane, *layout, sniffer.feed, encode, write, KafkaFrame)
                finally:
                    reader.packets = lane.records_read  # (what was read, also when writing failed)
                    del layout  # (the mapped file closes only when nothing points into it)
                self.shown += shown
                packets = reader.resume(pos, records)
            self.shown += lane.run(packets, sniffer.feed, sniffer.finish, encode, write, KafkaFrame)
        finally:
            self._done(started)

    def _done(self, started: float) -> None:
        self.problem = self.reader.problem
        self.packets = self.reader.packets
        self.seconds = time.perf_counter() - started
        self.reader.close()

    def _kept(self, events: list) -> Iterator:
        keep = self.keep
        for event in events:
            if isinstance(event, KafkaFrame):
                if keep is not None and not keep(event):
                    continue
                self.shown += 1
            yield event


def open_run(path: str, ports: Iterable[int], max_flow_mib: int = 64, condition: Condition | None = None,
             compiled: bool = True) -> DecodeRun:
    """Open the capture now, so a file that is not a capture fails before any output.
    compiled=False decodes without the compiled lane (the reference path; the same output)."""
    chosen = frozenset(ports)
    sniffer = Sniffer(ports=chosen, max_flow_bytes=max_flow_mib << 20, compiled=compiled)
    keep = None
    if condition is not None:
        from kshock.conditions import Matcher

        keep = Matcher(condition, sniffer.decoder.schemas)
    return DecodeRun(CaptureReader(path), chosen, sniffer, keep)


def write_json_lines(run: DecodeRun, out: TextIO) -> None:
    """One JSON object per Kafka frame (requests, responses and frames that failed to decode)."""
    run.write_json(out.write)


def _json_lane(sniffer: Sniffer):
    """The compiled JSON lane for this sniffer, or None where the sniffer runs without the
    compiled lane (not built, or compiled=False: pure Python then, the same output)."""
    if not sniffer.compiled:
        return None
    from kshock.wire._lane import JsonLane  # (built: the sniffer's own lane came from there)

    return JsonLane(sniffer)


TABLE_HEADER = ("time", "connection", "api", "corr", "client-id", "topics", "parts", "records", "errors", "latency")


def write_table(run: DecodeRun, out: TextIO) -> None:
    """A fixed-width table a person can read; gaps and undecodable frames get lines of their own."""
    widths = (15, 44, 22, 7, 22, 24, 5, 7, 10, 9)
    out.write(_row(TABLE_HEADER, widths) + "\n")
    for event in run.events():
        if isinstance(event, KafkaFrame):
            out.write(_row(_frame_cells(event), widths) + "\n")
            if isinstance(event, Malformed):
                out.write(f"{'':15}   ! not decoded: {terminal_safe(str(event.error))}\n")
        elif isinstance(event, Gap):
            out.write(f"{_clock(event.ts)}   ! gap: {event.length} bytes never captured in {event.src} -> {event.dst} "
                      f"({terminal_safe(str(event.reason))})\n")
        elif isinstance(event, Skipped):
            out.write(f"{_clock(event.ts)}   ! skipped {event.length} bytes in {event.src} -> {event.dst} "
                      f"while looking for the next Kafka frame\n")


def summary(run: DecodeRun) -> str:
    stats = run.sniffer.stats
    closed = ", ".join(f"{how} {n}" for how, n in sorted(stats.closed.items())) or "none"
    lines = [
        f"{run.packets} packets, {stats.kafka_segments} on Kafka port(s) {','.join(map(str, sorted(run.ports)))}; "
        f"{stats.frames} frames: {stats.requests} requests, {stats.responses} responses, "
        f"{stats.malformed} undecodable",
        f"{stats.connections} connections (closed: {closed}); {stats.gaps} gaps ({stats.gap_bytes} bytes lost), "
        f"{stats.skipped_bytes} bytes skipped while resynchronising",
    ]
    evicted = stats.closed.get("evicted", 0)
    if evicted:
        lines.append(f"{evicted} connections were evicted: more than {run.sniffer.max_connections:,} were open at once, "
                     "so the least recently active were closed (their unfinished frames are shown as undecodable)")
    if run.keep is not None:
        lines.append(f"{run.shown} of {stats.frames} frames matched the filter")
        cut = getattr(run.keep, "cut", 0)
        if cut:
            lines.append(f"{cut} frames were filtered without their records: {run.keep.cut_reason}")
    if run.problem:
        lines.append(f"the capture is damaged: {run.problem} — everything before the damage was decoded")
    if stats.kafka_segments == 0 and run.packets:
        lines.append(f"no TCP traffic on port(s) {','.join(map(str, sorted(run.ports)))} — is Kafka on another "
                     "port? use --port")
    return "\n".join(lines)


def _frame_cells(frame: KafkaFrame) -> tuple[str, ...]:
    """The cells, every wire string made safe for a terminal (terminal_safe)."""
    arrow = f"{frame.src} -> {frame.dst}"
    api = f"{frame.api or frame.api_key} v{frame.api_version}" if frame.api_version is not None else str(frame.api or "?")
    if frame.is_response:
        api = "< " + api
    return (
        _clock(frame.ts),
        arrow,
        terminal_safe(api),
        "" if frame.correlation_id is None else str(frame.correlation_id),
        terminal_safe(frame.client_id if frame.client_id is not None
                      else (f"({frame.conn_client_id})" if frame.conn_client_id else "-")),
        terminal_safe(",".join(frame.topics)),
        str(len(frame.partitions)) if frame.partitions else "",
        "" if frame.records is None else str(frame.records),
        ",".join(map(str, frame.error_codes)),
        "" if frame.latency_ms is None else f"{frame.latency_ms:.2f}ms",
    )


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}"


def _row(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    out = []
    for cell, width in zip(cells, widths):
        out.append(cell if len(cell) <= width else cell[: width - 1] + "…")
        out[-1] = out[-1].ljust(width)
    return " ".join(out).rstrip()


def frame_cells(frame: KafkaFrame) -> tuple[str, ...]:
    """One frame's cells in TABLE_HEADER order (time, connection, api, ...): for the shell."""
    return _frame_cells(frame)


def clock(ts: float) -> str:
    """HH:MM:SS.micro (UTC) of a capture timestamp, as the table shows it."""
    return _clock(ts)
