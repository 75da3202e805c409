"""Act 5 — the dead-man switch: a fault with a 5 s duration is applied and then left alone. Every
rule carries `-m time --datestop`, so the kernel stops applying it by itself: the probe gets its
answer again while the rules are still loaded and nothing of kshock touched them. Only then does
the garbage collection `kshock status` runs (faults.collect_expired) take the chains away. The
yardstick is the probe's own answers (a client of its own, on a namespace no workload shares)."""

from __future__ import annotations

import time

from kshock.demo.acts import ActResult, Show, stall_spec
from kshock.demo.probe import probe

DURATION_S = 5.0
PROBE_EVERY_S = 0.5
PROBE_WAIT_S = 0.4
LATE_S = 4.0  # give up this long after the expiry


def run(show: Show, result: ActResult) -> None:
    from kshock.apply import faults

    stage, say = show.stage, show.narrator
    host = stage.probe_host
    spec = stall_spec(stage.port, DURATION_S, name="demo-deadman")
    fault = stage.apply(spec, stage.scope_of(host))
    expires = fault.expires_at
    say.applied(f"stall toward port {stage.port} in {host.netns} for {DURATION_S:g} s: every rule ends with "
                f"-m time --datestop {time.strftime('%H:%M:%S', time.gmtime(expires - 1))} (UTC, the last second it "
                "applies). kshock now does "
                "nothing with it: no timer, no revert.")
    probes: list[tuple[float, bool]] = []
    first_answer = None
    loaded_at_answer = None
    correlation = 10
    while time.time() < expires + LATE_S:
        correlation += 1
        outcome = probe(stage.broker.ip, stage.port, host.netns, timeout_s=PROBE_WAIT_S, correlation_id=correlation)
        at = time.time()
        probes.append((at, outcome.answered))
        left = expires - at
        if say.live:
            say.out.write(f"\r\x1b[2K  probe {len(probes):2d}: "
                          + (say.paint("answered", "green") if outcome.answered else say.paint("no answer", "red"))
                          + f"   expiry in {left:+.1f} s")
            say.out.flush()
        if outcome.answered:
            first_answer = at
            loaded_at_answer = stage.chains_loaded(fault)
            break
        time.sleep(max(0.0, PROBE_EVERY_S - (time.time() - at)))
    if say.live:
        say.out.write("\r\x1b[2K")
    stalled = sum(1 for _, answered in probes if not answered)
    if first_answer is not None:
        say.saw(f"{stalled} probes got no answer; the first answer came {first_answer - expires:+.1f} s after the "
                f"expiry, with kshock's chains "
                + ("still loaded: the kernel ended it" if loaded_at_answer else
                   "already gone (another kshock command collected them first)"))
    else:
        say.saw(f"{stalled} probes got no answer, none answered within {LATE_S:g} s of the expiry")
    expired = faults.collect_expired()
    collected = any(r.name == fault.record.name and r.scope == fault.scope for r in expired)
    still = stage.chains_loaded(fault)
    fault.reverted_at = time.time()  # nothing left for the stage to revert
    say.saw(f"kshock status: expired and removed {', '.join(r.name for r in expired) or 'nothing'}; "
            f"chains left: {'yes' if still else 'none'}")
    result.applied = f"stall port {stage.port} in {host.name} with a {DURATION_S:g} s datestop, never reverted"
    result.clients_saw = (f"{stalled} probes unanswered, then answered {first_answer - expires:+.1f} s after expiry"
                          if first_answer is not None else f"{stalled} probes unanswered, never answered")
    result.measured = {"duration_s": DURATION_S, "probes_unanswered": stalled,
                       "first_answer_after_expiry_s": None if first_answer is None else round(first_answer - expires, 2),
                       "chains_loaded_at_first_answer": loaded_at_answer, "garbage_collected": collected,
                       "chains_left_after_gc": still}
    result.check("the fault held while active", stalled > 0, f"{stalled} probes unanswered")
    result.check("the kernel ended it at its datestop",
                 first_answer is not None and -0.2 <= first_answer - expires <= 2.5,
                 "no answer" if first_answer is None else f"first answer {first_answer - expires:+.2f} s after it")
    result.check("... with the rules still loaded (kshock removed nothing)", bool(loaded_at_answer))
    result.check("status garbage-collected the expired chains", collected and not still)
