"""The same checks against real Apache Kafka, started with testcontainers where Docker exists.

This machine has no Docker engine, so here these tests skip and say why; the Tansu lab tests
always run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

APACHE_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"


def docker_skip_reason() -> str | None:
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed (pip install testcontainers)"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:  # the SDK raises several types when no engine answers
        return f"no Docker engine answers here ({type(error).__name__}); Apache Kafka tests need one"
    finally:
        try:
            client.close()
        except Exception:
            pass
    return None


@pytest.fixture(scope="module")
def apache_kafka() -> Iterator[str]:
    """Bootstrap address of a real Apache Kafka broker in a container; skipped without Docker."""
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(APACHE_KAFKA_IMAGE) as container:
        yield container.get_bootstrap_server()


@pytest.mark.docker
def test_apache_kafka_answers_the_lab_probe(apache_kafka):
    from kshock.lab.broker import probe_api_versions

    host, port = apache_kafka.rsplit(":", 1)
    answer = probe_api_versions(host, int(port), timeout_s=5)
    assert answer.error_code == 0
    assert answer.max_versions[0] >= 7  # Produce


@pytest.mark.docker
def test_apache_kafka_round_trip(apache_kafka):
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": apache_kafka, "client.id": "kshock-test"})
    for i in range(10):
        producer.produce("kshock-roundtrip", value=f"v{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": apache_kafka, "group.id": "kshock-test"})
    consumer.assign([TopicPartition("kshock-roundtrip", 0, 0)])
    values, deadline = [], time.monotonic() + 30
    while len(values) < 10 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    consumer.close()
    assert values == [f"v{i}" for i in range(10)]
