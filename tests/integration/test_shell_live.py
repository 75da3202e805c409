"""`kshock shell` on live traffic: the AF_PACKET capture, --script against a lab, and a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import kshock, lab_namespaces

from kshock.host import probe as broker_talk
from kshock.capture.live import LiveCapture
from kshock.lab import state
from kshock.wire.model import KafkaFrame
from kshock.wire.sniffer import Sniffer

ROOT = Path(__file__).resolve().parents[2]


def shell_argv() -> list[str]:
    """`kshock shell`, run by this interpreter."""
    return [sys.executable, "-m", "kshock", "shell"]


def kshock_chains(netns: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(set(re.findall(r"^:(KSHOCK-\S+)", out, re.M)))


def test_live_capture_decodes_a_real_workload_and_reads_kernel_drop_counters(lab):
    plan = state.load(lab.name).plan
    home = os.readlink("/proc/self/ns/net")
    capture = LiveCapture({plan.port}, interface=plan.broker.ifname, netns=plan.broker.netns).open()
    sniffer = Sniffer({plan.port})
    requests: Counter = Counter()
    stop = threading.Event()
    packets = 0

    def read() -> None:
        nonlocal packets
        for ts, linktype, raw in capture.packets(stop):
            packets += 1
            for event in sniffer.feed(ts, linktype, raw):
                if isinstance(event, KafkaFrame) and event.is_request:
                    requests[event.client_id or event.conn_client_id] += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert os.readlink("/proc/self/ns/net") == home  # the socket is in the lab; this thread is back home
        result = lab.kshock("traffic", "--scenario", "mixed", "--duration", "3", "--json", timeout=180)
        assert result.returncode == 0, result.stderr
        time.sleep(0.5)  # the last FINs and ACKs
    finally:
        stop.set()
        reader.join(10)
        stats = capture.stats()
        capture.close()
    truth = json.loads(result.stdout)
    assert {c: requests[c] for c in truth["clients"]} == {c: i["requests"] for c, i in truth["clients"].items()}
    assert sum(requests.values()) == truth["requests_total"]
    assert stats.packets == packets > 1000  # PACKET_STATISTICS counted what the filter passed...
    assert stats.drops == 0  # ...and the kernel dropped nothing
    assert capture.linktype == 1


def test_live_capture_refuses_what_does_not_exist(lab):
    from kshock.errors import UserError

    with pytest.raises(UserError, match="no network namespace"):
        LiveCapture({9092}, netns="ksl-nonexistent-x").open()
    with pytest.raises(UserError, match="no interface 'nope0' in namespace"):
        LiveCapture({9092}, interface="nope0", netns=state.load(lab.name).plan.broker.netns).open()


def test_script_on_a_lab_applies_then_reverts_real_rules(lab, tmp_path):
    netns = state.load(lab.name).plan.broker.netns
    script = tmp_path / "demo.kshock"
    script.write_text("wait 3\nstats\nwhen client_id == \"kp-orders\" do drop for 1m as nokp\napply\nrules\nwait 3\n"
                      "show client_id == \"kp-orders\"\nquit\n")
    traffic = subprocess.Popen([sys.executable, "-m", "kshock", "lab", "traffic", "--name", lab.name,
                                "--scenario", "kafka-python", "--duration", "8"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shell = subprocess.Popen([*shell_argv(), "--lab", lab.name, "--script", str(script)], cwd=ROOT,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 20
        while shell.poll() is None and time.monotonic() < deadline:
            seen = seen or kshock_chains(netns)
            time.sleep(0.2)
        out, err = shell.communicate(timeout=30)
    finally:
        for process in (shell, traffic):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert shell.returncode == 0, out + err
    assert seen == ["KSHOCK-nokp"]  # the rule was in the broker namespace's kernel while the script ran
    assert kshock_chains(netns) == []  # and quit took it out
    assert "applied nokp in namespace " + netns in out
    assert re.search(r"kp-orders\s+\d+", out)
    assert out.rstrip().endswith("reverted: nokp")


def create_topic(lab, name: str) -> None:
    """CreateTopics v4 from inside the broker's namespace (not on the bridge the shell captures)."""
    from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse

    plan = state.load(lab.name).plan
    request = CreateTopicsRequest[4](topics=[CreateTopicsRequest[4].CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])], timeout_ms=5000,
        validate_only=False)
    with broker_talk.connect(plan.broker.ip, plan.port, 5.0, plan.broker.netns) as sock:
        answer = broker_talk.exchange(sock, request, CreateTopicsResponse[4], 1)
    assert answer.topics[0].error_code in (0, 36), answer  # 36: it exists already


