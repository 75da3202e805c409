"""`kshock demo`: every act's claim holds by the clients' own records — the reports the workloads
wrote and the client library's own log each kept, read here with this file's own parser — within
about a minute, and nothing of it is left afterwards. The narrator's plain-text mode and the
non-blocking pause are checked without root."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path


from conftest import kshock, lab_namespaces, unique_lab_name
from kshock.demo.narrator import Narrator, wants_colour

# librdkafka's default log line: `%7|1795493205.577|RECV|billing#producer-1| [thrd:...]: <broker>: <message>`
_LOG_LINE = re.compile(r"^%(\d)\|([\d.]+)\|([A-Z_]+)\|[^|]*\| \[thrd:[^\]]*\]: \S+: (.*)$")
_RTT = re.compile(r"rtt ([\d.]+)ms\)$")
GROUP_APIS = ("JoinGroup", "SyncGroup", "Heartbeat", "Fetch", "OffsetCommit", "OffsetFetch", "ListOffsets")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_demo(name: str, tmp_path: Path, *args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess, dict, float]:
    out = tmp_path / "summary.json"
    env = {**os.environ, "NO_COLOR": "1"}
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "kshock.demo", "--lab", name, "--json", str(out), *args],
                                capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    finally:
        kshock("lab", "down", "--name", name)  # only does something when the demo failed to clean up
    return result, json.loads(out.read_text()) if out.exists() else {}, time.monotonic() - started


def _assert_nothing_left(name: str, summary: dict) -> None:
    assert summary["left_behind"] == []
    assert lab_namespaces(name) == []
    assert not Path(summary["work_dir"]).exists()
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if summary["work_dir"].encode() in cmdline or f"ksl-{name}-".encode() in cmdline:
                mine.append(cmdline.replace(b"\0", b" ")[:120])
    assert mine == [], mine
    faults_dir = Path(os.environ.get("KSHOCK_RUN_DIR", "/run/kshock")) / "faults"
    assert not [p for p in faults_dir.glob(f"netns-ksl-{name}-*/*.json")]


class ClientRecords:
    """One client's own records, as the demo kept them: its report and its library's log."""

    def __init__(self, folder: Path, client: str) -> None:
        self.report = json.loads((folder / f"{client}.json").read_text())
        self.lines = []  # (ts, level, facility, message)
        for line in (folder / f"{client}.client.log").read_text(errors="replace").splitlines():
            if match := _LOG_LINE.match(line):
                self.lines.append((float(match[2]), match[1], match[3], match[4]))

    def received(self, api: str, start: float = 0.0, end: float = float("inf")) -> list[float]:
        """Round trips (ms) of the `api` responses the client logged receiving in [start, end]."""
        return [float(_RTT.search(m)[1]) for ts, _, _, m in self.lines
                if start <= ts <= end and m.startswith(f"Received {api}Response ")]

    def sent(self, apis: tuple[str, ...], end: float) -> int:
        return sum(1 for ts, _, _, m in self.lines if ts <= end and any(m.startswith(f"Sent {a}Request ") for a in apis))

    def resets(self, start: float, end: float) -> int:
        return sum(1 for ts, level, fac, m in self.lines if start <= ts <= end and level == "6" and fac == "FAIL"
                   and m.startswith("Disconnected: connection reset by peer"))

    def errors(self) -> list[str]:
        """The report's errors but those of being stopped (and a producer's queue purged then)."""
        return [e for e in self.report["errors"] if e != "interrupted" and "_PURGE_" not in e]


def test_demo_plays_every_act_and_leaves_nothing(lab_environment, tmp_path):
    name = unique_lab_name()
    result, summary, elapsed = _run_demo(name, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert elapsed < 90, f"the demo took {elapsed:.0f} s"
    assert "\x1b[" not in result.stdout  # no terminal, NO_COLOR: plain text
    assert "every act showed what it claims" in result.stdout
    acts = {act["act"]: act for act in summary["acts"]}
    assert sorted(acts) == [1, 2, 3, 4, 5, 6] and all(act["ok"] for act in acts.values())
    folder = Path(summary["clients_dir"])
    clients = {c: ClientRecords(folder, c) for c in ("shop-frontend", "billing", "ledger-1", "ledger-2")}
    shop, billing = clients["shop-frontend"], clients["billing"]

    # Every client's report: it did its job, and reports no error but being stopped.
    assert shop.report["produced"]["orders"] > 0 and billing.report["produced"]["payments"] > 0
    assert clients["ledger-1"].report["consumed"]["payments"] > 0
    assert clients["ledger-2"].report["consumed"]["payments"] > 0
    assert {c: client.errors() for c, client in clients.items()} == {c: [] for c in clients}

    # 1: both producers were acknowledged in the watched seconds, by their own logs; and the tap's
    # view of it is there too, for every client.
    watch = acts[1]["measured"]
    start, end = watch["window"]
    assert shop.received("Produce", start, end) and billing.received("Produce", start, end)
    assert watch["requests_not_decoded"] == [] and watch["requests_logged"] > 0
    assert watch["capture_drops"] == 0
    for client in clients:
        assert watch["clients"][client]["requests"] > 0
    assert watch["clients"]["ledger-1"]["partitions"] != watch["clients"]["ledger-2"]["partitions"]

    # 2: no ack for shop-frontend while its Produce requests were dropped, billing's went on; the
    # stuck request's round trip, as shop-frontend measured it, spans the fault (and its report, above,
    # lists no failed record but those purged when it was stopped).
    block = acts[2]["measured"]
    assert block["rule"] == 'api == Produce and client_id == "shop-frontend"'
    assert block["from_frame"]["api"] == "Produce" and block["from_frame"]["client_id"] == "shop-frontend"
    start, end = block["window"]
    assert shop.received("Produce", start, end) == []
    assert len(shop.received("Produce", start - 5.5, start - 0.5)) > 0
    assert len(billing.received("Produce", start, end)) == block["other_acks"] > 0
    assert max(shop.received("Produce", end)) > 1000 * block["window_s"]
    assert block["kernel_dropped_packets"] > 0

    # 3: the victim's connections were reset and nothing answered it; the survivor rejoined.
    group = acts[3]["measured"]
    victim, survivor = clients[group["victim"]], clients[group["survivor"]]
    start, end = group["window"]
    assert victim.resets(start, end) > 0
    assert all(victim.received(api, start + 0.5, end) == [] for api in GROUP_APIS)
    assert survivor.received("JoinGroup", start, end) and survivor.received("SyncGroup", start, end)
    assert survivor.received("Fetch", group["takeover_at"], end) and group["kernel_reset_packets"] > 0
    assert group["survivor_partitions_after"] == [0, 1]  # which partitions: only the wire tells

    # 4: the probe's own answers; the demo's producers went on meanwhile.
    stall = acts[4]["measured"]
    assert stall["control"]["answered"] and stall["after"]["answered"]
    assert stall["stalled"]["connected"] and not stall["stalled"]["answered"] and stall["stalled"]["waited_s"] >= 2.9
    assert stall["kernel_dropped_packets"] > 0
    start, end = stall["window"]
    assert shop.received("Produce", start, end) and billing.received("Produce", start, end)

    deadman = acts[5]["measured"]
    assert deadman["probes_unanswered"] > 0
    assert deadman["chains_loaded_at_first_answer"] is True
    assert -0.2 <= deadman["first_answer_after_expiry_s"] <= 2.5
    assert deadman["garbage_collected"] is True and deadman["chains_left_after_gc"] is False

    # 6: each rule's intent is exactly the requests its client logged as sent before the snapshot.
    replayed = acts[6]["measured"]
    rules = {rule["rule"]: rule for rule in replayed["rules"]}
    until = replayed["captured_until"]
    produce = rules["demo-block-produce"]["intent_frames"]
    assert shop.sent(("Produce",), until - 0.5) <= produce <= shop.sent(("Produce",), until + 0.5)
    reset = rules["demo-reset-member"]["intent_frames"]
    assert victim.sent(GROUP_APIS, until - 0.5) <= reset <= victim.sent(GROUP_APIS, until + 0.5)
    assert rules["demo-reset-member"]["missed_frames"] == 0
    if rules["demo-block-produce"]["missed_frames"]:
        assert rules["demo-block-produce-latch"]["missed_frames"] == 0
    _assert_nothing_left(name, summary)


def test_one_act_alone_and_interactive_without_a_terminal(lab_environment, tmp_path):
    name = unique_lab_name()
    result, summary, elapsed = _run_demo(name, tmp_path, "--act", "4", "--interactive", timeout=90)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Enter for act 4 (SYN-only stall): not a terminal, going on" in result.stdout
    assert [act["act"] for act in summary["acts"]] == [4] and summary["ok"]
    _assert_nothing_left(name, summary)


def test_demo_refuses_an_existing_lab(lab):
    result = subprocess.run(
        [sys.executable, "-m", "kshock.demo", "--lab", lab.name], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert f"kshock: lab {lab.name} already exists — remove it (kshock lab down --name {lab.name})" in result.stderr
    assert lab_namespaces(lab.name)  # somebody else's lab is left alone


# -- the narrator, without root --------------------------------------------------------------

def test_narrator_is_plain_without_a_terminal_or_with_no_color():
    assert not wants_colour(io.StringIO(), {})
    assert wants_colour(_Tty(), {"TERM": "xterm"})
    assert not wants_colour(_Tty(), {"NO_COLOR": "", "TERM": "xterm"})
    assert not wants_colour(_Tty(), {"TERM": "dumb"})
    out = io.StringIO()
    say = Narrator(out)
    say.act(2, "block", "claim")
    say.check(True, "fine")
    say.check(False, "broken")
    waited = say.wait(0.2, "waiting")
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert "Act 2 — block" in text and "ok   fine" in text and "FAIL broken" in text
    assert "… waiting (0.2 s)" in text and waited >= 0.2


def test_narrator_progress_redraws_on_a_terminal():
    out = _Tty()
    say = Narrator(out, colour=True)
    say.wait(0.3, "fault active", status=lambda: "acks 3")
    assert "\r\x1b[2K" in out.getvalue() and "fault active" in out.getvalue() and "acks 3" in out.getvalue()
    stopped = Narrator(io.StringIO()).wait(5.0, "until", until=lambda: True)
    assert stopped < 1.0


def test_pause_never_blocks_without_a_terminal():
    out = io.StringIO()
    started = time.monotonic()
    Narrator(out).pause("Enter for act 2", stdin=io.StringIO(""))
    assert time.monotonic() - started < 1.0
    assert "(Enter for act 2: not a terminal, going on)" in out.getvalue()
