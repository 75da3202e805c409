"""`kshock demo`: every act proves its claim with measured numbers, in under two minutes, and
nothing of it is left afterwards. The narrator's plain-text mode and the non-blocking pause are
checked without root."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path


from conftest import kshock, lab_namespaces, unique_lab_name
from kshock.demo.narrator import Narrator, wants_colour


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


def test_demo_plays_every_act_and_leaves_nothing(lab_environment, tmp_path):
    name = unique_lab_name()
    result, summary, elapsed = _run_demo(name, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert elapsed < 120, f"the demo took {elapsed:.0f} s"
    assert "\x1b[" not in result.stdout  # no terminal, NO_COLOR: plain text
    assert "every act showed what it claims" in result.stdout
    acts = {act["act"]: act for act in summary["acts"]}
    assert sorted(acts) == [1, 2, 3, 4, 5, 6] and all(act["ok"] for act in acts.values())

    watch = acts[1]["measured"]
    assert watch["capture_drops"] == 0
    for client in ("shop-frontend", "billing", "ledger-1", "ledger-2"):
        assert watch["clients"][client]["requests"] > 0
    assert watch["clients"]["ledger-1"]["partitions"] != watch["clients"]["ledger-2"]["partitions"]

    block = acts[2]["measured"]
    assert block["rule"] == 'api == Produce and client_id == "shop-frontend"'
    assert block["from_frame"]["api"] == "Produce" and block["from_frame"]["client_id"] == "shop-frontend"
    assert block["victim_acks"] == 0 and block["victim_acks_before"] > 0
    assert block["other_acks"] > 0 and block["kernel_dropped_packets"] > 0
    assert block["resumed_after_revert_s"] is not None
    assert block["stuck_request_ms"] > 1000 * block["window_s"]  # the blocked request waited out the fault

    group = acts[3]["measured"]
    assert group["survivor_partitions_after"] == [0, 1]
    assert group["survivor_joingroup_requests"] >= 1 and group["kernel_reset_packets"] > 0
    assert group["survivor_records_after_takeover"] > 0 and group["victim_records_after_takeover"] == 0

    stall = acts[4]["measured"]
    assert stall["control"]["answered"] and stall["after"]["answered"]
    assert stall["stalled"]["connected"] and not stall["stalled"]["answered"] and stall["stalled"]["waited_s"] >= 2.9
    assert stall["kernel_dropped_packets"] > 0

    deadman = acts[5]["measured"]
    assert deadman["probes_unanswered"] > 0
    assert deadman["chains_loaded_at_first_answer"] is True
    assert -0.2 <= deadman["first_answer_after_expiry_s"] <= 2.5
    assert deadman["garbage_collected"] is True and deadman["chains_left_after_gc"] is False

    rules = {rule["rule"]: rule for rule in acts[6]["measured"]["rules"]}
    assert rules["demo-reset-member"]["intent_frames"] > 0
    assert rules["demo-reset-member"]["missed_frames"] == 0
    assert rules["demo-block-produce"]["intent_frames"] > 0
    if rules["demo-block-produce"]["missed_frames"]:
        assert rules["demo-block-produce-latch"]["missed_frames"] == 0

    truth = summary["ground_truth"]
    assert truth["shop-frontend"]["produced"] > 0 and truth["billing"]["produced"] > 0
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