def test_a_topic_rule_whose_id_never_went_by_asks_the_broker_for_it(lab):
    """Produce v13 names topics by id. The shell learns ids from the Metadata answers it sees; for
    a topic whose id never went by (a client asked before the capture began), a live shell asks
    the broker its captured requests went to, and the rule compiles with the broker's id."""
    from kshock.shell.commands import Shell, ShellTarget
    from kshock.shell.session import Session

    plan = state.load(lab.name).plan
    create_topic(lab, "shell-ids")
    session = Session(ports={plan.port})
    session.brokers[f"{plan.broker.ip}:{plan.port}"] = None  # what capturing a request to it records
    rule = 'when api == Produce and topic == "shell-ids" do drop as {}'

    offline = Shell(session, ShellTarget(live=False))  # a capture file: no broker to ask
    refused = offline.execute(rule.format("t1"))
    assert not refused.ok and "no id is known for topic 'shell-ids'" in refused.text

    live = Shell(session, ShellTarget(scope_name=plan.broker.netns, live=True, ports=(plan.port,)))
    compiled = live.execute(rule.format("t2"))
    assert compiled.ok, compiled.text
    topic_id = broker_talk.topic_ids(plan.broker.ip, plan.port, ["shell-ids"], netns=plan.broker.netns)["shell-ids"]
    assert session.topic_ids()["shell-ids"] == topic_id
    exported = live.execute("export").text
    words = [f"=0x{int.from_bytes(topic_id[i:i + 4], 'big'):X}" for i in range(0, 16, 4)]
    assert all(word in exported for word in words), exported  # the v13 rule tests the broker's id


# -- a real terminal ---------------------------------------------------------------------------

class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20).stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", self.name, "-l", text)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            found = re.search(pattern, screen, re.M)
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} did not appear; the screen:\n{screen}")


@pytest.fixture
def terminal_lab(lab_environment):
    """A lab of its own (shNNN) with traffic running, and a tmux server; all removed afterwards."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (make setup)")
    name = f"sh{os.getpid() % 100000}"
    tmux = Tmux(f"kshock-{name}")
    traffic = None
    try:
        kshock("lab", "up", "--name", name, "--clients", "2", check=True)
        traffic = subprocess.Popen([sys.executable, "-m", "kshock", "lab", "traffic", "--name", name,
                                    "--scenario", "kafka-python", "--duration", "40"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield name, tmux
    finally:
        if tmux.alive():
            tmux.run("kill-session", "-t", tmux.name)
        if traffic is not None and traffic.poll() is None:
            traffic.terminate()
            try:
                traffic.wait(10)
            except subprocess.TimeoutExpired:
                traffic.kill()
        kshock("lab", "down", "--name", name)
        assert lab_namespaces(name) == []


def test_in_a_real_terminal_watch_pick_apply_and_leave_reverting(terminal_lab, tmp_path):
    name, tmux = terminal_lab
    netns = f"ksl-{name}-broker"
    command = " ".join([*shell_argv(), "--lab", name, "--history", str(tmp_path / "history")])
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", "160", "-y", "48", "-c", str(ROOT), command)
    tmux.wait_for(r"frames/s \| [\d,]+ frames \| kernel drops 0")
    # frames scroll in the frames pane while the prompt waits
    row = tmux.wait_for(r"^\s+(\d+) \S+ Produce v\d+\s+\d+ kp-orders", timeout=30)
    tmux.type("stats")
    tmux.keys("Enter")
    tmux.wait_for(r"^kp-orders\s+\d+")
    tmux.type(f"pick {row.group(1)}")
    tmux.keys("Enter")
    tmux.wait_for(r'kshock> when api == Produce and client_id == "kp-orders" and topic == "orders" do\s*$')
    tmux.type("dr")
    tmux.keys("Tab")  # completes the action
    tmux.wait_for(r'do drop\s*$')
    tmux.type(" for 2m")
    tmux.keys("Enter")
    tmux.wait_for(r"^nothing is applied yet: apply puts it in the kernel")
    assert kshock_chains(netns) == []  # written, not applied
    tmux.type("apply")
    tmux.keys("Enter")
    tmux.wait_for(r"applied r1 in namespace " + netns)
    tmux.wait_for(r"applied: r1 1:[0-5]\d")  # the toolbar counts down from 2:00
    assert kshock_chains(netns) == ["KSHOCK-r1"]
    tmux.type("show api == Prodcue")  # an error: one message, the prompt stays
    tmux.keys("Enter")
    tmux.wait_for(r"kshock: column 8: unknown API 'Prodcue'")
    tmux.keys("C-d")
    tmux.wait_for(r"1 rules are still applied. Revert them before leaving\? \[Y/n\]")
    tmux.keys("Enter")
    deadline = time.monotonic() + 10
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), tmux.screen()
    assert kshock_chains(netns) == []
    assert "+pick" in (tmp_path / "history").read_text()
