"""EDGE: librdkafka workloads (confluent-kafka): rdk-producer, rdk-consumer, rdk-admin.

Requests are read back from librdkafka's own protocol debug log (see `rdkafka_log`), caught on
stderr by `StderrCapture` so that the lines logged during close() are there too.
"""

from __future__ import annotations

import gc
import time
from argparse import Namespace

from kshock.workloads.stderr_capture import StderrCapture
from kshock.workloads.limits import CLOSE_TIMEOUT_S, FLUSH_TIMEOUT_S, SETUP_TIMEOUT_S, WorkloadError
from kshock.workloads.rdkafka_log import parse_requests, problems
from kshock.workloads.records import payload, record_headers, record_key
from kshock.workloads.report import Report


def library() -> str:
    import confluent_kafka

    return f"librdkafka {confluent_kafka.libversion()[0]}"


def run(args: Namespace, report: Report) -> None:
    capture = StderrCapture(args.client_log)
    report.requests = lambda: parse_requests(capture.lines())
    with capture:
        try:
            {"rdk-producer": _produce, "rdk-consumer": _consume, "rdk-admin": _admin}[args.kind](args, report)
        finally:
            gc.collect()  # destroy any client handle still referenced: its last log lines land now
    for problem in problems(capture.lines()):
        report.warning(problem)


def _common_config(args: Namespace, report: Report) -> dict:
    def on_error(error) -> None:
        (report.error if error.fatal() else report.warning)(f"{error.name()}: {error.str()}")

    return {
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "debug": "protocol,broker",
        "error_cb": on_error,
        "socket.connection.setup.timeout.ms": int(SETUP_TIMEOUT_S * 1000),
    }


def ensure_topics(args: Namespace, report: Report, partitions: int) -> None:
    """CreateTopics for every topic the workload uses; one that already exists is fine."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_common_config(args, report))
    try:
        futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1)
                                       for t in args.topic], request_timeout=SETUP_TIMEOUT_S)
        for topic, future in futures.items():
            try:
                future.result(timeout=SETUP_TIMEOUT_S + 1)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise WorkloadError(f"CreateTopics {topic} failed: {error.args[0].str()}") from None
    finally:
        del admin
        gc.collect()


def _produce(args: Namespace, report: Report) -> None:
    from confluent_kafka import Producer

    ensure_topics(args, report, args.partitions)
    config = _common_config(args, report) | {
        "allow.auto.create.topics": False,
        "compression.type": args.compression,
        "enable.idempotence": args.idempotent,
        "message.timeout.ms": int((args.duration + FLUSH_TIMEOUT_S) * 1000),
    }
    if args.linger_ms is not None:
        config["linger.ms"] = args.linger_ms
    if args.batch_num_messages is not None:
        config["batch.num.messages"] = args.batch_num_messages
    if args.message_size > 900_000:
        config["message.max.bytes"] = args.message_size + 100_000
    producer = Producer(config)

    def delivered(error, message) -> None:
        if error is None:
            report.count(report.produced, message.topic())
        else:
            report.count(report.produce_failed, message.topic())
            report.error(f"produce to {message.topic()} failed: {error.name()}: {error.str()}")

    try:
        _produce_at_rate(args, producer, delivered)
        if left := producer.flush(FLUSH_TIMEOUT_S):
            report.error(f"{left} records were not acknowledged within {FLUSH_TIMEOUT_S:g} s of the end")
    finally:  # also when interrupted: what is left fails (and is counted), then the handle goes down
        producer.purge()
        producer.flush(CLOSE_TIMEOUT_S)
        producer.close()


def _produce_at_rate(args: Namespace, producer, delivered) -> None:
    interval_s = 1.0 / args.rate
    next_at = time.monotonic()
    seq = 0
    while (now := time.monotonic()) < args.deadline:
        if now >= next_at:
            topic = args.topic[seq % len(args.topic)]
            try:
                producer.produce(topic, payload(args.client_id, seq, args.message_size),
                                 key=record_key(args.client_id, seq), headers=record_headers(args.client_id, seq),
                                 on_delivery=delivered)
                seq += 1
                next_at = max(next_at + interval_s, now - 1.0)
            except BufferError:
                pass  # local queue full: serve delivery reports and try again
        producer.poll(max(0.0, min(next_at, args.deadline) - time.monotonic()))


def _consume(args: Namespace, report: Report) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException

    ensure_topics(args, report, args.partitions)
    consumer = Consumer(_common_config(args, report) | {
        "group.id": args.group or f"{args.client_id}-group",
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        "enable.auto.commit": True,
        # Tansu answers a JoinGroup only after a delay that grows with these; librdkafka's defaults
        # (45 s / 300 s) leave a fresh group unjoined for longer than a short run.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 2000,
        "max.poll.interval.ms": 10000,
    })
    try:
        consumer.subscribe(list(args.topic))
        while (left_s := args.deadline - time.monotonic()) > 0:
            message = consumer.poll(min(0.5, left_s))
            if message is None:
                continue
            if message.error() is not None:
                report.warning(f"consume: {message.error().name()}: {message.error().str()}")
                continue
            report.count(report.consumed, message.topic())
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                report.error(f"OffsetCommit failed: {error.args[0].str()}")
    finally:
        consumer.close()  # stops fetching, commits, sends LeaveGroup


def _admin(args: Namespace, report: Report) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
    from confluent_kafka import TopicCollection

    ensure_topics(args, report, args.partitions)
    admin = AdminClient(_common_config(args, report))
    try:
        metadata = admin.list_topics(timeout=SETUP_TIMEOUT_S)
        missing = [t for t in args.topic if t not in metadata.topics or metadata.topics[t].error is not None]
        if missing:
            report.error(f"Metadata does not list the topics just created: {', '.join(missing)}")
        calls = {
            "describe_cluster": lambda: {"cluster": admin.describe_cluster(request_timeout=SETUP_TIMEOUT_S)},
            "describe_topics": lambda: admin.describe_topics(TopicCollection(list(args.topic)),
                                                             request_timeout=SETUP_TIMEOUT_S),
            "describe_configs": lambda: admin.describe_configs(
                [ConfigResource(ResourceType.TOPIC, t) for t in args.topic], request_timeout=SETUP_TIMEOUT_S),
        }
        for name, call in calls.items():
            if time.monotonic() > args.deadline + FLUSH_TIMEOUT_S:
                break
            for what, future in call().items():
                try:
                    future.result(timeout=SETUP_TIMEOUT_S + 1)
                except KafkaException as error:
                    report.error(f"{name} {what}: {error.args[0].str()}")
    finally:
        del admin
        gc.collect()
