"""Act 2 — block one producer: a rule compiled from one of its real decoded Produce frames drops
its Produce requests at the broker. Graded by the producers' own logs: the victim received no
acknowledgement while the fault was active and the other producer went on receiving them; its
stuck request's round trip as the victim measured it; at the end, its report: no record lost."""

from __future__ import annotations

import time
from statistics import median

from kshock.demo.acts import OTHER_PRODUCER, VICTIM_PRODUCER, ActResult, Show, block_spec, frame_line
from kshock.demo.clients import of_the_stop, report_totals
from kshock.demo.observe import client_of

HOLD_S = 5.0
SAFETY_S = 60.0  # the kernel ends the fault by itself after this, whatever happens to the demo
RESUME_WAIT_S = 12.0  # TCP retransmission backoff: the stuck segment goes again 0.2, 0.6, 1.4, 3.0, 6.2 s in
SETTLE_S = 0.5  # responses already on their way when the rule went in


def _tap_acks(frames, client: str, start: float, end: float) -> list:
    """Produce responses to `client` the tap decoded in [start, end] (kshock's view)."""
    return [f for f in frames if f.kind == "response" and f.api == "Produce" and client_of(f) == client
            and start <= f.ts <= end]


def run(show: Show, result: ActResult) -> None:
    stage, say = show.stage, show.narrator
    log, clients = stage.tap.log, stage.clients
    frame = log.latest(VICTIM_PRODUCER, "Produce")
    if not result.check(f"a Produce request of {VICTIM_PRODUCER} was decoded", frame is not None):
        return
    say.say("the rule is compiled from this decoded frame (its API and client-id):")
    say.frame(frame_line(frame))
    spec = block_spec(frame, stage.port, SAFETY_S)
    fault = stage.apply(spec, stage.scope_of(stage.broker))
    say.applied(f"drop {spec.condition} at the broker's INPUT ({fault.record.summary['rules']} kernel rules in "
                f"{stage.broker.netns}; the kernel ends it by itself in {SAFETY_S:g} s if the demo dies)")

    def acks(client: str, start: float, end: float = float("inf")) -> list:
        """The acknowledgements `client` received in [start, end], by its own log."""
        return clients.events(client, "received", "Produce", start, end)

    def status() -> str:
        start = fault.applied_at + SETTLE_S
        return " ".join(f"{c} {len(acks(c, start))} acks" for c in (VICTIM_PRODUCER, OTHER_PRODUCER))

    say.wait(HOLD_S, "fault active", status=status)
    reverting_at = time.time()  # the rules are surely in until here; reverted_at is when they are surely gone
    stage.revert(fault)
    dropped = fault.packets_hit()
    say.reverted(f"{spec.name}: the kernel dropped {dropped} packets while it was active")
    waited = say.wait(RESUME_WAIT_S, f"waiting for {VICTIM_PRODUCER}'s next ack (TCP retransmits on its own schedule)",
                      until=lambda: bool(acks(VICTIM_PRODUCER, fault.reverted_at)))
    start, end = fault.applied_at + SETTLE_S, reverting_at
    victim = acks(VICTIM_PRODUCER, start, end)
    other = acks(OTHER_PRODUCER, start, end)
    before = acks(VICTIM_PRODUCER, fault.applied_at - HOLD_S, fault.applied_at)
    after = acks(VICTIM_PRODUCER, fault.reverted_at)
    resumed_s = (after[0].ts - fault.reverted_at) if after else None
    stuck_ms = max((e.rtt_ms for e in after), default=0.0)
    normal_ms = median(e.rtt_ms for e in before) if before else None
    frames = log.snapshot()
    tap_victim, tap_other = (len(_tap_acks(frames, c, start, end)) for c in (VICTIM_PRODUCER, OTHER_PRODUCER))
    span = end - start
    say.saw(f"during the {span:.1f} s window, by their own logs: {VICTIM_PRODUCER} {len(victim)} acks, "
            f"{OTHER_PRODUCER} {len(other)} acks ({len(other) / span:.1f}/s); the tap saw {tap_victim} and "
            f"{tap_other}")
    if after:
        say.saw(f"{VICTIM_PRODUCER}'s acks came back {resumed_s:.1f} s after the revert; its stuck Produce request "
                f"waited {stuck_ms / 1000:.1f} s for an answer (normally {normal_ms or 0:.2f} ms, as it measured)")
    result.applied = f"drop {spec.condition} at broker ingress for {span:.1f} s"
    result.clients_saw = (f"{VICTIM_PRODUCER}: {len(victim)} acks, a request stuck {stuck_ms / 1000:.1f} s; "
                          f"{OTHER_PRODUCER}: {len(other)} acks (their own logs)")
    result.measured = {"window": [start, end], "window_s": round(span, 2), "victim_acks": len(victim),
                       "other_acks": len(other), "victim_acks_before": len(before),
                       "tap_victim_acks": tap_victim, "tap_other_acks": tap_other, "kernel_dropped_packets": dropped,
                       "resumed_after_revert_s": None if resumed_s is None else round(resumed_s, 2),
                       "stuck_request_ms": round(stuck_ms, 1), "normal_latency_ms": normal_ms,
                       "rule": str(spec.condition), "from_frame": frame.as_json() | {"packets": None},
                       "waited_for_resume_s": round(waited, 2)}
    result.check(f"{VICTIM_PRODUCER} got no ack while the fault was active (its own log)", not victim and before,
                 f"{len(victim)} acks in the window, {len(before)} in the {HOLD_S:g} s before")
    result.check(f"{OTHER_PRODUCER} kept producing (its own log)", len(other) > 0, f"{len(other)} acks in the window")
    result.check("the kernel dropped the blocked requests", dropped > 0, f"{dropped} packets")
    result.check(f"{VICTIM_PRODUCER}'s acks resumed after the revert (its own log)", bool(after),
                 f"after {resumed_s:.1f} s; the stuck request's round trip {stuck_ms / 1000:.1f} s" if after
                 else f"none within {RESUME_WAIT_S:g} s")


def grade_reports(reports: dict[str, dict], result: ActResult) -> None:
    """The block delayed records; it lost none: the victim's report lists no failure but those of
    records purged when it was stopped."""
    report = reports.get(VICTIM_PRODUCER) or {}
    totals = report_totals(report)
    lost = [e for e in report.get("errors", []) if not of_the_stop(e)]
    result.measured["victim_report"] = {k: totals[k] for k in ("produced", "produce_failed", "errors")}
    result.check(f"{VICTIM_PRODUCER} lost no record to the block (its report)",
                 bool(report) and totals["produced"] > 0 and not lost,
                 f"{totals['produced']} acknowledged, {totals['produce_failed']} failed"
                 + (f": {lost[0][:80]}" if lost else " (purged at the stop)" if totals["produce_failed"] else ""))
