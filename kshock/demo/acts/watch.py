"""Act 1 — watch: live decoded traffic and per-client statistics, read off the lab bridge, held
against the clients' own logs of the same seconds (did the tap decode every request they sent?)
and, at the end, their reports (records acknowledged and consumed)."""

from __future__ import annotations

import time

from kshock.demo.acts import GROUP_MEMBERS, OTHER_PRODUCER, VICTIM_PRODUCER, ActResult, Show, frame_line
from kshock.demo.clients import report_totals
from kshock.demo.observe import client_of, client_stats

WATCH_S = 4.0
MAX_LINES = 14
PRODUCERS = (VICTIM_PRODUCER, OTHER_PRODUCER)
CLIENTS = (*PRODUCERS, *GROUP_MEMBERS)


def run(show: Show, result: ActResult) -> None:
    stage, say = show.stage, show.narrator
    tap = stage.tap
    say.say(f"capturing on {stage.broker.ifname} in {stage.broker.netns} (AF_PACKET + kernel BPF filter on port "
            f"{stage.port}), decoding every frame as it arrives — one line per new kind of frame:")
    started = time.time()
    seen: set[tuple] = set()
    shown = 0
    index = len(tap.log.snapshot())
    while (left := started + WATCH_S - time.time()) > 0:
        time.sleep(min(0.25, left))
        frames = tap.log.snapshot()
        fresh, index = frames[index:], len(frames)
        for frame in fresh:
            key = (client_of(frame), frame.api, frame.kind)
            if key in seen or shown >= MAX_LINES or frame.api is None:
                continue
            seen.add(key)
            shown += 1
            say.frame(frame_line(frame))
    ended = time.time()
    window = tap.log.between(started, ended)
    span = ended - started
    stats = client_stats(window)
    rows = []
    for client in (VICTIM_PRODUCER, OTHER_PRODUCER, *GROUP_MEMBERS):
        entry = stats.get(client)
        if entry is None:
            rows.append((client, "0", "-", "-", "-", "-"))
            continue
        rows.append((client, f"{entry.requests / span:.1f}",
                     f"{entry.acks / span:.1f}" if entry.produce_requests else "-",
                     str(entry.fetched_records), ",".join(map(str, sorted(entry.fetch_partitions))) or "-",
                     f"{entry.median_ms:.2f}" if entry.median_ms is not None else "-"))
    say.say(f"{len(window)} frames in {span:.1f} s ({tap.log.packets} packets captured so far, "
            f"{tap.capture_drops()} dropped by the kernel):")
    say.table(("client-id", "requests/s", "acks/s", "records fetched", "partitions", "median latency ms"), rows,
              indent=4)
    say.say("(a Fetch is a long poll: the broker holds it until records arrive or its wait ends — hence its latency)")
    # The yardstick: what each client's own log says it sent and received in the same window.
    clients = stage.clients
    own = {c: {"sent": clients.count(c, "sent", None, started, ended),
               "acks": clients.count(c, "received", "Produce", started, ended),
               "fetch_responses": clients.count(c, "received", "Fetch", started, ended)} for c in CLIENTS}
    logged, missed = _undecoded(clients, tap.log.snapshot(), started, ended)
    say.saw("the clients' own logs, same window: " + "; ".join(
        f"{c} sent {n['sent']}, " + (f"{n['acks']} acks" if c in PRODUCERS else f"{n['fetch_responses']} Fetch answers")
        for c, n in own.items()))
    say.saw(f"the tap decoded {logged - len(missed)} of the {logged} requests the clients logged as sent")
    result.applied = "nothing: a passive capture"
    result.measured = {
        "seconds": round(span, 2), "window": [started, ended], "frames": len(window),
        "capture_drops": tap.capture_drops(),
        "clients": {c: {"requests": s.requests, "acks": s.acks, "fetched_records": s.fetched_records,
                        "partitions": sorted(s.fetch_partitions),
                        "median_latency_ms": None if s.median_ms is None else round(s.median_ms, 3)}
                    for c, s in sorted(stats.items())},
        "client_logs": own, "requests_logged": logged, "requests_not_decoded": [list(m) for m in missed[:10]],
    }
    silent = [c for c in CLIENTS if not own[c]["sent"]]
    result.check("every demo client sent requests (its own log)", not silent,
                 f"silent: {', '.join(silent)}" if silent else ", ".join(f"{c} {own[c]['sent']}" for c in CLIENTS))
    result.check("the tap decoded every request the clients logged as sent", logged > 0 and not missed,
                 f"{logged - len(missed)} of {logged}" + (f"; not decoded: {missed[:3]}" if missed else ""))
    result.check("both producers' Produce requests are acknowledged (their own logs)",
                 all(own[c]["acks"] for c in PRODUCERS), ", ".join(f"{c} {own[c]['acks']} acks" for c in PRODUCERS))
    result.check("both group members get Fetch answers (their own logs)",
                 all(own[c]["fetch_responses"] for c in GROUP_MEMBERS),
                 ", ".join(f"{c} {own[c]['fetch_responses']}" for c in GROUP_MEMBERS))
    result.check("the kernel dropped no captured packet", tap.capture_drops() == 0, f"{tap.capture_drops()} drops")
    result.clients_saw = (f"{span:.1f} s by their own logs: "
                          + ", ".join(f"{c} {own[c]['acks'] / span:.0f} acks/s" for c in PRODUCERS)
                          + "; " + ", ".join(f"{c} {own[c]['fetch_responses']} Fetch answers" for c in GROUP_MEMBERS)
                          + f"; the tap decoded {logged - len(missed)}/{logged} of their requests")


def _undecoded(clients, frames, start: float, end: float) -> tuple[int, list[tuple]]:
    """How many requests the clients logged as completely sent in [start, end] (by their own clock;
    a margin at the end for the tap's lag), and those of them the tap has no decoded frame of."""
    decoded = {(client_of(f), f.api_key, f.correlation_id) for f in frames if f.is_request}  # Malformed too
    logged = [(c, e.api_key, e.correlation_id, e.api) for c in CLIENTS
              for e in clients.events(c, "sent", None, start, end - 0.3)]
    return len(logged), [(c, api, corr) for c, key, corr, api in logged if (c, key, corr) not in decoded]


def grade_reports(reports: dict[str, dict], result: ActResult) -> None:
    """The clients' reports, written when they were stopped: records acknowledged and consumed."""
    totals = {c: report_totals(reports.get(c)) for c in CLIENTS}
    result.measured["reports"] = {c: {k: t[k] for k in ("produced", "produce_failed", "consumed", "errors")}
                                  for c, t in totals.items()}
    result.check("both producers' records were acknowledged (their reports)",
                 all(totals[c]["produced"] for c in PRODUCERS),
                 ", ".join(f"{c} {totals[c]['produced']}" for c in PRODUCERS))
    result.check("both group members consumed records (their reports)",
                 all(totals[c]["consumed"] for c in GROUP_MEMBERS),
                 ", ".join(f"{c} {totals[c]['consumed']}" for c in GROUP_MEMBERS))
    failing = {c: t["errors"] for c, t in totals.items() if t["errors"] or c not in reports}
    result.check("no client reports an error (but being stopped)", not failing,
                 "; ".join(f"{c}: {(e or ['no report'])[0][:80]}" for c, e in failing.items()))
