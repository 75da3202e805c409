"""EDGE: kafka-python workloads: kp-producer and kp-consumer (assign(), no group).

`WireRecorder` wraps two methods of kafka-python's network layer while a workload runs:
`KafkaProtocol.send_request` (a request is encoded and queued: api key, version, correlation id,
frame length) and `KafkaTCPTransport._sock_send` (bytes actually accepted by socket.send). A
request is recorded once every byte of its frame has been sent, so a request still queued or
half-written when a connection dies is not counted.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from argparse import Namespace
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from kshock.workloads.rdkafka_names import api_name
from kshock.workloads.limits import CLOSE_TIMEOUT_S, FLUSH_TIMEOUT_S, SETUP_TIMEOUT_S, WorkloadError
from kshock.workloads.records import payload, record_headers, record_key
from kshock.workloads.report import Report


def library() -> str:
    from kafka.version import __version__

    return f"kafka-python {__version__}"


@dataclass(slots=True)
class _Stream:
    """One TCP connection's outgoing byte stream: frames queued, bytes sent."""

    queued: int = 0
    sent: int = 0
    pending: deque = field(default_factory=deque)  # (end offset, api_key, api_version, correlation_id)
    connection: str | None = None


class WireRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # KafkaProtocol -> _Stream
        self._requests: list[dict] = []

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    @contextlib.contextmanager
    def installed(self) -> Iterator[WireRecorder]:
        from kafka.net.transport import KafkaTCPTransport
        from kafka.protocol.parser import KafkaProtocol

        send_request, sock_send = KafkaProtocol.send_request, KafkaTCPTransport._sock_send
        recorder = self

        def recorded_send_request(parser, request, correlation_id=None):
            correlation_id = send_request(parser, request, correlation_id)
            frame_len = len(parser.bytes_to_send[-1])
            with recorder._lock:
                stream = recorder._streams.setdefault(parser, _Stream())
                stream.queued += frame_len
                stream.pending.append((stream.queued, request.API_KEY, request.API_VERSION, correlation_id))
            return correlation_id

        def recorded_sock_send(transport):
            sock = transport._sock
            label = _connection_label(transport, sock)
            total_bytes, error = sock_send(transport)
            parser = getattr(transport._protocol, "parser", None)
            with recorder._lock:
                stream = recorder._streams.get(parser) if parser is not None else None
                if stream is not None and total_bytes:
                    stream.connection = stream.connection or label
                    stream.sent += total_bytes
                    while stream.pending and stream.pending[0][0] <= stream.sent:
                        _, key, version, correlation_id = stream.pending.popleft()
                        recorder._requests.append({"api_key": key, "api": api_name(key), "api_version": version,
                                                   "correlation_id": correlation_id,
                                                   "connection": stream.connection})
            return total_bytes, error

        KafkaProtocol.send_request = recorded_send_request
        KafkaTCPTransport._sock_send = recorded_sock_send
        try:
            yield self
        finally:
            KafkaProtocol.send_request = send_request
            KafkaTCPTransport._sock_send = sock_send


def _connection_label(transport, sock) -> str:
    node = getattr(transport._protocol, "node_id", None)
    try:
        host, port = sock.getsockname()[:2]
    except (AttributeError, OSError):
        host, port = "?", "?"
    return f"kafka-python {host}:{port} node {node}"


def run(args: Namespace, report: Report) -> None:
    recorder = WireRecorder()
    report.requests = recorder.requests
    with recorder.installed():
        {"kp-producer": _produce, "kp-consumer": _consume}[args.kind](args, report)


def _client_config(args: Namespace) -> dict:
    return {"bootstrap_servers": args.bootstrap, "client_id": args.client_id,
            "request_timeout_ms": int(SETUP_TIMEOUT_S * 1000)}


