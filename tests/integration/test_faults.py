"""kshock apply / revert / status against the real broker, real clients and real iptables.

Every test snapshots `iptables-save` and the qdiscs of the lab's namespaces (and the host's
iptables) and, in teardown, runs `kshock revert --all` per lab namespace and asserts that
everything reads exactly as before. Faults go into the lab's namespaces only; the host is
touched by nothing but `--dry-run`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import kshock
from kshock.host.run_dir import RUN_DIR_ENV, run_dir


@pytest.fixture(scope="module", autouse=True)
def own_run_dir(tmp_path_factory):
    """This module's labs and faults keep their state in a folder of its own (KSHOCK_RUN_DIR,
    inherited by every kshock it runs): `status` collects expired faults, and it must never
    collect, or be disturbed by, another run's on the same machine."""
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(tmp_path_factory.mktemp("kshock-run"))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous

# A raw Kafka client: connect, send ApiVersions v0 with the given client id, wait for the
# first 4 bytes of the answer. Prints JSON: how long the handshake and the answer took.
PROBE = textwrap.dedent("""
    import json, socket, struct, sys, time
    host, client_id, timeout_s = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    out = {}
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, 9092), timeout=timeout_s)
    except OSError as error:
        print(json.dumps({"connected": False, "result": type(error).__name__})); sys.exit()
    out["connected"] = True
    out["handshake_s"] = time.monotonic() - start
    sock.settimeout(timeout_s)
    sent = time.monotonic()
    try:
        sock.sendall(struct.pack(">i", len(header)) + header)
        data = sock.recv(4)
        out["result"] = "response" if len(data) == 4 else "closed"
    except socket.timeout:
        out["result"] = "timeout"
    except OSError as error:
        out["result"] = type(error).__name__
    out["after_s"] = time.monotonic() - sent
    print(json.dumps(out))
""")


def _netns(namespace: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", namespace, *argv], capture_output=True, text=True, timeout=timeout)


def _normal(text: str) -> str:
    """iptables-save without its timestamps and counters."""
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines() if not line.startswith("#"))


def _snapshot(namespaces: list[str]) -> dict[str, str]:
    snap = {"host": _normal(subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout)}
    for ns in namespaces:
        snap[ns] = _normal(_netns(ns, "iptables-save").stdout) + "\n" + _netns(ns, "tc", "qdisc", "show").stdout
    return snap


