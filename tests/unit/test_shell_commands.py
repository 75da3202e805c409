"""The shell's commands over a real lab capture, checked against its ground-truth sidecar."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kshock.rules.rulefile import parse_rule_file
from kshock.rules.rulefile_writer import render_rule_file
from kshock.shell.commands import REGISTRY, Shell, ShellTarget
from kshock.shell.script import run_script
from kshock.shell.session import Session
from kshock.shell.sources import PcapSource

ROOT = Path(__file__).resolve().parents[2]
MIXED = ROOT / "captures" / "lab-mixed.pcap"
TRUTH = json.loads((ROOT / "captures" / "lab-mixed.json").read_text())
NOW = 1_900_000_000.0  # a fixed clock: the rules' --datestop is known


@pytest.fixture(scope="module")
def loaded() -> Session:
    session = Session((9092,))
    PcapSource(str(MIXED), session).run_to_end()
    return session


@pytest.fixture
def shell(loaded) -> Shell:
    loaded.rules.clear()
    loaded.set_filter(None, None)
    return Shell(loaded, ShellTarget(live=False), clock=lambda: NOW)


def table(text: str, title: str) -> dict[str, list[str]]:
    """The rows of one stats table: first cell -> the other cells."""
    block = text.split(f"\n{title} ", 1)[1].split("\n\n", 1)[0]
    return {cells[0]: cells[1:] for cells in (line.split() for line in block.splitlines()[1:])}


def test_stats_per_client_id_match_the_ground_truth(shell):
    result = shell.execute("stats")
    assert result.ok
    clients = table(result.text, "client-id")
    assert {c: int(row[0]) for c, row in clients.items()} == {c: info["requests"] for c, info in TRUTH["clients"].items()}
    produced = {c: sum(topics.values()) for c, topics in TRUTH["records_produced"].items()}
    assert {c: int(clients[c][2]) for c in produced} == produced


def test_the_session_remembers_the_brokers_requests_went_to(loaded):
    sidecar = json.loads(MIXED.with_suffix(".json").read_text())
    host, port = sidecar["bootstrap"].rsplit(":", 1)  # the lab broker every client talked to
    assert loaded.broker_endpoints() == [(host, int(port))]


def test_stats_per_api_and_topic(shell):
    text = shell.execute("stats").text
    apis = table(text, "API")
    assert {api: int(row[0]) for api, row in apis.items()} == TRUTH["requests_per_api"]
    assert text.startswith(f"1598 frames in 9.3 s: {TRUTH['requests_total']} requests, 799 responses, 38 undecodable")
    topics = table(text, "topic")
    assert set(topics) == set(TRUTH["topics"])
    for client, per_topic in TRUTH["records_produced"].items():
        for topic, records in per_topic.items():
            assert int(topics[topic][2]) == records
    # latency: every paired response has one; p50 <= p99
    p50, p99 = float(apis["Produce"][2]), float(apis["Produce"][3])
    assert 0 < p50 <= p99


def test_show_lists_matching_frames_with_their_numbers(shell):
    result = shell.execute('show client_id == "kp-orders" and kind == request')
    assert result.ok
    assert result.text.endswith("(168 frames matching client_id == \"kp-orders\" and kind == request; the last 20 shown)")
    rows = result.text.splitlines()[1:-1]
    assert len(rows) == 20 and all("kp-orders" in row for row in rows)
    number = int(rows[-1].split()[0])
    detail = shell.execute(f"show {number}").text
    assert re.search(r"client_id\s+kp-orders", detail) and re.search(r"kind\s+request", detail)


def test_filter_applies_to_show_and_can_be_turned_off(shell):
    assert shell.execute("filter api == Metadata").text == "filter: api == Metadata"
    assert shell.execute("show").text.endswith("(80 frames matching api == Metadata; the last 20 shown)")
    assert shell.execute("filter off").ok
    assert shell.execute("show").text.endswith("(1598 frames captured; the last 20 shown)")


def test_pick_prefills_a_condition_from_a_frame(shell):
    rows = shell.execute('show api == Produce and client_id == "rdk-gzip" and kind == request').text.splitlines()
    number = int(rows[1].split()[0])
    result = shell.execute(f"pick {number}")
    assert result.prefill == 'when api == Produce and client_id == "rdk-gzip" and topic == "metrics-gzip" do '
    assert shell.execute("pick 999999").ok is False


def test_when_compiles_and_shows_kernel_rules_without_applying(shell):
    result = shell.execute('when api == Produce and client_id == "rdk-gzip" do drop for 30s')
    assert result.ok, result.text
    assert result.text.splitlines()[0] == ('rule r1: drop api == Produce and client_id == "rdk-gzip" for 30s '
                                           '(ingress, port 9092); 3 kernel rules:')
    assert "-A INPUT -p tcp -m tcp --dport 9092" in result.text and "-j DROP" in result.text
    assert "--datestop 2030-03-17T17:47:10" in result.text  # NOW + 30 s, UTC
    assert [r.state for r in shell.session.rules] == ["pending"]
    assert shell.execute("rules").text.startswith("r1         pending")


def test_when_takes_a_trigger_latch_and_approximate_like_a_rule_file(shell, tmp_path):
    result = shell.execute('when api == Produce and client_id == "rdk-gzip" do drop trigger every 3 latch as third')
    assert result.ok, result.text
    assert result.text.splitlines()[0].startswith('rule third: drop api == Produce and client_id == "rdk-gzip" for 5m00s '
                                                  '(ingress, port 9092, trigger every 3, latch);')
    spec = shell.session.rule("third").spec
    assert (spec.trigger.mode, spec.trigger.every, spec.latch, spec.duration_s) == ("nth", 3, True, 300)
    assert "-m statistic --mode nth --every 3" in result.text and "CONNMARK" in result.text
    # the order of the clauses is free, and save/load keeps them
    assert shell.execute('when api == Fetch do reset latch for 1m trigger probability 30% as coin').ok
    assert shell.execute('when api == Fetch and topic matches "or.*" do drop approximate as wide').ok
    path = tmp_path / "rules.yaml"
    assert shell.execute(f"save {path}").ok
    text = path.read_text()
    assert "trigger: every 3" in text and "trigger: probability 0.3" in text and "approximate: true" in text
    assert [(s.name, s.trigger, s.latch, s.approximate) for s in parse_rule_file(text, str(path))] == \
        [(r.spec.name, r.spec.trigger, r.spec.latch, r.spec.approximate) for r in shell.session.rules]


@pytest.mark.parametrize("line,message", [
    ("when api == Fetch do drop trigger sometimes", "trigger: 'sometimes' is not a trigger"),
    ("when api == Fetch do drop latch trigger once-per-connection", "latch: cannot go with trigger: once-per-connection"),
    ("when api == Fetch do drop for 1m for 2m", "`for` is given twice"),
    ("when api == Fetch do drop trigger", "`trigger` needs a trigger after it"),
    ("when api == Fetch do drop as", "`as` needs one word after it"),
    ("when api == Fetch do latch", "when needs an action after do"),
])
def test_when_clause_errors_are_one_message(shell, line, message):
    result = shell.execute(line)
    assert not result.ok and result.text.startswith(message), result.text
    assert shell.session.rules == []


def test_new_rule_names_skip_faults_active_in_the_target_namespace(tmp_path, monkeypatch):
    """Two shells on one namespace: the second's r1 would clash with the first's active fault."""
    import time

    from kshock.apply import faults
    from kshock.apply.scope import Scope
    from kshock.host.run_dir import RUN_DIR_ENV

    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    scope = Scope(name="ksl-other-broker")
    for name in ("r1", "r2"):
        faults.save(faults.FaultRecord(name, scope, {"filter": [f"KSHOCK-{name}"]}, time.time(), time.time() + 60))
    live = Shell(Session((9092,)), ShellTarget(scope_name=scope.name, live=True))
    assert live.new_rule_name() == "r3"
    offline = Shell(Session((9092,)), ShellTarget(live=False))  # a capture file: no kernel to clash with
    assert offline.new_rule_name() == "r1"


def test_replay_gives_the_coverage_of_the_rules_on_what_was_captured(shell):
    assert shell.execute('when client_id == "rdk-gzip" do drop as gzip').ok
    text = shell.execute("replay").text
    assert "2636 packets" in text
    intent = int(re.search(r"intent frames\s+(\d+)", text).group(1))
    hit = int(re.search(r"hit frames\s+(\d+)", text).group(1))
    assert intent == TRUTH["clients"]["rdk-gzip"]["requests"] == hit


def test_save_and_load_round_trip(shell, tmp_path):
    for line in ('when api == Produce and topic in {"orders", "payments"} do loss 30% for 2m as lossy',
                 "when api == Fetch do stall for 90s",
                 'when client_id == "kp-audit" do reset'):
        assert shell.execute(line).ok
    path = tmp_path / "rules.yaml"
    assert shell.execute(f"save {path}").text == f"saved 3 rules to {path}"
    specs = parse_rule_file(path.read_text(), str(path))
    assert [(s.name, str(s.condition), str(s.action), s.duration_s) for s in specs] == [
        ("lossy", 'api == Produce and topic in {"orders", "payments"}', "loss 30%", 120.0),
        ("r1", "api == Fetch", "stall", 90.0),
        ("r2", 'client_id == "kp-audit"', "reset", 300.0)]
    assert render_rule_file(specs) == path.read_text()
    other = Shell(shell.session, ShellTarget(live=False), clock=lambda: NOW)
    shell.session.rules.clear()
    assert other.execute(f"load {path}").ok
    assert [r.spec.name for r in shell.session.rules] == ["lossy", "r1", "r2"]
    assert other.execute(f"load {path}").text.startswith("the session already has rules named lossy, r1, r2")


def test_export_is_iptables_restore_text(shell):
    assert shell.execute("export").ok is False
    shell.execute('when client_id == "kp-orders" do drop for 1m')
    text = shell.execute("export").text
    assert text.splitlines()[:3] == ['# kshock rule r1: drop client_id == "kp-orders"', "*filter", ":KSHOCK-r1 - [0:0]"]
    assert text.endswith("COMMIT")


def test_errors_are_one_message_and_conditions_get_a_caret(shell):
    result = shell.execute("show api == Prodcue")
    assert not result.ok
    assert result.text == "column 8: unknown API 'Prodcue' — did you mean Produce?\n  api == Prodcue\n         ^^^^^^^"
    assert shell.execute("when api == Fetch do dorp").text.startswith("action: unknown action 'dorp' — did you mean drop?")
    assert shell.execute("when api == Fetch").text.startswith("when needs `do ACTION`")
    assert shell.execute("stast").text == "unknown command 'stast' — did you mean stats?"
    assert shell.execute("load /nonexistent/rules.yaml").text.startswith("cannot read /nonexistent/rules.yaml")
    assert shell.execute("pick x").ok is False
    delay = shell.execute("when api == Fetch do delay 200ms for 1m")  # the compiler says why not
    assert not delay.ok and "cannot be shaped" in delay.text and "\n" not in delay.text
    applied = shell.execute("apply")
    assert not applied.ok and applied.text.startswith("there is no kernel to apply rules to")
    assert shell.session.rules == []


def test_help_lists_every_command(shell):
    text = shell.execute("help").text
    for name, entry in REGISTRY.items():
        assert entry.usage in text
    assert shell.execute("help when").text.startswith("when EXPR do ACTION [for DURATION] [as NAME]")
    assert "client_id" in shell.execute("help fields").text


def test_run_script_echoes_a_transcript_and_reports_failures(loaded):
    import io

    shell = Shell(loaded, ShellTarget(live=False), clock=lambda: NOW)
    loaded.rules.clear()
    out = io.StringIO()

    class Done:
        def run_to_end(self): pass
        def stop(self): pass

    status = run_script(shell, Done(), ["# a comment", "", "filter kind == response", "bogus", "quit", "stats"], out)
    assert status == 1
    assert out.getvalue() == ("kshock> filter kind == response\nfilter: kind == response\n"
                              "kshock> bogus\nkshock: unknown command 'bogus' — type help for the commands\n"
                              "kshock> quit\n")


def test_the_script_option_runs_without_a_terminal(tmp_path):
    script = tmp_path / "demo.kshock"
    script.write_text('stats\nwhen client_id == "pay-producer" do drop for 1m\nreplay\n')
    result = subprocess.run([sys.executable, "-m", "kshock.shell", "--pcap", str(MIXED), "--script", str(script)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "kshock> stats\n1598 frames" in result.stdout
    assert re.search(r"pay-producer\s+162\s", result.stdout)
    assert re.search(r"hit frames\s+162\s", result.stdout)
    no_tty = subprocess.run([sys.executable, "-m", "kshock.shell", "--pcap", str(MIXED)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert no_tty.returncode == 2 and "needs a terminal" in no_tty.stderr


def test_python_m_kshock_shell_is_kshock_shell():
    """One entry point: `python -m kshock.shell ARGS` runs kshock.cli.main with `shell ARGS`."""
    outputs = [subprocess.run([sys.executable, "-m", *entry, "--help"], capture_output=True, text=True, timeout=60,
                              cwd=ROOT).stdout for entry in (["kshock.shell"], ["kshock", "shell"])]
    assert outputs[0] == outputs[1] and outputs[0].startswith("usage: kshock shell")