def ensure_topics(args: Namespace, report: Report, partitions: int) -> None:
    """CreateTopics for every topic the workload uses; one that already exists is fine."""
    import kafka.errors as Errors
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(**_client_config(args), bootstrap_timeout_ms=int(SETUP_TIMEOUT_S * 1000))
    except Errors.KafkaError as error:
        raise WorkloadError(f"cannot bootstrap from {args.bootstrap}: {type(error).__name__}: {error}") from None
    try:
        result = admin.create_topics({t: {"num_partitions": partitions, "replication_factor": 1} for t in args.topic},
                                     timeout_ms=int(SETUP_TIMEOUT_S * 1000), raise_errors=False)
        for topic in result["topics"]:
            error = Errors.for_code(topic["error_code"])
            if error not in (Errors.NoError, Errors.TopicAlreadyExistsError):
                raise WorkloadError(f"CreateTopics {topic['name']} failed: {error.__name__}")
    except Errors.KafkaError as error:
        raise WorkloadError(f"CreateTopics failed: {type(error).__name__}: {error}") from None
    finally:
        admin.close()


def _produce(args: Namespace, report: Report) -> None:
    import kafka.errors as Errors
    from kafka import KafkaProducer, codec

    if args.compression != "none" and not getattr(codec, f"has_{args.compression}")():
        raise WorkloadError(f"kafka-python cannot compress with {args.compression} here: its codec library "
                            "(python-snappy, lz4 or zstandard) is not installed; use gzip or rdk-producer")
    ensure_topics(args, report, args.partitions)
    try:
        producer = KafkaProducer(**_client_config(args), compression_type=None if args.compression == "none" else args.compression,
                                 allow_auto_create_topics=False, max_block_ms=int(SETUP_TIMEOUT_S * 1000),
                                 max_request_size=max(1048576, args.message_size + 100_000))
    except (Errors.KafkaError, AssertionError, ValueError, RuntimeError) as error:
        raise WorkloadError(f"KafkaProducer: {type(error).__name__}: {error}") from None

    def acknowledged(topic):
        return lambda _metadata: report.count(report.produced, topic)

    def failed(topic):
        def on_error(error):
            report.count(report.produce_failed, topic)
            report.error(f"produce to {topic} failed: {type(error).__name__}: {error}")
        return on_error

    interval_s = 1.0 / args.rate
    next_at = time.monotonic()
    seq = 0
    try:
        while (now := time.monotonic()) < args.deadline:
            if now < next_at:
                time.sleep(min(next_at, args.deadline) - now)
                continue
            topic = args.topic[seq % len(args.topic)]
            try:
                future = producer.send(topic, payload(args.client_id, seq, args.message_size),
                                       key=record_key(args.client_id, seq),
                                       headers=record_headers(args.client_id, seq))
            except Errors.KafkaTimeoutError as error:
                report.count(report.produce_failed, topic)
                report.error(f"produce to {topic} failed: {type(error).__name__}: {error}")
            else:
                future.add_callback(acknowledged(topic)).add_errback(failed(topic))
            seq += 1
            next_at = max(next_at + interval_s, now - 1.0)
        try:
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        except Errors.KafkaTimeoutError:
            report.error(f"records were not acknowledged within {FLUSH_TIMEOUT_S:g} s of the end")
    finally:
        producer.close(timeout=CLOSE_TIMEOUT_S)


def _consume(args: Namespace, report: Report) -> None:
    from kafka import KafkaConsumer, TopicPartition

    ensure_topics(args, report, args.partitions)
    consumer = KafkaConsumer(**_client_config(args), group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=500)
    try:
        assigned = []
        for topic in args.topic:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise WorkloadError(f"Metadata lists no partitions for {topic}")
            assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        while (left_s := args.deadline - time.monotonic()) > 0:
            for tp, records in consumer.poll(timeout_ms=int(min(500, left_s * 1000))).items():
                report.count(report.consumed, tp.topic, len(records))
    finally:
        consumer.close()