class Faults:
    """The lab plus helpers; `kshock` runs the real CLI."""

    def __init__(self, lab) -> None:
        self.lab = lab
        state = json.loads(lab.kshock("status", "--json", check=True).stdout)[0]
        self.broker_ip = state["broker"]["ip"]
        self.broker_pid = state["broker"]["pid"]
        self.broker = state["broker"]["netns"]
        self.clients = {c["name"]: c["netns"] for c in state["clients"]}
        self.namespaces = [self.broker, *self.clients.values()]

    def probe(self, client: str, client_id: str, timeout_s: float = 2.0) -> dict:
        result = _netns(self.clients[client], sys.executable, "-c", PROBE, self.broker_ip, client_id, str(timeout_s))
        assert result.stdout, result.stderr
        return json.loads(result.stdout)

    def producer(self, client: str, client_id: str, report: Path, duration_s: float = 3, *extra: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "kshock.workloads", "rdk-producer", "--bootstrap", f"{self.broker_ip}:9092",
                "--client-id", client_id, "--topic", "faults", "--duration", str(duration_s), "--report", str(report),
                *extra]
        return subprocess.Popen(["ip", "netns", "exec", self.clients[client], *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


@pytest.fixture
def faults(lab):
    """The lab, with a before/after check: `revert --all` restores iptables-save and tc exactly."""
    from argparse import Namespace

    from kshock.apply.handlers import revert

    made = Faults(lab)
    before = _snapshot(made.namespaces)
    try:
        yield made
    finally:
        # `kshock revert --all`, in-process (it is the same handler; a subprocess per namespace
        # would cost a Python start-up each).
        for ns, pid in [(ns, None) for ns in made.namespaces] + [(None, made.broker_pid)]:
            revert(Namespace(names=[], all=True, netns=ns, pid=pid))
        after = _snapshot(made.namespaces)
        assert after == before
        assert not list((run_dir() / "faults").glob(f"*-ksl-{lab.name}-*/*.json"))


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def _rule_file(tmp_path: Path, name: str, match: str, action: str, duration: str = "2m", trigger: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"rules:\n  - name: {name}\n    match: '{match}'\n    action: {action}\n"
                    f"    target: {{port: 9092, direction: ingress}}\n    duration: {duration}\n"
                    + (f"    trigger: {trigger}\n" if trigger else ""))
    return path


def test_produce_from_a_is_blocked_while_b_keeps_producing(faults, tmp_path):
    rules = _rule_file(tmp_path, "blocka", 'api == Produce and client_id == "client-a"', "drop")
    kshock("apply", str(rules), "--netns", faults.broker, check=True)
    a = faults.producer("c1", "client-a", tmp_path / "a.json", 3)
    b = faults.producer("c2", "client-b", tmp_path / "b.json", 3)
    a.wait(timeout=60)
    b.wait(timeout=60)
    report_a, report_b = _report(tmp_path / "a.json"), _report(tmp_path / "b.json")
    assert report_b["produced"]["faults"] >= 25 and report_b["errors"] == []
    assert report_a["produced"].get("faults", 0) == 0 and report_a["errors"]
    assert report_a["requests_per_api"]["Produce"] >= 1  # A did try: the kernel dropped its Produce requests
    status = json.loads(kshock("status", "--json", check=True).stdout)
    (fault,) = [f for f in status if f["name"] == "blocka"]
    dropped = [r for rules_ in fault["counters"].values() for r in rules_ if r["rule"].endswith("-j DROP")]
    assert sum(r["packets"] for r in dropped) >= 1


def test_reset_gives_a_connection_error_at_once(faults):
    kshock("apply", "--match", 'client_id == "client-a"', "--action", "reset", "--name", "reseta", "--netns", faults.broker,
           check=True)
    seen = faults.probe("c1", "client-a", timeout_s=5)
    assert seen["connected"] and seen["result"] == "ConnectionResetError", seen
    assert seen["after_s"] < 1.0, seen  # measured: a few milliseconds
    print(f"reset: connection error {seen['after_s'] * 1e6:.0f} µs after the ApiVersions request")
    assert faults.probe("c2", "client-b")["result"] == "response"  # other clients are untouched


def test_stall_then_the_kernel_ends_the_fault_by_itself(faults, tmp_path):
    rules = _rule_file(tmp_path, "stall5", "any", "stall", duration="5s")
    kshock("apply", str(rules), "--netns", faults.broker, check=True)
    applied = time.time()  # the kernel stops the rules within 6 s of this (5 s, 1 s datestop granularity)
    seen = faults.probe("c1", "client-a", timeout_s=2)
    assert seen["connected"] and seen["handshake_s"] < 0.5  # the handshake completes ...
    assert seen["result"] == "timeout"  # ... and no ApiVersions response ever arrives
    assert not [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
                if "kshock apply" in line]  # no kshock process is running
    time.sleep(max(0.0, applied + 6 - time.time()))
    # The chains are still loaded (nothing ran kshock), but --datestop has switched them off.
    assert "KSHOCK-stall5" in _netns(faults.broker, "iptables-save").stdout
    assert faults.probe("c1", "client-a")["result"] == "response"
    a = faults.producer("c1", "client-a", tmp_path / "a.json", 1)
    a.wait(timeout=60)
    assert _report(tmp_path / "a.json")["produced"]["faults"] >= 5
    # The next kshock command garbage-collects the expired chains.
    assert "expired and removed: stall5" in kshock("status", check=True).stdout
    assert "KSHOCK" not in _netns(faults.broker, "iptables-save").stdout


def test_rate_throttles_produce_and_tc_ends_with_the_fault(faults, tmp_path):
    # The same offered load twice, 3.2 Mbit/s of 10 kB records for 2 s: without the fault it
    # all goes through at once; with `rate 1mbit` the last acknowledgement comes ~6 s later.
    heavy = ("--message-size", "10000", "--rate", "40")
    free = faults.producer("c1", "client-a", tmp_path / "free.json", 2, *heavy)
    free.wait(timeout=60)
    kshock("apply", "--action", "rate 1mbit", "--name", "slow", "--netns", faults.clients["c1"], "--direction",
           "egress", "--interface", "eth0", "--duration", "60s", check=True)
    shown = _netns(faults.clients["c1"], "tc", "qdisc", "show", "dev", "eth0").stdout
    assert "qdisc htb 4b53: root" in shown and "rate 1Mbit" in shown
    slow = faults.producer("c1", "client-a", tmp_path / "slow.json", 2, *heavy)
    slow.wait(timeout=60)
    free_r, slow_r = _report(tmp_path / "free.json"), _report(tmp_path / "slow.json")
    free_bit_s, slow_bit_s = (r["produced"].get("faults", 0) * 10000 * 8 / (r["ended"] - r["started"])
                              for r in (free_r, slow_r))
    print(f"rate 1mbit: Produce {free_bit_s / 1e6:.2f} Mbit/s without the fault, {slow_bit_s / 1e6:.2f} Mbit/s "
          f"with it ({slow_r['produced'].get('faults', 0)} of {free_r['produced']['faults']} records, "
          f"{slow_r['ended'] - slow_r['started']:.1f} s)")
    assert slow_r["errors"] == [] and slow_r["produce_failed"] == {}  # slower, but every record arrives
    assert 0.6e6 < slow_bit_s < 1.1e6 and free_bit_s > 2.5e6
    status = json.loads(kshock("status", "--json", check=True).stdout)
    (fault,) = [f for f in status if f["name"] == "slow"]
    (shaped,) = fault["tc_counters"]
    assert shaped["qdisc"] == "tbf" and shaped["bytes"] > 100_000 and shaped["overlimits"] > 0
    kshock("revert", "slow", "--netns", faults.clients["c1"], check=True)
    assert "htb" not in _netns(faults.clients["c1"], "tc", "qdisc", "show").stdout


def test_tc_fault_expires_in_the_kernel_with_the_qdisc_still_there(faults, tmp_path):
    c1 = faults.clients["c1"]
    kshock("apply", "--action", "rate 1mbit", "--name", "brief", "--netns", c1, "--direction", "egress",
           "--duration", "3s", check=True)
    time.sleep(4.2)  # --datestop has 1 s granularity: the kernel stops within 4 s of applying
    before = _netns(c1, "tc", "-s", "-j", "qdisc", "show", "dev", "eth0").stdout
    a = faults.producer("c1", "client-a", tmp_path / "a.json", 1, "--message-size", "10000", "--rate", "500")
    a.wait(timeout=60)
    after = _netns(c1, "tc", "-s", "-j", "qdisc", "show", "dev", "eth0").stdout
    tbf = [[q for q in json.loads(text) if q["kind"] == "tbf"][0] for text in (before, after)]
    assert tbf[0]["bytes"] == tbf[1]["bytes"]  # nothing was classified into the class any more
    assert _report(tmp_path / "a.json")["produced"]["faults"] >= 300  # ~40 Mbit/s, unshaped
    assert "expired and removed: brief" in kshock("status", check=True).stdout
    assert "htb" not in _netns(c1, "tc", "qdisc", "show").stdout


def test_revert_all_after_a_crash_removes_chains_and_qdiscs_without_state(faults):
    kshock("apply", "--match", "api == Fetch", "--action", "drop", "--name", "crash1", "--netns", faults.broker,
           check=True)
    kshock("apply", "--action", "rate 2mbit", "--name", "crash2", "--netns", faults.clients["c2"], "--direction",
           "egress", check=True)
    for path in (run_dir() / "faults").glob(f"*-ksl-{faults.lab.name}-*/crash*.json"):
        path.unlink()  # the state a crash (or a wiped /run) would lose
    assert "crash1" not in kshock("status", check=True).stdout
    out = kshock("revert", "--all", "--netns", faults.broker, check=True).stdout
    assert "KSHOCK-crash1 (left over)" in out
    out = kshock("revert", "--all", "--netns", faults.clients["c2"], check=True).stdout
    assert "htb 4b53: on eth0 (left over)" in out and "KSHOCK-crash2 (left over)" in out
    # The fixture then checks that iptables-save and the qdiscs read exactly as before.


def test_kernel_counters_match_what_replay_predicted(faults, tmp_path):
    """Record the kafka-python scenario while every 3rd Produce packet of kp-orders is dropped
    at the broker (TCP retransmits it: the scenario is not held up); the kernel's per-rule
    counters must equal what `kshock replay` emulates from the capture, taken on the broker's
    interface, so it holds every packet INPUT saw, the dropped ones and their retransmissions."""
    rules = _rule_file(tmp_path, "blockkp", 'api == Produce and client_id == "kp-orders"', "drop", trigger="every 3")
    kshock("apply", str(rules), "--netns", faults.broker, check=True)
    pcap = tmp_path / "blocked.pcap"
    faults.lab.kshock("record", "kafka-python", str(pcap), "--duration", "3", timeout=120)
    status = json.loads(kshock("status", "--json", check=True).stdout)
    (fault,) = [f for f in status if f["name"] == "blockkp"]
    kernel = {(chain, i): rule["packets"] for chain, rules_ in fault["counters"].items()
              for i, rule in enumerate(rules_)}  # 0-based, as replay numbers them
    replayed = kshock("replay", str(pcap), "--rules", str(rules), "--json", check=True).stdout.splitlines()
    (rule,) = [json.loads(line) for line in replayed]
    # replay attributes the rules that act for this rule (drop, and drop on the marked
    # connection); the identity rule that sets the connection mark is shared, not listed.
    predicted = {(r["chain"], r["index"]): r["emulated"] for r in rule["kernel_rules"]}
    assert ("KSHOCK-blockkp", 0) not in predicted and set(predicted) <= set(kernel)
    assert {key: kernel[key] for key in predicted} == predicted
    assert sum(predicted.values()) > 0
    # The same replay in-process also holds the emulator's count for every rule (the identity
    # rule and the jump into the every-3rd sub-chain too): all of them equal the kernel's.
    from kshock.replay.coverage import load_rule_file, replay

    report = replay(pcap, load_rule_file(rules), name="blockkp")
    emulated: dict = {}
    for (_, chain, index), hits in report.emulated_counters.items():
        emulated[(chain, index)] = emulated.get((chain, index), 0) + hits
    assert {key: emulated.get(key, 0) for key in kernel} == kernel
    print(f"kernel counters {kernel}; replay predicted {predicted}")
    assert rule["kernel_packets"] > 0 and rule["false_packets"] == 0


def test_apply_into_a_namespace_by_pid(faults):
    pid = str(faults.broker_pid)
    out = kshock("apply", "--match", 'client_id == "client-a"', "--action", "reset", "--name", "bypid", "--pid", pid,
                 check=True).stdout
    assert f"the namespace of pid {pid}" in out
    assert "KSHOCK-bypid" in _netns(faults.broker, "iptables-save").stdout  # the broker's namespace
    assert faults.probe("c1", "client-a")["result"] == "ConnectionResetError"
    assert f"bypid  in the namespace of pid {pid}" in kshock("status", check=True).stdout
    kshock("revert", "bypid", "--pid", pid, check=True)
    assert faults.probe("c1", "client-a")["result"] == "response"


def test_ssh_guard_refuses_cutting_the_session():
    from kshock.rules.compile import compile_rules
    from kshock.rules.guard import cuts_ssh
    from kshock.rules.spec import Action, RuleSpec, Target

    session = "203.0.113.9 51022 198.51.100.1 22"

    def ruleset(ports, host=None, direction="ingress"):
        spec = RuleSpec("g", None, Action("drop"), Target(ports=ports, host=host, direction=direction))
        return compile_rules([spec], "g", expires_at=None)

    assert cuts_ssh(ruleset((22,)), session)
    assert cuts_ssh(ruleset((22, 9092)), session)
    assert not cuts_ssh(ruleset((9092,)), session)
    assert not cuts_ssh(ruleset((2222,)), "203.0.113.9 51022 198.51.100.1 22")
    assert cuts_ssh(ruleset((2222,)), "203.0.113.9 51022 198.51.100.1 2222")  # sshd on another port
    # Through the CLI on the host: refused without --force, and --dry-run changes nothing.
    before = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    env = {**os.environ, "SSH_CONNECTION": session}
    refused = kshock("apply", "--action", "drop", "--port", "22", "--dry-run", env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("kshock: rule 'adhoc' would cut this SSH session")
    forced = kshock("apply", "--action", "drop", "--port", "22", "--dry-run", "--force", env=env)
    assert forced.returncode == 0 and "--dport 22" in forced.stdout
    elsewhere = kshock("apply", "--action", "drop", "--port", "9092", "--dry-run", env=env)
    assert elsewhere.returncode == 0
    assert _normal(subprocess.run(["iptables-save"], capture_output=True, text=True).stdout) == _normal(before)


@pytest.mark.parametrize("case", ["nobody", "netem", "broken-file", "unknown-netns", "unknown-pid", "unknown-interface"])
def test_bad_input_is_one_line_and_leaves_nothing(faults, tmp_path, case):
    c1 = faults.clients["c1"]
    argv = {
        "nobody": ["apply", "--action", "drop", "--netns", c1],
        "netem": ["apply", "--action", "delay 100ms", "--direction", "egress", "--netns", c1],
        "broken-file": ["apply", str(tmp_path / "broken.yaml"), "--netns", c1],
        "unknown-netns": ["apply", "--action", "drop", "--netns", "no-such-ns"],
        "unknown-pid": ["apply", "--action", "drop", "--pid", "999999999"],
        "unknown-interface": ["apply", "--action", "rate 1mbit", "--direction", "egress", "--interface", "eth7",
                              "--netns", c1],
    }[case]
    (tmp_path / "broken.yaml").write_text("rules:\n  - name: x\n    match: api ==\n    action: drop\n")
    if case == "nobody":
        tmp_path.chmod(0o755)
        result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m",
                                 "kshock", *argv], capture_output=True, text=True, timeout=60, cwd="/")
    else:
        result = kshock(*argv)
    lines = result.stderr.strip().splitlines()
    if case == "netem" and result.returncode == 0:  # a kernel with sch_netem: the fault is really there
        assert "netem" in _netns(c1, "tc", "qdisc", "show").stdout
        return
    assert result.returncode == (1 if case == "netem" else 2), result.stderr
    assert "Traceback" not in result.stderr and lines and lines[0].startswith("kshock: ")
    if case != "broken-file":  # a rule file error shows the line and a caret below it
        assert len(lines) == 1, result.stderr
    if case == "netem":
        assert "has no netem queueing discipline (sch_netem)" in lines[0]
    print(f"{case}: {lines[0]}")
    # The fixture checks that nothing was left behind.


def test_a_rule_file_goes_in_whole_or_not_at_all(faults, tmp_path):
    broker = faults.broker
    rules = tmp_path / "three.yaml"
    body = ("rules:\n"
            "  - {name: f-drop, match: 'client_id == \"x-drop\"', action: drop, target: {port: 9092}, duration: 2m}\n"
            "  - {name: f-reset, match: 'client_id == \"x-reset\"', action: reset, target: {port: 9092}, duration: 2m}\n"
            "  - {name: f-loss, match: 'api == Fetch', action: loss 30%, target: {port: 9092}, duration: 2m}\n")
    rules.write_text(body)
    applied = kshock("apply", str(rules), "--netns", broker)
    assert applied.returncode == 0, applied.stderr
    assert [line.split()[1] for line in applied.stdout.splitlines() if line.startswith("fault ")] == \
        ["f-drop", "f-reset", "f-loss"]
    chains = set(re.findall(r"^:(KSHOCK-\S+)", _netns(broker, "iptables-save").stdout, re.M))
    assert {"KSHOCK-f-drop", "KSHOCK-f-reset", "KSHOCK-f-loss"} <= chains
    assert faults.probe("c1", "x-drop", timeout_s=1.0)["result"] == "timeout"  # each rule acts
    assert faults.probe("c2", "x-reset")["result"] in ("ConnectionResetError", "closed")
    assert faults.probe("c3", "someone-else")["result"] == "response"

    # f-drop is active, so a file that also brings f-drop is refused whole: its new rule stays out too
    clash = tmp_path / "clash.yaml"
    clash.write_text("rules:\n"
                     "  - {name: f-new, match: 'client_id == \"x-new\"', action: drop, target: {port: 9092}}\n"
                     "  - {name: f-drop, match: 'client_id == \"x-other\"', action: drop, target: {port: 9092}}\n")
    refused = kshock("apply", str(clash), "--netns", broker)
    assert refused.returncode == 2 and "a fault named 'f-drop' is already active" in refused.stderr
    assert "KSHOCK-f-new" not in _netns(broker, "iptables-save").stdout
    names = {entry["name"] for entry in json.loads(kshock("status", "--json", check=True).stdout)}
    assert "f-new" not in names and {"f-drop", "f-reset", "f-loss"} <= names

    # a rule that cannot run here (no sch_netem) takes the file's other rules down with it
    netem = tmp_path / "netem.yaml"
    netem.write_text("rules:\n"
                     "  - {name: g-drop, match: 'client_id == \"x-g\"', action: drop, target: {port: 9092}}\n"
                     "  - {name: g-delay, match: any, action: delay 50ms, target: {port: 9092, direction: egress}}\n")
    result = kshock("apply", str(netem), "--netns", faults.clients["c1"])
    if result.returncode == 0:  # a kernel with sch_netem: both are in
        assert "KSHOCK-g-drop" in _netns(faults.clients["c1"], "iptables-save").stdout
        return
    assert result.returncode == 1 and "sch_netem" in result.stderr
    assert "KSHOCK-g" not in _netns(faults.clients["c1"], "iptables-save").stdout
    assert not {"g-drop", "g-delay"} & {e["name"] for e in json.loads(kshock("status", "--json", check=True).stdout)}


def test_a_rule_file_as_one_set_is_one_fault(faults, tmp_path):
    broker = faults.broker
    rules = tmp_path / "trio.yaml"
    rules.write_text("rules:\n"
                     "  - {name: s-drop, match: 'client_id == \"s-drop\"', action: drop, target: {port: 9092}}\n"
                     "  - {name: s-reset, match: 'client_id == \"s-reset\"', action: reset, target: {port: 9092}}\n"
                     "  - {name: s-fetch, match: 'api == Fetch', action: drop, target: {port: 9092}, duration: 1m}\n")
    differ = kshock("apply", str(rules), "--set-name", "trio", "--netns", broker)
    assert differ.returncode == 2 and "durations 1m00s, 5m00s" in differ.stderr  # nothing applied
    assert "KSHOCK" not in _netns(broker, "iptables-save").stdout
    applied = kshock("apply", str(rules), "--set-name", "trio", "--duration", "2m", "--netns", broker)
    assert applied.returncode == 0, applied.stderr
    assert [line.split()[1] for line in applied.stdout.splitlines() if line.startswith("fault ")] == ["trio"]
    (entry,) = [e for e in json.loads(kshock("status", "--json", check=True).stdout) if e["name"] == "trio"]
    assert entry["summary"]["match"].startswith("3 rules: s-drop: client_id == \"s-drop\"; s-reset: ")
    assert faults.probe("c1", "s-drop", timeout_s=1.0)["result"] == "timeout"  # each rule of the set acts
    assert faults.probe("c2", "s-reset")["result"] in ("ConnectionResetError", "closed")
    assert faults.probe("c3", "someone-else")["result"] == "response"
    assert kshock("revert", "trio", "--netns", broker, check=True).stdout.strip() == "reverted: trio"
    assert "KSHOCK" not in _netns(broker, "iptables-save").stdout
