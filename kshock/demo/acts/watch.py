"""Act 1 — watch: live decoded traffic and per-client statistics, read off the lab bridge."""

from __future__ import annotations

import time

from kshock.demo.acts import GROUP_MEMBERS, OTHER_PRODUCER, VICTIM_PRODUCER, ActResult, Show, frame_line
from kshock.demo.observe import client_of, client_stats

WATCH_S = 4.0
MAX_LINES = 14


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
    result.applied = "nothing: a passive capture"
    result.clients_saw = "their traffic, decoded live"
    result.measured = {
        "seconds": round(span, 2), "frames": len(window), "capture_drops": tap.capture_drops(),
        "clients": {c: {"requests": s.requests, "acks": s.acks, "fetched_records": s.fetched_records,
                        "partitions": sorted(s.fetch_partitions),
                        "median_latency_ms": None if s.median_ms is None else round(s.median_ms, 3)}
                    for c, s in sorted(stats.items())},
    }
    missing = [c for c in (VICTIM_PRODUCER, OTHER_PRODUCER, *GROUP_MEMBERS) if c not in stats or not stats[c].requests]
    result.check("every demo client's requests are decoded live", not missing,
                 f"missing: {', '.join(missing)}" if missing else f"{len(stats)} client-ids")
    acks = {c: stats[c].acks if c in stats else 0 for c in (VICTIM_PRODUCER, OTHER_PRODUCER)}
    result.check("both producers' Produce requests are acknowledged", all(acks.values()),
                 ", ".join(f"{c} {n} acks" for c, n in acks.items()))
    fetched = {c: stats[c].fetched_records if c in stats else 0 for c in GROUP_MEMBERS}
    result.check("both group members fetch records", all(fetched.values()),
                 ", ".join(f"{c} {n} records" for c, n in fetched.items()))
    result.check("the kernel dropped no captured packet", tap.capture_drops() == 0, f"{tap.capture_drops()} drops")
    result.clients_saw = (f"{len(window)} frames in {span:.1f} s; "
                          + ", ".join(f"{c} {acks[c] / span:.0f} acks/s" for c in acks)
                          + "; " + ", ".join(f"{c} {fetched[c]} rec" for c in fetched))
