"""PURE: the lab's traffic scenarios — which real client runs where, with which identity.

Each workload has its own client-id and topics so that a capture's ground truth can say exactly
who produced what. Rates are modest on purpose: the recorded captures stay small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kshock.errors import UserError


@dataclass(frozen=True, slots=True)
class Workload:
    kind: str  # a `python -m kshock.workloads` kind
    client_id: str
    topics: tuple[str, ...]
    options: tuple[str, ...] = ()  # extra command line options for the workload
    host: int = 0  # which lab client runs it (wraps around the lab's clients)


@dataclass(frozen=True, slots=True)
class LinkShaping:
    """A tc tbf rate limit on one client's link: requests queue up in the socket buffer, so
    Kafka frames stop starting at TCP segment boundaries."""

    host: int
    rate: str  # tc rate, e.g. "256kbit"
    burst_bytes: int = 4096
    latency_ms: int = 400


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    workloads: tuple[Workload, ...]
    shaping: tuple[LinkShaping, ...] = field(default=())
    duration_s: float = 4.0  # long enough for the scenario to show what it is about


def _rate(n: int) -> tuple[str, ...]:
    return ("--rate", str(n))


KAFKA_PYTHON = (
    Workload("kp-producer", "kp-orders", ("orders",), _rate(20), host=0),
    Workload("kp-consumer", "kp-audit", ("orders",), (), host=1),
)
COMPRESSION = tuple(
    Workload("rdk-producer", f"rdk-{codec}", (f"metrics-{codec}",),
             ("--compression", codec, *(("--idempotent",) if idempotent else ()), *_rate(20)), host=i)
    for i, (codec, idempotent) in enumerate((("gzip", True), ("snappy", False), ("lz4", False), ("zstd", True)))
)
GROUP = (
    Workload("rdk-admin", "pay-admin", ("payments",), ("--partitions", "2"), host=0),
    Workload("rdk-consumer", "pay-consumer-1", ("payments",), ("--group", "payments-service"), host=1),
    Workload("rdk-consumer", "pay-consumer-2", ("payments",), ("--group", "payments-service"), host=2),
    Workload("rdk-producer", "pay-producer", ("payments",), ("--idempotent", *_rate(20)), host=0),
)
ADMIN = (Workload("rdk-admin", "ops-admin", ("inventory", "audit"), ("--partitions", "3"), host=0),)
LARGE = (
    Workload("rdk-producer", "bulk-loader", ("blobs",), ("--message-size", "200000", *_rate(2)), host=0),
    Workload("kp-producer", "kp-bulk", ("blobs-kp",), ("--message-size", "100000", *_rate(2)), host=1),
)
SLOW_LINK = (
    Workload("rdk-producer", "slow-producer", ("telemetry",),
             ("--message-size", "300", "--linger-ms", "0", "--batch-num-messages", "1", *_rate(60)), host=0),
)

FLOOD = (
    Workload("rdk-producer", "flood-producer", ("flood",),
             ("--message-size", "100", "--linger-ms", "0", "--batch-num-messages", "1", *_rate(9000)), host=0),
)

# The meetup demo (`kshock demo`): two producers with their own client-ids and topics, and a
# two-member consumer group fed by one of them. One client per host, so that a fault aimed at
# one client's namespace touches no other; the last lab client is left free for probes.
DEMO = (
    Workload("rdk-producer", "shop-frontend", ("orders",), _rate(20), host=0),
    Workload("rdk-producer", "billing", ("payments",), ("--partitions", "2", *_rate(20)), host=1),
    Workload("rdk-consumer", "ledger-1", ("payments",), ("--partitions", "2", "--group", "ledger"), host=2),
    Workload("rdk-consumer", "ledger-2", ("payments",), ("--partitions", "2", "--group", "ledger"), host=3),
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("kafka-python", "kafka-python producer with keys and headers, and an assigned consumer", KAFKA_PYTHON),
        Scenario("compression", "librdkafka producers with gzip, snappy, lz4 and zstd, two idempotent", COMPRESSION),
        # A fresh group takes a few seconds to form and one more rebalance for the second member.
        Scenario("group", "a two-member consumer group on a 2-partition topic, fed by an idempotent producer", GROUP,
                 duration_s=8.0),
        Scenario("admin", "CreateTopics, Metadata and describe calls from an admin client", ADMIN),
        Scenario("large", "200 KB and 100 KB messages, each spanning many TCP segments", LARGE, duration_s=3.0),
        Scenario("slow-link", "a producer behind a 230 kbit/s tbf link: requests queue, frames start mid-segment",
                 SLOW_LINK, (LinkShaping(host=0, rate="230kbit"),)),
        Scenario("flood", "one librdkafka producer sending small Produce requests as fast as it can "
                 "(linger.ms=0, batch.num.messages=1): for benchmarks", FLOOD, duration_s=12.0),
        Scenario("mixed", "kafka-python, two compressed librdkafka producers, a consumer group and an admin",
                 KAFKA_PYTHON + COMPRESSION[::3] + GROUP + ADMIN, duration_s=8.0),
        Scenario("demo", "two producers (shop-frontend, billing) and a two-member consumer group (ledger) "
                 "on billing's topic: what `kshock demo` breaks", DEMO, duration_s=10.0),
    )
}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UserError(f"unknown scenario {name!r}", "choose one of: " + ", ".join(sorted(SCENARIOS))) from None
