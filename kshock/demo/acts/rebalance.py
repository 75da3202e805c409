"""Act 3 — reset a consumer-group member: every group-protocol and Fetch request of one member is
answered with a TCP RST by the broker's kernel; its heartbeats stop reaching the coordinator, the
group rebalances and the other member takes over its partitions. Graded by the members' own logs
(the victim's connections reset, no answer to it; the survivor's JoinGroup and SyncGroup answered,
its Fetches answered) and reports; which partitions each fetches, no client reports, so that one
is read off the wire."""

from __future__ import annotations

import time

from kshock.demo.acts import GROUP_APIS, GROUP_MEMBERS, GROUP_PARTITIONS, ActResult, Show, frame_line, reset_spec
from kshock.demo.clients import report_totals
from kshock.demo.observe import client_of

SAFETY_S = 60.0
SETTLE_S = 0.5  # answers already on their way when the rule went in
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
        return (f"{survivor} JoinGroup answered {stage.clients.count(survivor, 'received', 'JoinGroup', applied_at)}"
                f"x, partitions {sorted(fetch_partitions(log.between(applied_at), survivor, time.time() - 1.5)) or '-'}")

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
    reverting_at = time.time()
    stage.revert(fault)
    rejected = fault.packets_hit()
    end = reverting_at
    frames = log.snapshot()
    clients = stage.clients
    # The yardstick: the members' own logs. The tap adds what no client reports: who fetches which partition.
    resets_seen = [e for e in clients.events(victim, "disconnected", None, applied_at, end) if "reset" in e.why]
    rejoined = {api: clients.count(survivor, "received", api, applied_at, end) for api in ("JoinGroup", "SyncGroup")}
    victim_joins = clients.count(victim, "sent", "JoinGroup", applied_at, end)
    victim_group_answers = sum(clients.count(victim, "received", api, applied_at + SETTLE_S, end)
                               for api in GROUP_APIS)
    after = takeover_at if takeover_at is not None else end
    survivor_fetches = clients.count(survivor, "received", "Fetch", after, end)
    victim_fetches = clients.count(victim, "received", "Fetch", after, end)
    survivor_records = fetched_records(frames, survivor, after, end)
    victim_records = fetched_records(frames, victim, after, end)
    survivor_before = sorted(owners[survivor])
    survivor_after = sorted(fetch_partitions(frames, survivor, after, end))
    say.reverted(f"{spec.name}: the kernel reset {rejected} packets of {victim}")
    say.saw(f"{victim}'s own log: {len(resets_seen)} connections reset by the broker, {victim_joins} JoinGroup "
            f"requests sent, {victim_group_answers} group or Fetch answers received after the first "
            f"{SETTLE_S:g} s; {survivor}'s: JoinGroup answered {rejoined['JoinGroup']}x, SyncGroup "
            f"{rejoined['SyncGroup']}x (the rebalance)")
    if takeover_at is not None:
        say.saw(f"on the wire, {survivor} took over partitions {survivor_before} -> {survivor_after} "
                f"{takeover_at - applied_at:.1f} s after the first reset")
    say.saw(f"after the takeover: {survivor} received {survivor_fetches} Fetch answers, {victim} {victim_fetches} "
            f"(their own logs); the tap decoded {survivor_records} and {victim_records} records in them")
    result.applied = f"reset group+Fetch requests of {victim} at broker ingress"
    result.clients_saw = (f"{victim}: {len(resets_seen)} connections reset, no group answer; {survivor}: rejoined "
                          f"(SyncGroup answered), took partitions {survivor_before}->{survivor_after}, "
                          f"{survivor_fetches} Fetch answers vs {victim_fetches} after takeover")
    result.measured = {
        "victim": victim, "survivor": survivor, "rule": str(spec.condition), "window": [applied_at, end],
        "partitions_before": {m: sorted(p) for m, p in owners.items()},
        "survivor_partitions_after": survivor_after,
        "takeover_s": None if takeover_at is None else round(takeover_at - applied_at, 2),
        "takeover_at": takeover_at,
        "victim_connections_reset": len(resets_seen), "victim_joingroup_requests": victim_joins,
        "victim_group_answers": victim_group_answers,
        "survivor_joingroup_answers": rejoined["JoinGroup"], "survivor_syncgroup_answers": rejoined["SyncGroup"],
        "survivor_fetch_answers_after_takeover": survivor_fetches,
        "victim_fetch_answers_after_takeover": victim_fetches,
        "tap_survivor_records_after_takeover": survivor_records, "tap_victim_records_after_takeover": victim_records,
        "kernel_reset_packets": rejected, "waited_s": round(waited, 2),
        "kernel_counters_during": {c: [p for p, _, _ in rules] for c, rules in resets.items()},
    }
    result.check(f"the kernel reset {victim}'s requests", rejected > 0, f"{rejected} packets")
    result.check(f"{victim}'s connections were reset and its group requests went unanswered (its own log)",
                 bool(resets_seen) and victim_group_answers == 0,
                 f"{len(resets_seen)} resets, {victim_group_answers} answers")
    result.check(f"{survivor} rejoined the group (its own log: JoinGroup and SyncGroup answered)",
                 rejoined["JoinGroup"] > 0 and rejoined["SyncGroup"] > 0,
                 f"{rejoined['JoinGroup']} JoinGroup, {rejoined['SyncGroup']} SyncGroup")
    result.check(f"{survivor} took over every partition (on the wire: no client reports its assignment)",
                 takeover_at is not None,
                 f"{survivor_before} -> {survivor_after}" if takeover_at else f"not within {TAKEOVER_WAIT_S:g} s")
    result.check(f"{survivor} got Fetch answers, {victim} none, after the takeover (their own logs)",
                 takeover_at is not None and survivor_fetches > 0 and victim_fetches == 0,
                 f"{survivor_fetches} vs {victim_fetches} Fetch answers")


def grade_reports(reports: dict[str, dict], result: ActResult) -> None:
    """The members' reports: the victim's client complained of losing the broker (librdkafka's
    error callback, kept as a warning); the survivor's did not."""
    victim, survivor = result.measured.get("victim"), result.measured.get("survivor")
    if victim is None:
        return
    totals = {m: report_totals(reports.get(m)) for m in (victim, survivor)}
    down = {m: [w for w in t["warnings"] if "down" in w.lower()] for m, t in totals.items()}
    result.measured["reports"] = {m: {"consumed": t["consumed"], "broker_down_warnings": len(down[m])}
                                  for m, t in totals.items()}
    result.check(f"{victim}'s client reported losing the broker, {survivor}'s did not (their reports)",
                 bool(down[victim]) and not down[survivor],
                 f"{victim}: {_telling(down[victim]) or 'no such warning'}; {survivor}: "
                 f"{len(down[survivor])} such warnings")


def _telling(warnings: list[str]) -> str | None:
    """The warning to quote: librdkafka also says `0/1 brokers are down` once they are back."""
    return next((w for w in warnings if " 0/" not in w), warnings[0] if warnings else None)
