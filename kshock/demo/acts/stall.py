"""Act 4 — SYN-only stall: the TCP handshake completes, then nothing answers. A raw-socket probe
sends a real ApiVersions request from a lab client that runs no workload; the stall rule sits in
that client's own namespace (egress), so no other client is touched. The probe's own result is the
yardstick (connected? answered? how long it waited), with the kernel's drop counter; the
producers' own logs show they went on unharmed meanwhile."""

from __future__ import annotations

import time

from kshock.demo.acts import OTHER_PRODUCER, VICTIM_PRODUCER, ActResult, Show, stall_spec
from kshock.demo.probe import probe

SAFETY_S = 60.0
PROBE_WAIT_S = 3.0


def run(show: Show, result: ActResult) -> None:
    stage, say = show.stage, show.narrator
    host = stage.probe_host
    broker_ip = stage.broker.ip
    say.say(f"a raw-socket probe from {host.name} ({host.ip}, no workload there) sends ApiVersions to "
            f"{broker_ip}:{stage.port}")
    control = probe(broker_ip, stage.port, host.netns, timeout_s=2.0, correlation_id=1)
    say.saw(f"before: {control.describe()}")
    spec = stall_spec(stage.port, SAFETY_S, name="demo-syn-only")
    fault = stage.apply(spec, stage.scope_of(host))
    say.applied(f"stall (handshake, then drop every payload segment and FIN) toward port {stage.port} in "
                f"{host.netns} ({fault.record.summary['rules']} kernel rules, egress)")
    say.say(f"probing again, waiting up to {PROBE_WAIT_S:g} s for an answer")
    stalled = probe(broker_ip, stage.port, host.netns, timeout_s=PROBE_WAIT_S, correlation_id=2)
    say.saw(f"during: {stalled.describe()}")
    reverting_at = time.time()
    stage.revert(fault)
    dropped = fault.packets_hit()
    # The other clients' own logs over the same seconds: the rule sat in the probe's namespace only.
    untouched = {c: stage.clients.count(c, "received", "Produce", fault.applied_at, reverting_at)
                 for c in (VICTIM_PRODUCER, OTHER_PRODUCER)}
    say.reverted(f"{spec.name}: the kernel dropped {dropped} packets (the request and its retransmissions)")
    after = probe(broker_ip, stage.port, host.netns, timeout_s=2.0, correlation_id=3)
    say.saw(f"after: {after.describe()}")
    result.applied = f"stall port {stage.port} (egress of {host.name}: handshake ok, payload dropped)"
    result.clients_saw = (f"connected in {stalled.connect_ms or 0:.1f} ms, no answer in {stalled.waited_s:.1f} s "
                          f"(before/after: answered in {control.answer_ms or 0:.1f}/{after.answer_ms or 0:.1f} ms)")
    say.saw("meanwhile, by their own logs: " + ", ".join(f"{c} {n} acks" for c, n in untouched.items()))
    result.measured = {
        "control": _probe_json(control), "stalled": _probe_json(stalled), "after": _probe_json(after),
        "kernel_dropped_packets": dropped, "window": [fault.applied_at, reverting_at],
        "producer_acks_during": untouched,
    }
    result.check("before the fault the broker answers", control.answered, control.describe())
    result.check("under the stall the handshake completes", stalled.connected, stalled.describe())
    result.check("... but nothing answers", stalled.connected and not stalled.answered
                 and stalled.waited_s >= PROBE_WAIT_S - 0.1, f"waited {stalled.waited_s:.1f} s")
    result.check("the kernel dropped the request's segments", dropped > 0, f"{dropped} packets")
    result.check("after the revert the broker answers again", after.answered, after.describe())
    result.check("the demo's producers were untouched (their own logs: acks during the stall)",
                 all(untouched.values()), ", ".join(f"{c} {n}" for c, n in untouched.items()))


def _probe_json(result) -> dict:
    return {"connected": result.connected, "connect_ms": None if result.connect_ms is None else round(result.connect_ms, 2),
            "answered": result.answered, "answer_ms": None if result.answer_ms is None else round(result.answer_ms, 2),
            "waited_s": round(result.waited_s, 2), "error": result.error}
