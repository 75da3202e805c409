"""EDGE: `python -m kshock.workloads KIND ...` — run one real Kafka client, write its report.

Exit status: 0 when the workload ran without errors, 1 when the report lists errors (broker
unreachable, records not acknowledged, ...), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from kshock.errors import ExitStatus
from kshock.rules.durations import DURATION_FORMS, is_whole_number, parse_duration_within, parse_seconds
from kshock.workloads.limits import GRACE_S, SETUP_TIMEOUT_S, WorkloadError, hard_limit_s
from kshock.workloads.report import Report, write_report

MAX_DURATION_S = 86400.0
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
KINDS = {
    "kp-producer": "kafka-python KafkaProducer: keyed records with headers at --rate",
    "kp-consumer": "kafka-python KafkaConsumer with assign() (no group) reading every partition from the start",
    "rdk-producer": "confluent-kafka (librdkafka) Producer: keyed records with headers at --rate",
    "rdk-consumer": "confluent-kafka (librdkafka) Consumer in group --group, subscribed to the topics",
    "rdk-admin": "confluent-kafka AdminClient: CreateTopics, Metadata, DescribeCluster, describe topics and configs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kshock.workloads",
        description="Run one real Kafka client for a bounded time and write a JSON report of exactly what "
                    "it did: records acknowledged/consumed per topic and every request it wrote to a socket "
                    "(api_key, api_version, correlation_id, connection). Every workload first makes sure its "
                    "topics exist (CreateTopics; one that exists already is fine).",
        epilog=f"Each run stops by itself within max(duration, {SETUP_TIMEOUT_S:g}) + {GRACE_S:g} seconds. "
               "Exit status 0: no errors; 1: the report lists errors (e.g. broker unreachable); 2: bad usage.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="the broker to bootstrap from")
    common.add_argument("--client-id", required=True, metavar="ID", help="the client.id sent in every request")
    common.add_argument("--topic", required=True, action="append", metavar="T",
                        help="a topic to use (repeat for more; producers spread records round-robin)")
    common.add_argument("--duration", type=_duration, default=10.0, metavar="DURATION",
                        help=f"how long to produce/consume, at most 24h: {DURATION_FORMS} (default: 10)")
    common.add_argument("--report", required=True, type=Path, metavar="FILE",
                        help="where to write the JSON report (atomically, also after errors)")
    common.add_argument("--partitions", type=_positive_int, default=1, metavar="N",
                        help="partitions for topics this workload creates (default 1)")
    common.add_argument("--client-log", type=Path, metavar="FILE",
                        help="also keep the client's raw debug log here")
    producer = argparse.ArgumentParser(add_help=False)
    producer.add_argument("--compression", choices=CODECS, default="none", help="compression codec (default none)")
    producer.add_argument("--message-size", type=_positive_int, default=100, metavar="BYTES",
                          help="size of each record value (default 100)")
    producer.add_argument("--rate", type=_positive, default=10.0, metavar="MSGS_PER_S",
                          help="records per second (default 10)")

    kinds.add_parser("kp-producer", parents=[common, producer], help=KINDS["kp-producer"],
                     description=KINDS["kp-producer"])
    kinds.add_parser("kp-consumer", parents=[common], help=KINDS["kp-consumer"], description=KINDS["kp-consumer"])
    rdk_producer = kinds.add_parser("rdk-producer", parents=[common, producer], help=KINDS["rdk-producer"],
                                    description=KINDS["rdk-producer"])
    rdk_producer.add_argument("--idempotent", action="store_true", help="enable.idempotence=true (InitProducerId)")
    rdk_producer.add_argument("--linger-ms", type=_non_negative_int, metavar="MS", help="librdkafka linger.ms")
    rdk_producer.add_argument("--batch-num-messages", type=_positive_int, metavar="N",
                              help="librdkafka batch.num.messages")
    rdk_consumer = kinds.add_parser("rdk-consumer", parents=[common], help=KINDS["rdk-consumer"],
                                    description=KINDS["rdk-consumer"])
    rdk_consumer.add_argument("--group", metavar="G", help="consumer group id (default <client-id>-group)")
    kinds.add_parser("rdk-admin", parents=[common], help=KINDS["rdk-admin"], description=KINDS["rdk-admin"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.topic = list(dict.fromkeys(args.topic))
    if args.kind.startswith("kp-"):
        from kshock.workloads import kp as client
    else:
        from kshock.workloads import rdk as client
    interrupted = False
    report = Report(args.kind, args.client_id, client.library(), args.bootstrap, args.topic)
    args.deadline = time.monotonic() + args.duration
    finished = threading.Lock()
    watchdog = threading.Timer(hard_limit_s(args.duration), _abandon, (args, report, finished))
    watchdog.daemon = True
    watchdog.start()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        client.run(args, report)
    except WorkloadError as error:
        report.error(str(error))
    except KeyboardInterrupt:
        report.error("interrupted")
        interrupted = True
    except Exception as error:  # a bug or a client library surprise: keep the report, show the trace
        traceback.print_exc()
        report.error(f"{type(error).__name__}: {error}")
    watchdog.cancel()
    if not finished.acquire(blocking=False):
        return ExitStatus.FAILED  # the watchdog is writing the report and will exit
    write_report(args.report, report.to_json())
    if interrupted:
        return ExitStatus.INTERRUPTED
    return ExitStatus.FAILED if report.errors else ExitStatus.OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop like Ctrl-C, still writing the report


def _abandon(args: argparse.Namespace, report: Report, finished: threading.Lock) -> None:
    """The client hangs past every timeout: write what we know and leave without waiting for it."""
    if not finished.acquire(blocking=False):
        return
    report.error(f"did not finish within {hard_limit_s(args.duration):g} s; stopped")
    try:
        write_report(args.report, report.to_json())
    finally:
        sys.stderr.flush()
        os._exit(ExitStatus.FAILED)


def _duration(text: str) -> float:
    """--duration: seconds or with a unit (kshock.cli's duration types read the same way)."""
    try:
        return parse_duration_within(text, MAX_DURATION_S)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(text: str) -> float:
    try:
        value = parse_seconds(text)  # plain ASCII decimal (float() also takes "١" and "1e3")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (write e.g. 10 or 2.5)") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 86400]")
    return value


def _whole(text: str) -> int:
    if not is_whole_number(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (write it in digits 0-9)")
    return int(text)


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value
