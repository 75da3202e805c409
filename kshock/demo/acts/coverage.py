"""Act 6 — replay: the Kafka-aware rules of the acts, replayed on what the demo captured.

`kshock replay` walks every captured packet through the compiled rules with the emulator (the
u32 semantics the kernel uses) and compares with the intent (the frames each condition selects on
the decoded capture): did the packet-level rule hit every frame it meant to, and nothing else?
The kernel sees one packet at a time and reads a Kafka header only at a segment's first payload
byte; a frame that starts in the middle of a segment (several requests sent in one burst, as
after act 2's block) is out of its sight. The act shows which missed frames are of that kind, and
what `latch: true` (act on the rest of a connection once a packet matched) changes. The intent
itself is checked against the clients: the requests their own logs say they sent that the rule's
condition selects must be exactly the frames the replay counts as its intent.
"""

from __future__ import annotations

import bisect
import dataclasses
import time

from kshock.demo.acts import (
    GROUP_MEMBERS,
    VICTIM_PRODUCER,
    ActResult,
    Show,
    block_spec,
    reset_spec,
)

EDGE_S = 0.5  # a request logged this close to the snapshot may be on either side of it


def mid_segment_starts(frames) -> set[int]:
    """First packet numbers of frames that begin after another frame's bytes in that packet."""
    seen: dict[tuple, set[int]] = {}
    mid = set()
    for frame in frames:
        if not frame.packets:
            continue
        lane = (frame.src, frame.dst)
        carried = seen.setdefault(lane, set())
        if frame.packets[0] in carried:
            mid.add(frame.packets[0])
        carried.update(frame.packets)
    return mid


def run(show: Show, result: ActResult) -> None:
    from kshock.replay.coverage import replay

    stage, say = show.stage, show.narrator
    specs = [f.spec for f in stage.faults if f.spec.condition is not None]
    if not specs:  # run alone: the rules acts 2 and 3 would compile from the frames seen so far
        log = stage.tap.log
        produce = log.latest(VICTIM_PRODUCER, "Produce")
        member = log.latest(GROUP_MEMBERS[0], "Heartbeat") or log.latest(GROUP_MEMBERS[0], "Fetch")
        specs = [spec for spec in (block_spec(produce, stage.port, 60) if produce else None,
                                   reset_spec(member, stage.port, 60) if member else None) if spec is not None]
        say.say("no fault was applied in this run: replaying the rules acts 2 and 3 compile from its frames")
    if not result.check("there are Kafka-aware rules to replay", bool(specs)):
        return
    captured_until = time.time()
    pcap = stage.tap.snapshot(stage.work_dir / "replay.pcap")
    started = time.monotonic()
    report = replay(pcap, specs, (stage.port,), name="demo-replay")
    seconds = time.monotonic() - started
    say.say(f"replayed {report.packets} packets ({report.frames} frames, {report.requests} requests) captured "
            f"during the demo through {len(specs)} rules in {seconds:.2f} s:")
    coverages = list(report.rules)
    latched = {}
    partial = [spec for spec, c in zip(specs, report.rules) if c.missed_frames and not spec.latch]
    if partial:
        variants = [dataclasses.replace(spec, name=spec.name + "-latch", latch=True) for spec in partial]
        latched = {c.rule: c for c in replay(pcap, variants, (stage.port,), name="demo-replay-latch").rules}
        coverages += list(latched.values())
    rows = []
    for c in coverages:
        share = f"{100 * c.hit_frames / c.intent_frames:.1f}%" if c.intent_frames else "-"
        rows.append((c.rule, str(c.intent_frames), str(c.kernel_packets), f"{c.hit_frames} ({share})",
                     str(c.missed_frames), str(c.false_packets)))
    say.table(("rule", "intent frames", "kernel packets", "hit", "missed", "false packets"), rows, indent=4)
    for spec in specs:
        say.frame(f"{spec.name}: {spec.condition}")
    mid = mid_segment_starts(stage.tap.log.snapshot())
    result.applied = "nothing: an offline replay of the demo's capture"
    result.clients_saw = "; ".join(f"{c.rule} hit {c.hit_frames}/{c.intent_frames} ({c.false_packets} false)"
                                   for c in coverages)
    result.measured = {"packets": report.packets, "frames": report.frames, "seconds": round(seconds, 3),
                       "rules": [c.as_json() for c in coverages]}
    for item in result.measured["rules"]:  # packet-number lists are long and say little here
        for key in ("missed_frame_packets", "false_packet_numbers", "kernel_packet_numbers"):
            item[key] = item[key][:10]
    # The yardstick of the intent: the requests the clients themselves logged as sent that the rule's
    # condition selects (up to the snapshot; a request sent at its very edge may or may not be in it).
    logged = {}
    for spec in specs:
        sent = stage.clients.selected(spec.condition, captured_until + EDGE_S)
        logged[spec.name] = (bisect.bisect_right(sent, captured_until - EDGE_S), len(sent))
    say.saw(f"the clients' own logs, by the snapshot (± {EDGE_S:g} s): " + "; ".join(
        f"{name} selects {low}–{high} of the requests they sent" for name, (low, high) in logged.items()))
    result.measured["client_logged_requests"] = {name: [low, high] for name, (low, high) in logged.items()}
    result.measured["captured_until"] = captured_until
    result.measured["rule_conditions"] = {spec.name: str(spec.condition) for spec in specs}
    for c in report.rules:
        low, high = logged[c.rule]
        if not result.check(f"{c.rule}: its intent is every request the clients logged that it selects",
                            c.intent_frames > 0 and low <= c.intent_frames <= high,
                            f"{c.intent_frames} intent frames, {low}–{high} requests in the clients' logs"):
            continue
        unexplained = [p for p in c.missed_frame_packets if p not in mid]
        if c.missed_frames:
            say.saw(f"{c.rule}: {c.missed_frames - len(unexplained)} of its {c.missed_frames} missed frames started "
                    "in the middle of a TCP segment, where a packet-at-a-time rule cannot see a Kafka header")
        result.check(f"{c.rule}: it missed no frame but those starting mid-segment", not unexplained,
                     f"hit {c.hit_frames} of {c.intent_frames}; {len(unexplained)} missed otherwise")
        if c.rule + "-latch" in latched:
            variant = latched[c.rule + "-latch"]
            say.saw(f"with latch: true it hits {variant.hit_frames} of {variant.intent_frames}, at the price of "
                    f"{variant.false_packets} false packets (the rest of each matched connection)")
            result.check(f"{c.rule} with latch: true misses nothing", variant.missed_frames == 0,
                         f"hit {variant.hit_frames} of {variant.intent_frames}")

