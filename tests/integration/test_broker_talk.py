"""Asking a real broker (Tansu in a lab) for topic ids agrees with the ids its Metadata answers carry on the wire."""

from __future__ import annotations

import threading
import time

import pytest

from kshock.host import probe as broker_talk
from kshock.capture.live import LiveCapture
from kshock.lab import state
from kshock.wire.sniffer import Sniffer


def test_topic_ids_asked_of_the_broker_equal_those_its_metadata_answers_carried(lab):
    plan = state.load(lab.name).plan
    capture = LiveCapture({plan.port}, interface=plan.broker.ifname, netns=plan.broker.netns).open()
    sniffer = Sniffer({plan.port})
    stop = threading.Event()

    def read() -> None:
        for ts, linktype, raw in capture.packets(stop):
            sniffer.feed(ts, linktype, raw)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = lab.kshock("traffic", "--scenario", "kafka-python", "--duration", "2", timeout=120)
        assert result.returncode == 0, result.stderr
        time.sleep(0.3)
    finally:
        stop.set()
        reader.join(10)
        capture.close()
    on_the_wire = {name: topic_id for topic_id, name in sniffer.decoder.topic_names.items()}
    assert "orders" in on_the_wire  # the producer's Metadata v10+ answer named it with its id

    asked = broker_talk.topic_ids(plan.broker.ip, plan.port, ["orders", "no-such-topic"],
                                  netns=plan.broker.netns)
    assert asked == {"orders": on_the_wire["orders"]}  # and an unknown topic is not invented (nor created)
    assert "no-such-topic" not in broker_talk.topic_ids(plan.broker.ip, plan.port, ["no-such-topic"],
                                                        netns=plan.broker.netns)


def test_an_unreachable_broker_is_an_os_error(lab):
    plan = state.load(lab.name).plan
    with pytest.raises(OSError):  # nothing listens on this port inside the lab
        broker_talk.topic_ids(plan.broker.ip, plan.port + 1, ["orders"], timeout_s=1.0, netns=plan.broker.netns)
