"""Act 2 — block one producer: a rule compiled from one of its real decoded Produce frames drops
its Produce requests at the broker; it gets no acknowledgement while the other producer goes on."""

from __future__ import annotations

import time

from kshock.demo.acts import OTHER_PRODUCER, VICTIM_PRODUCER, ActResult, Show, block_spec, frame_line
from kshock.demo.observe import client_of

HOLD_S = 5.0
SAFETY_S = 60.0  # the kernel ends the fault by itself after this, whatever happens to the demo
RESUME_WAIT_S = 12.0  # TCP retransmission backoff: the stuck segment goes again 0.2, 0.6, 1.4, 3.0, 6.2 s in
SETTLE_S = 0.5  # responses already on their way when the rule went in


def _acks(frames, client: str, start: float, end: float) -> list:
    return [f for f in frames if f.kind == "response" and f.api == "Produce" and client_of(f) == client
            and start <= f.ts <= end]


def run(show: Show, result: ActResult) -> None:
    stage, say = show.stage, show.narrator
    log = stage.tap.log
    frame = log.latest(VICTIM_PRODUCER, "Produce")
    if not result.check(f"a Produce request of {VICTIM_PRODUCER} was decoded", frame is not None):
        return
    say.say("the rule is compiled from this decoded frame (its API and client-id):")
    say.frame(frame_line(frame))
    spec = block_spec(frame, stage.port, SAFETY_S)
    fault = stage.apply(spec, stage.scope_of(stage.broker))
    say.applied(f"drop {spec.condition} at the broker's INPUT ({fault.record.summary['rules']} kernel rules in "
                f"{stage.broker.netns}; the kernel ends it by itself in {SAFETY_S:g} s if the demo dies)")

    def status() -> str:
        frames = log.between(fault.applied_at + SETTLE_S)
        return " ".join(f"{c} {len(_acks(frames, c, 0, 1e12))} acks" for c in (VICTIM_PRODUCER, OTHER_PRODUCER))

    say.wait(HOLD_S, "fault active", status=status)
    stage.revert(fault)
    dropped = fault.packets_hit()
    say.reverted(f"{spec.name}: the kernel dropped {dropped} packets while it was active")
    waited = say.wait(RESUME_WAIT_S, f"waiting for {VICTIM_PRODUCER}'s next ack (TCP retransmits on its own schedule)",
                      until=lambda: bool(_acks(log.snapshot(), VICTIM_PRODUCER, fault.reverted_at, 1e12)))
    frames = log.snapshot()
    start, end = fault.applied_at + SETTLE_S, fault.reverted_at
    victim = _acks(frames, VICTIM_PRODUCER, start, end)
    other = _acks(frames, OTHER_PRODUCER, start, end)
    before = _acks(frames, VICTIM_PRODUCER, fault.applied_at - HOLD_S, fault.applied_at)
    after = _acks(frames, VICTIM_PRODUCER, end, time.time())
    resumed_s = (after[0].ts - end) if after else None
    stuck_ms = max((f.latency_ms or 0.0 for f in after), default=0.0)
    normal_ms = sorted(f.latency_ms or 0.0 for f in before)[len(before) // 2] if before else None
    span = end - start
    say.saw(f"during the {span:.1f} s window: {VICTIM_PRODUCER} {len(victim)} acks, {OTHER_PRODUCER} "
            f"{len(other)} acks ({len(other) / span:.1f}/s)")
    if after:
        say.saw(f"{VICTIM_PRODUCER}'s acks came back {resumed_s:.1f} s after the revert; its stuck Produce request "
                f"waited {stuck_ms / 1000:.1f} s for an answer (normally {normal_ms or 0:.2f} ms)")
    result.applied = f"drop {spec.condition} at broker ingress for {span:.1f} s"
    result.clients_saw = (f"{VICTIM_PRODUCER}: {len(victim)} acks, a request stuck {stuck_ms / 1000:.1f} s; "
                          f"{OTHER_PRODUCER}: {len(other)} acks")
    result.measured = {"window_s": round(span, 2), "victim_acks": len(victim), "other_acks": len(other),
                       "victim_acks_before": len(before), "kernel_dropped_packets": dropped,
                       "resumed_after_revert_s": None if resumed_s is None else round(resumed_s, 2),
                       "stuck_request_ms": round(stuck_ms, 1), "normal_latency_ms": normal_ms,
                       "rule": str(spec.condition), "from_frame": frame.as_json() | {"packets": None},
                       "waited_for_resume_s": round(waited, 2)}
    result.check(f"{VICTIM_PRODUCER} got no ack while the fault was active", not victim and before,
                 f"{len(victim)} acks in the window, {len(before)} in the {HOLD_S:g} s before")
    result.check(f"{OTHER_PRODUCER} kept producing", len(other) > 0, f"{len(other)} acks in the window")
    result.check("the kernel dropped the blocked requests", dropped > 0, f"{dropped} packets")
    result.check(f"{VICTIM_PRODUCER}'s acks resumed after the revert", bool(after),
                 f"after {resumed_s:.1f} s" if after else f"none within {RESUME_WAIT_S:g} s")
