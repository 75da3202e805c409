"""Act 3 — reset a consumer-group member: every group-protocol and Fetch request of one member is
answered with a TCP RST by the broker's kernel; its heartbeats stop reaching the coordinator, the
group rebalances and the other member takes over its partitions."""

from __future__ import annotations

import time

from kshock.demo.acts import GROUP_MEMBERS, GROUP_PARTITIONS, ActResult, Show, frame_line, reset_spec
from kshock.demo.observe import client_of

SAFETY_S = 60.0
TAKEOVER_WAIT_S = 25.0  # session.timeout.ms 6 s + the coordinator's rebalance delay
AFTER_TAKEOVER_S = 2.0  # watch the survivor consume both partitions for a moment


def fetch_partitions(frames, client: str, start: float, end: float = 1e12) -> set[int]:
    found: set[int] = set()
    for f in frames:
        if f.kind == "request" and f.api == "Fetch" and client_of(f) == client and start <= f.ts <= end:
            found.update(f.partitions)
    return found


def fetched_records(frames, client: str, start: float, end: float = 1e12) -> int:
    return sum(f.records or 0 for f in frames if f.kind == "response" and f.api == "Fetch"
               and client_of(f) == client and start <= f.ts <= end)


def requests(frames, client: str, api: str, start: float, end: float = 1e12) -> int:
    return sum(1 for f in frames if f.kind == "request" and f.api == api and client_of(f) == client
               and start <= f.ts <= end)


def run(show: Show, result: ActResult) -> None:
    stage, say = show.stage, show.narrator
    log = stage.tap.log
    now = time.time()
    recent = log.between(now - 3.0, now)
    owners = {m: fetch_partitions(recent, m, now - 3.0) for m in GROUP_MEMBERS}
    say.say("partitions each member fetches now: " + ", ".join(
        f"{m} {sorted(p) or '-'}" for m, p in owners.items()))
    victim = next((m for m in GROUP_MEMBERS if 0 in owners[m]), GROUP_MEMBERS[0])
    survivor = next(m for m in GROUP_MEMBERS if m != victim)
    frame = log.latest(victim, "Heartbeat") or log.latest(victim, "Fetch")
    if not result.check(f"a request of group member {victim} was decoded", frame is not None):
        return
    say.say(f"the rule takes {victim}'s client-id from this decoded frame:")
    say.frame(frame_line(frame))
    spec = reset_spec(frame, stage.port, SAFETY_S)
    fault = stage.apply(spec, stage.scope_of(stage.broker))
    applied_at = fault.applied_at
    say.applied(f"reset {spec.condition} at the broker's INPUT (REJECT --reject-with tcp-reset)")

    def taken_over() -> bool:
        return GROUP_PARTITIONS <= fetch_partitions(log.snapshot(), survivor, applied_at)

    def status() -> str:
        frames = log.between(applied_at)
        return (f"{survivor} JoinGroup {requests(frames, survivor, 'JoinGroup', applied_at)}, partitions "
                f"{sorted(fetch_partitions(frames, survivor, time.time() - 1.5)) or '-'}")

    waited = say.wait(TAKEOVER_WAIT_S, f"waiting for the group to rebalance without {victim}", until=taken_over,
                      status=status)
    takeover_at = None
    frames = log.snapshot()
    for f in frames:
        if f.ts >= applied_at and f.kind == "request" and f.api == "Fetch" and client_of(f) == survivor \
                and GROUP_PARTITIONS <= set(f.partitions):
            takeover_at = f.ts
            break
    if takeover_at is not None:
        say.wait(AFTER_TAKEOVER_S, f"{survivor} consumes both partitions")
    resets = stage.counters(fault)
    stage.revert(fault)
    rejected = fault.packets_hit()
    end = fault.reverted_at
    frames = log.snapshot()
    survivor_joins = requests(frames, survivor, "JoinGroup", applied_at, end)
    victim_joins = requests(frames, victim, "JoinGroup", applied_at, end)
    after = takeover_at if takeover_at is not None else end
    survivor_records = fetched_records(frames, survivor, after, end)
    victim_records = fetched_records(frames, victim, after, end)
    survivor_before = sorted(owners[survivor])
    survivor_after = sorted(fetch_partitions(frames, survivor, after, end))
    say.reverted(f"{spec.name}: the kernel reset {rejected} packets of {victim}")
    if takeover_at is not None:
        say.saw(f"{survivor} took over partitions {survivor_before} -> {survivor_after} "
                f"{takeover_at - applied_at:.1f} s after the first reset, after {survivor_joins} JoinGroup request(s)")
    say.saw(f"after the takeover: {survivor} fetched {survivor_records} records, {victim} {victim_records} "
            f"(it sent {victim_joins} JoinGroup requests, each reset)")
    result.applied = f"reset group+Fetch requests of {victim} at broker ingress"
    result.clients_saw = (f"{survivor} took partitions {survivor_before}->{survivor_after} after "
                          f"{survivor_joins} JoinGroup; {victim} fetched {victim_records} rec after takeover")
    result.measured = {
        "victim": victim, "survivor": survivor, "rule": str(spec.condition),
        "partitions_before": {m: sorted(p) for m, p in owners.items()},
        "survivor_partitions_after": survivor_after,
        "takeover_s": None if takeover_at is None else round(takeover_at - applied_at, 2),
        "survivor_joingroup_requests": survivor_joins, "victim_joingroup_requests": victim_joins,
        "survivor_records_after_takeover": survivor_records, "victim_records_after_takeover": victim_records,
        "kernel_reset_packets": rejected, "waited_s": round(waited, 2),
        "kernel_counters_during": {c: [p for p, _, _ in rules] for c, rules in resets.items()},
    }
    result.check(f"the kernel reset {victim}'s requests", rejected > 0, f"{rejected} packets")
    result.check(f"{survivor} rejoined the group (JoinGroup seen)", survivor_joins > 0, f"{survivor_joins} requests")
    result.check(f"{survivor} took over every partition", takeover_at is not None,
                 f"{survivor_before} -> {survivor_after}" if takeover_at else f"not within {TAKEOVER_WAIT_S:g} s")
    result.check(f"{survivor} consumed, {victim} did not, after the takeover",
                 takeover_at is not None and survivor_records > 0 and victim_records == 0,
                 f"{survivor_records} vs {victim_records} records")
