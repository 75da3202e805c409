"""Time compile_rules on the example conditions: milliseconds per rule (target: <= 10 ms).

    python benchmarks/compile.py
"""

from __future__ import annotations

import time

from kshock.conditions import parse_condition
from kshock.rules.compile import compile_rules
from kshock.rules.render import render_restore
from kshock.rules.spec import Action, RuleSpec, Trigger

EXAMPLES = [
    ("api == Produce", {}),
    ('api == Produce and client_id == "rdk-gzip"', {}),
    ('api == Fetch and topic == "payments"', {}),
    ('api in {JoinGroup, SyncGroup} and client_id == "pay-consumer-1"', {}),
    ('client_id == "kp-orders"', {}),
    ('api == Produce and topic in {"orders", "payments"} and acks == all', {"latch": True}),
    ('not client_id in {"kp-orders", "kp-audit"} and api == Produce', {"trigger": Trigger("nth", every=5)}),
]
TOPIC_IDS = {"payments": bytes(range(16)), "orders": bytes(range(16, 32))}


def main(rounds: int = 200) -> None:
    print(f"{'condition':<72} {'kernel rules':>12} {'ms/rule':>8}")
    worst = 0.0
    for text, more in EXAMPLES:
        spec = RuleSpec("r", parse_condition(text), Action("drop"), **more)
        started = time.perf_counter()
        for _ in range(rounds):
            ruleset = compile_rules([spec], "bench", expires_at="2030-01-01T00:00:00", topic_ids=TOPIC_IDS)
        ms = (time.perf_counter() - started) * 1000 / rounds
        render_restore(ruleset)  # the text renders (not timed)
        kernel = sum(len(chain.rules) for chain in ruleset.chains)
        worst = max(worst, ms)
        print(f"{text:<72} {kernel:>12} {ms:>8.3f}")
    print(f"worst: {worst:.3f} ms per rule (target <= 10 ms)")


if __name__ == "__main__":
    main()
