"""EDGE: helpers for notebooks/kshock-tour.ipynb — the demo's stage, read as plots.

    stage = tour.Tour("tour")                  # a lab, the demo's clients, a live tap
    tour.wait_ready(stage)
    ... stage.apply(spec, scope); stage.revert(fault) ...
    tour.plot_rates(ax, stage.tap.log.snapshot(), start, end, windows=[(t0, t1, "blocked")])
    stage.clients.count("billing", "received", "Produce", t0, t1)   # billing's acks, by its own log
    stage.close(); stage.reports()             # what each client reported when it was stopped

The plots show what kshock's tap saw; the notebook's claims are checked against what the clients
say (their own logs and reports, kshock.demo.clients), as the demo's acts are.

matplotlib is imported inside the plotting functions, so importing this module costs nothing.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

from kshock.demo.observe import client_of, client_stats, rate_series
from kshock.demo.stage import Stage

WORKLOAD_S = 600.0


class Tour:
    """The demo's Stage, driven from a notebook. pyroute2's synchronous API runs its own asyncio
    loop, which cannot start inside a Jupyter kernel's running one; so every stage operation
    that touches namespaces runs on one worker thread of its own. Attributes not defined here
    (tap, port, broker, work_dir, notes, scope_of, ...) are the stage's."""

    def __init__(self, lab_name: str, work_dir: str | Path | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kshock-tour")
        self.stage = self._call(_open_stage, lab_name, work_dir)

    def _call(self, fn, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs).result()

    def __getattr__(self, name: str):
        return getattr(self.stage, name)

    def apply(self, spec, scope):
        return self._call(self.stage.apply, spec, scope)

    def revert(self, fault) -> None:
        self._call(self.stage.revert, fault)

    def counters(self, fault) -> dict:
        return self._call(self.stage.counters, fault)

    def close(self) -> None:
        self._call(self.stage.close)
        self._pool.shutdown()


def _open_stage(lab_name: str, work_dir: str | Path | None = None) -> Stage:
    """Lab up, live tap on, the demo scenario's clients started (closed by `close()`, or at the
    interpreter's exit at the latest). Their reports, logs and the capture go to `work_dir` (a
    new temporary folder by default), and stay there."""
    if work_dir is None:
        work_dir = tempfile.mkdtemp(prefix="kshock-tour-")
    stage = Stage.open(lab_name, Path(work_dir))
    try:
        stage.start_tap()
        stage.start_workloads(WORKLOAD_S)
    except BaseException:
        stage.close()
        raise
    return stage


def wait_ready(stage, timeout_s: float = 30.0) -> float:
    """Seconds until both producers are acknowledged and the consumer group shares the partitions."""
    from kshock.demo.runner import ready

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if ready(stage):
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"the demo clients were not ready within {timeout_s:g} s")


def stats_rows(frames) -> list[dict]:
    """One dict per client: what the decoded frames say it did."""
    rows = []
    for client, s in sorted(client_stats(frames).items()):
        rows.append({"client": client, "requests": s.requests, "produce_acks": s.acks,
                     "records_fetched": s.fetched_records, "partitions": sorted(s.fetch_partitions),
                     "median_latency_ms": None if s.median_ms is None else round(s.median_ms, 3)})
    return rows


def latencies_by_api(frames) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for frame in frames:
        if frame.kind == "response" and frame.latency_ms is not None and frame.api:
            out[frame.api].append(frame.latency_ms)
    return dict(sorted(out.items()))


def client_colours(frames) -> dict[str, str]:
    """One colour per client-id, the same in every plot of the same frames."""
    return {client: f"C{i % 10}" for i, client in enumerate(sorted({client_of(f) for f in frames}))}


def plot_rates(ax, frames, start: float, end: float, *, windows=(), bucket_s: float = 0.5, kind: str = "request",
               api: str | None = None, title: str | None = None) -> dict[str, list[float]]:
    """Frames per second per client over [start, end), fault windows shaded."""
    series = rate_series(frames, start, end, bucket_s, kind=kind, api=api)
    colours = client_colours(frames)
    for client, values in sorted(series.items()):
        xs = [i * bucket_s for i in range(len(values) + 1)]
        ax.step(xs, values + values[-1:], where="post", label=client, color=colours[client])
    for begin, finish, label in windows:
        ax.axvspan(begin - start, finish - start, color="red", alpha=0.15, label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel(f"{api or 'all'} {kind}s / s")
    ax.set_title(title or f"{api or 'all'} {kind}s per client")
    ax.legend(loc="upper left", fontsize="small")
    return series


def plot_latency(ax, frames) -> dict[str, list[float]]:
    """Response latency (request to response, on the wire) per API, log scale."""
    data = latencies_by_api(frames)
    names = list(data)
    ax.boxplot([data[n] for n in names], vert=False)
    ax.set_yticks(range(1, len(names) + 1), [f"{n} ({len(data[n])})" for n in names])
    ax.set_xscale("log")
    ax.set_xlabel("latency ms (log)")
    ax.set_title("latency per API")
    return data


def plot_rule_hits(ax, counters: dict, ax_replay=None, coverage=None) -> list[tuple[str, int]]:
    """The kernel's own packet counters per rule of a fault; given a second axis and a replay's
    coverage, its intent / hit / missed frames per rule there."""
    import re

    bars: list[tuple[str, int]] = []
    for chain, rules in counters.items():
        for packets, _, text in rules:
            target = re.search(r"-j (\w+)", text)
            comment = re.search(r'--comment "?kshock:[^/"]*/([^"]*)"?', text)
            what = comment.group(1) if comment else chain
            bars.append((f"{what[:34]} → {target.group(1) if target else '?'}", packets))
    ax.barh(range(len(bars)), [b[1] for b in bars],
            color=["tab:red" if b[0].endswith(("DROP", "REJECT")) else "tab:grey" for b in bars])
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel("packets (the kernel's counters)")
    ax.set_title("kernel rule counters")
    if ax_replay is not None and coverage:
        names = [c.rule for c in coverage]
        for offset, (label, key, colour) in enumerate((("intent", "intent_frames", "tab:blue"),
                                                       ("hit", "hit_frames", "tab:green"),
                                                       ("missed", "missed_frames", "tab:orange"))):
            ax_replay.barh([i + offset * 0.27 for i in range(len(names))], [getattr(c, key) for c in coverage],
                           height=0.27, label=label, color=colour)
        ax_replay.set_yticks([i + 0.27 for i in range(len(names))], names)
        ax_replay.invert_yaxis()
        ax_replay.set_xlabel("frames (replay of the capture)")
        ax_replay.set_title("replay coverage")
        ax_replay.legend(fontsize="small")
    return bars


__all__ = ["Tour", "client_colours", "client_of", "latencies_by_api", "plot_latency", "plot_rates", "plot_rule_hits",
           "stats_rows", "wait_ready"]
