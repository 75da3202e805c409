"""Faults that must not cross or get lost, an SSH guard without holes, and state files that
cannot crash kshock (issue 10) — with the real CLI, real iptables and real packets.

Every test works in throwaway namespaces (unique names, deleted even when it fails) and its own
KSHOCK_RUN_DIR, so it touches nothing of a lab's, the host's or a concurrent run's; the host is
touched by nothing but `--dry-run`. What the kernel holds is read back with iptables-save.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import kshock


def _netns(namespace: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", namespace, *argv], capture_output=True, text=True, timeout=timeout)


_spaces = itertools.count(1)


def _chains(namespace: str) -> list[str]:
    return re.findall(r"^:(KSHOCK-\S+)", _netns(namespace, "iptables-save").stdout, re.M)


@contextlib.contextmanager
def _namespaces(count: int):
    """`count` new, empty network namespaces (lo up); always deleted."""
    from conftest import lab_skip_reason

    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    names = [f"kf{os.getpid() % 100000}-{next(_spaces)}" for _ in range(count)]
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            _netns(name, "ip", "link", "set", "lo", "up")
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def run_env(tmp_path):
    """The environment of a kshock run whose fault state lives in this test's own run dir."""
    return {**os.environ, "KSHOCK_RUN_DIR": str(tmp_path / "run")}


def _one_line_error(result: subprocess.CompletedProcess, status: int = 2) -> str:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kshock: "), result.stderr
    return lines[0]


# A broker stand-in: accepts `want` connections one after the other and prints, as JSON, the
# bytes each delivered before it closed or went quiet for `quiet_s`.
SINK = textwrap.dedent("""
    import json, socket, sys
    host, want, quiet_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 9092))
    srv.listen(8)
    print("ready", flush=True)
    srv.settimeout(20)
    got = []
    for _ in range(want):
        conn, _ = srv.accept()
        conn.settimeout(quiet_s)
        data = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        got.append(data.hex())
    print(json.dumps(got), flush=True)
""")

# A Kafka client on one connection: the frames (hex) given, one TCP segment each.
CLIENT = textwrap.dedent("""
    import socket, sys, time
    sock = socket.create_connection((sys.argv[1], 9092), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for frame in sys.argv[2:]:
        sock.sendall(bytes.fromhex(frame))
        time.sleep(0.15)
    sock.close()
""")


def _frame(api_key: int, version: int, correlation_id: int, client_id: bytes | None, body: bytes = b"") -> bytes:
    import struct

    cid = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    message = struct.pack(">hhi", api_key, version, correlation_id) + cid + body
    return struct.pack(">i", len(message)) + message


_PRODUCE_BODY = bytes.fromhex("ffff" "0001" "000003e8" "00000000")  # no txn id, acks 1, 1 s, no topics


def _connmark_masks(env: dict) -> dict[str, int]:
    status = json.loads(kshock("status", "--json", env=env, check=True).stdout)
    return {entry["name"]: entry["connmark_mask"] for entry in status}


@pytest.mark.parametrize("how", ["two commands", "one file", "the shell"])
def test_faults_on_client_ids_never_share_a_mark_bit(tmp_path, run_env, monkeypatch, how):
    """fh and crosstalk-34 hash to the same connmark bit. Alice identifies herself on her
    connection (crosstalk-34's identity rule marks it), then sends a Produce with a null client
    id (a KIP-1313 client): Bob's fault fh must not drop it. Bob's own Produce is dropped."""
    bob = 'api == Produce and client_id == "bob"'
    alice = 'api == Fetch and client_id == "alice"'
    with contextlib.ExitStack() as stack:
        from kernel_replay import namespace_pair

        sender, receiver = stack.enter_context(namespace_pair("kmark", "10.213.0.1", "10.213.0.2"))
        if how == "two commands":
            for name, match in (("fh", bob), ("crosstalk-34", alice)):
                kshock("apply", "--match", match, "--action", "drop", "--name", name, "--netns", receiver,
                       "--duration", "2m", env=run_env, check=True)
        elif how == "one file":
            rules = tmp_path / "two.yaml"
            rules.write_text("rules:\n"
                             f"  - {{name: fh, match: '{bob}', action: drop, target: {{port: 9092}}, duration: 2m}}\n"
                             f"  - {{name: crosstalk-34, match: '{alice}', action: drop, target: {{port: 9092}},"
                             " duration: 2m}\n")
            kshock("apply", str(rules), "--netns", receiver, env=run_env, check=True)
        else:
            from kshock.host.run_dir import RUN_DIR_ENV
            from kshock.shell.commands import Shell, ShellTarget
            from kshock.shell.session import Session

            monkeypatch.setenv(RUN_DIR_ENV, run_env["KSHOCK_RUN_DIR"])
            shell = Shell(Session((9092,)), ShellTarget(scope_name=receiver, live=True))
            for name, match in (("fh", bob), ("crosstalk-34", alice)):
                assert shell.execute(f"when {match} do drop for 2m as {name}").ok
            applied = shell.execute("apply")
            assert applied.ok, applied.text
        try:
            sink = subprocess.Popen(["ip", "netns", "exec", receiver, sys.executable, "-c", SINK, "10.213.0.2", "2",
                                     "1.5"], stdout=subprocess.PIPE, text=True)
            assert sink.stdout.readline().strip() == "ready"
            alice_frames = [_frame(18, 0, 1, b"alice"), _frame(0, 3, 2, None, _PRODUCE_BODY)]
            bob_frames = [_frame(18, 0, 1, b"bob"), _frame(0, 3, 2, None, _PRODUCE_BODY)]
            for frames in (alice_frames, bob_frames):
                _netns(sender, sys.executable, "-c", CLIENT, "10.213.0.2", *(f.hex() for f in frames), timeout=30)
            got = [bytes.fromhex(h) for h in json.loads(sink.communicate(timeout=60)[0])]
            assert got[0] == b"".join(alice_frames), "Bob's fault dropped Alice's Produce"
            assert got[1] == bob_frames[0]  # Bob's own null-client-id Produce is his fault's to drop
            masks = _connmark_masks(run_env)  # and the state records each fault's bits
            assert masks["fh"] and masks["crosstalk-34"] and not masks["fh"] & masks["crosstalk-34"], masks
        finally:
            kshock("revert", "--all", "--netns", receiver, env=run_env)


def test_mark_bits_run_out_with_a_clear_refusal_and_foreign_marks_are_left_alone(tmp_path, run_env):
    with _namespaces(1) as (space,):
        # another program's rule owns conntrack mark bit 0x1000 (fh's by its name's hash)
        _netns(space, "iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "CONNMARK", "--set-xmark",
               "0x1000/0x1000")
        kshock("apply", "--match", 'client_id == "x"', "--action", "drop", "--name", "fh", "--netns", space,
               env=run_env, check=True)
        saved = _netns(space, "iptables-save").stdout
        bits = {int(b, 16) for b in re.findall(r"^-A KSHOCK-fh .*--set-xmark (0x[0-9a-f]+)/", saved, re.M)}
        assert bits and 0x1000 not in bits, saved  # what the kernel holds
        rules = tmp_path / "many.yaml"
        rules.write_text("rules:\n" + "".join(f"  - {{name: c{i}, match: 'client_id == \"c{i}\"', action: drop, "
                                              "target: {port: 9092}}\n" for i in range(14)))
        kshock("apply", str(rules), "--netns", space, env=run_env, check=True)  # 15 bits are free: 14 fit
        masks = _connmark_masks(run_env)
        assert len(masks) == 15 and bin(sum(masks.values())).count("1") == 15 and not sum(masks.values()) & 0x1000
        last = kshock("apply", "--match", 'client_id == "late"', "--action", "drop", "--name", "late", "--netns",
                      space, env=run_env)
        line = _one_line_error(last)
        assert "connection-mark bit" in line and "revert" in line, line
        assert "KSHOCK-late" not in _chains(space)
        kshock("revert", "--all", "--netns", space, env=run_env, check=True)
        assert _chains(space) == []


def _wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def _ns_inode(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def test_a_pid_fault_outlives_its_process_and_revert_by_name_removes_it(run_env):
    with _namespaces(1) as (space,):
        sleeper = subprocess.Popen(["ip", "netns", "exec", space, "sleep", "120"])
        try:
            named = _ns_inode(f"/run/netns/{space}")
            _wait_for(lambda: _ns_inode(f"/proc/{sleeper.pid}/ns/net") == named)
            kshock("apply", "--action", "drop", "--port", "9092", "--name", "bypid", "--pid", str(sleeper.pid),
                   "--duration", "2m", env=run_env, check=True)
            assert _chains(space) == ["KSHOCK-bypid"]
        finally:
            sleeper.kill()
            sleeper.wait()
        # the process is gone; its namespace lives on (named), and so do the rules in it
        shown = kshock("status", env=run_env, check=True).stdout
        assert "bypid" in shown and f"held by /run/netns/{space}" in shown, shown
        reverted = kshock("revert", "bypid", env=run_env, check=True)
        assert reverted.stdout.startswith("reverted: bypid"), reverted.stdout
        assert _chains(space) == []  # what the kernel holds, not what kshock says
        assert "no active faults" in kshock("status", env=run_env, check=True).stdout


def test_a_pid_fault_whose_namespace_died_with_its_process_is_reported_gone(run_env):
    from conftest import lab_skip_reason

    if lab_skip_reason():
        pytest.skip(lab_skip_reason())
    ours = _ns_inode("/proc/self/ns/net")
    loner = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    try:
        _wait_for(lambda: _ns_inode(f"/proc/{loner.pid}/ns/net") not in (None, ours))
        kshock("apply", "--action", "drop", "--port", "9092", "--name", "loner", "--pid", str(loner.pid),
               env=run_env, check=True)
    finally:
        loner.kill()
        loner.wait()
    reverted = kshock("revert", "loner", "--pid", str(loner.pid), env=run_env, check=True).stdout
    assert "loner: the namespace of pid" in reverted and "is gone" in reverted, reverted
    assert "no active faults" in kshock("status", env=run_env, check=True).stdout


def test_revert_of_a_name_active_in_two_namespaces_asks_which(run_env):
    with _namespaces(2) as (one, two):
        for space in (one, two):
            kshock("apply", "--action", "drop", "--port", "9092", "--name", "same", "--netns", space, env=run_env,
                   check=True)
        asked = kshock("revert", "same", env=run_env)
        line = _one_line_error(asked)
        assert f"namespace {one}" in line and f"namespace {two}" in line and "--netns" in line, line
        assert _chains(one) == _chains(two) == ["KSHOCK-same"]  # nothing was reverted
        kshock("revert", "same", "--netns", one, env=run_env, check=True)
        assert _chains(one) == [] and _chains(two) == ["KSHOCK-same"]
        kshock("revert", "same", env=run_env, check=True)  # one place left: no question
        assert _chains(two) == []


def test_the_printed_revert_hint_is_a_command_that_works(tmp_path, run_env):
    rules = tmp_path / "pair.yaml"
    rules.write_text("rules:\n"
                     "  - {name: same, match: 'api == Fetch', action: drop, target: {port: 9092}}\n"
                     "  - {name: other, match: 'api == Produce', action: drop, target: {port: 9092}}\n")
    with _namespaces(1) as (space,):
        out = kshock("apply", str(rules), "--netns", space, env=run_env, check=True).stdout
        (hint,) = [line.strip() for line in out.splitlines() if line.strip().startswith("revert: ")]
        argv = shlex.split(hint.removeprefix("revert: "))
        assert argv[:2] == ["kshock", "revert"]
        assert sorted(_chains(space)) == ["KSHOCK-other", "KSHOCK-same"]
        done = kshock(*argv[1:], env=run_env, check=True)
        assert done.stdout.strip() == "reverted: same, other"
        assert _chains(space) == []


def test_hold_reverts_on_sighup(run_env):
    with _namespaces(1) as (space,):
        held = subprocess.Popen([sys.executable, "-m", "kshock", "apply", "--action", "drop", "--port", "9092",
                                 "--name", "held", "--netns", space, "--duration", "2m", "--hold"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env,
                                start_new_session=True)
        try:
            _wait_for(lambda: _chains(space) == ["KSHOCK-held"], 30)
            held.send_signal(signal.SIGHUP)  # what a closed terminal sends
            out, err = held.communicate(timeout=30)
        finally:
            if held.poll() is None:
                held.kill()
                held.wait()
        assert _chains(space) == [], (out, err)
        assert "reverted: held" in out and "Traceback" not in err
        assert "no active faults" in kshock("status", env=run_env, check=True).stdout


def test_the_ssh_guard_holds_wherever_the_target_is_the_hosts_namespace(run_env):
    env = {**run_env, "SSH_CONNECTION": "203.0.113.9 51022 198.51.100.1 22"}
    cut = ["apply", "--action", "drop", "--port", "22", "--dry-run"]
    for where in ([["--pid", "1"]] if os.path.exists("/proc/1/ns/net") else []) + [["--pid", str(os.getpid())]]:
        line = _one_line_error(kshock(*cut, *where, env=env))
        assert "would cut this SSH session" in line, (where, line)
    from conftest import lab_skip_reason

    if lab_skip_reason():
        return
    alias = f"khost{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "attach", alias, str(os.getpid())], check=True)  # a name for the host's namespace
    try:
        line = _one_line_error(kshock(*cut, "--netns", alias, env=env))
        assert "would cut this SSH session" in line
    finally:
        subprocess.run(["ip", "netns", "del", alias], check=True)  # the name goes; the namespace stays
    with _namespaces(1) as (space,):  # a namespace of its own is not the host: no guard needed
        assert kshock(*cut, "--netns", space, env=env).returncode == 0


@pytest.mark.parametrize("name", ["", " ", ".", "..", "a/b", "-x", "x\ny", "ns\u00e9", "a" * 65])
def test_bad_namespace_names_are_refused_everywhere(run_env, name):
    for argv in (["apply", "--action", "drop", "--port", "9092", "--dry-run", f"--netns={name}"],
                 ["revert", "--all", f"--netns={name}"],
                 ["shell", f"--netns={name}", "--script", "-"]):
        result = subprocess.run([sys.executable, "-m", "kshock", *argv], capture_output=True, text=True, input="",
                                env=run_env, timeout=60)
        line = _one_line_error(result)
        assert "is not a network namespace name" in line, (argv, line)


@pytest.mark.parametrize("value", ["1.2.3.4 abc 5.6.7.8 22", "1.2.3.4 99999 5.6.7.8 22", "1.2.3.4 -1 5.6.7.8 22",
                                   "1.2.3.4 5000 5.6.7.8", "1.2.3.4 5000 5.6.7.8 22 9", "::1 5000 ::1 22",
                                   "1.2.3.4 5000 5.6.7.8 \u0662\u0662", "999.1.1.1 5000 5.6.7.8 22"])
def test_a_malformed_ssh_connection_is_unknown_and_guarded_conservatively(run_env, value):
    env = {**run_env, "SSH_CONNECTION": value}
    harmless = kshock("apply", "--action", "drop", "--port", "9092", "--dry-run", env=env)
    assert harmless.returncode == 0 and "Traceback" not in harmless.stderr, harmless.stderr
    (warning,) = harmless.stderr.strip().splitlines()
    assert warning.startswith("kshock: warning: SSH_CONNECTION ") and "port 22 from any address" in warning
    # unknown: port 22 from anywhere, to any of this host's addresses
    for extra in ([], ["--host", "192.0.2.7"]):
        refused = kshock("apply", "--action", "drop", "--port", "22", "--dry-run", *extra, env=env)
        assert refused.returncode == 2 and "would cut this SSH session" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def test_set_name_refuses_what_its_error_says_is_not_allowed(tmp_path, run_env):
    rules = tmp_path / "uni.yaml"
    rules.write_text("rules:\n  - {name: uni, match: 'api == Fetch', action: drop, target: {port: 9092}}\n")
    for name in ("f\u00e4ult", "\ufb01le", "\u0661x", "x\u200b"):
        line = _one_line_error(kshock("apply", str(rules), "--set-name", name, "--dry-run", env=run_env))
        assert "ASCII" in line, line


def test_a_damaged_state_file_is_skipped_and_revert_all_still_finds_its_chains(run_env):
    from pathlib import Path as P

    with _namespaces(1) as (space,):
        kshock("apply", "--action", "drop", "--port", "9092", "--name", "dmg", "--netns", space, env=run_env,
               check=True)
        (state,) = P(run_env["KSHOCK_RUN_DIR"]).glob("faults/*/dmg.json")
        data = json.loads(state.read_text())
        for field, value in (("expires_at", "soon"), ("scope", [space]), ("tables", "KSHOCK-dmg")):
            state.write_text(json.dumps({**data, field: value}))
            for argv in (["status"], ["status", "--json"]):
                result = kshock(*argv, env=run_env)
                assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
                (warning,) = result.stderr.strip().splitlines()
                assert warning.startswith("kshock: warning: skipped damaged state file") and field in warning
        assert _chains(space) == ["KSHOCK-dmg"]
        out = kshock("revert", "--all", "--netns", space, env=run_env)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert "KSHOCK-dmg (left over)" in out.stdout and "damaged state file dmg.json" in out.stdout
        assert _chains(space) == [] and not state.exists()


def test_damaged_state_files_never_crash_status_or_revert_all(tmp_path, monkeypatch):
    """Hypothesis: every field of a state file replaced by any JSON value, files cut short,
    bytes that are not JSON or not UTF-8; `status`, `status --json` and `revert --all` (here
    scoped to a throwaway namespace) exit 0, 1 or 2, and never with a traceback."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from kshock.cli import main
    from kshock.host.run_dir import RUN_DIR_ENV

    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4),
                               max_leaves=12)
    with _namespaces(1) as (space,):
        run = tmp_path / "run"
        monkeypatch.setenv(RUN_DIR_ENV, str(run))
        chain = f"KSHOCK-fz{os.getpid() % 100000}"  # a chain no one else has
        good = {"name": "fz", "scope": {"name": space, "pid": None}, "tables": {"filter": [chain]},
                "created_at": time.time(), "expires_at": time.time() + 600, "summary": {"match": "any"}, "tc": [],
                "restore": "", "connmark_mask": 0}
        fields = sorted(good)

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
        @given(field=st.sampled_from(fields + ["(cut)", "(bytes)"]), value=json_values, cut=st.integers(0, 400),
               raw=st.binary(max_size=200), folder=st.sampled_from([f"netns-{space}", "host", "pid-1", "x"]))
        def check(field, value, cut, raw, folder):
            import shutil

            shutil.rmtree(run, ignore_errors=True)
            (run / "faults" / folder).mkdir(parents=True)
            if field == "(cut)":
                content = json.dumps(good).encode()[:cut]
            elif field == "(bytes)":
                content = raw
            else:
                content = json.dumps({**good, field: value}).encode()
            (run / "faults" / folder / "fz.json").write_bytes(content)
            for argv in (["status"], ["status", "--json"], ["revert", "--all", "--netns", space]):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    status = main(argv)
                # main turns a bug into "internal error" (exit 1): that is a crash here too
                assert status in (0, 1, 2) and "internal error" not in err.getvalue(), (argv, err.getvalue())
                assert all(line.startswith("kshock: ") for line in err.getvalue().splitlines()), err.getvalue()

        check()
        assert _chains(space) == []


def test_status_on_a_mix_of_live_gone_and_vanishing_namespaces(run_env, monkeypatch, capsys):
    from kshock.apply import netfilter
    from kshock.cli import main
    from kshock.errors import OperationFailed
    from kshock.host.run_dir import RUN_DIR_ENV

    with _namespaces(3) as (live, doomed, flaky):
        for space in (live, doomed, flaky):
            kshock("apply", "--action", "drop", "--port", "9092", "--name", f"in-{space}", "--netns", space,
                   env=run_env, check=True)
        subprocess.run(["ip", "netns", "del", doomed], check=True)  # its rules go with it
        shown = kshock("status", env=run_env)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
        assert f"gone with its namespace: in-{doomed}" in shown.stdout
        assert f"in-{live}  in namespace {live}" in shown.stdout and f"in-{flaky}  in namespace {flaky}" in shown.stdout
        # a namespace that goes away while status reads its counters: said, and status goes on
        monkeypatch.setenv(RUN_DIR_ENV, run_env["KSHOCK_RUN_DIR"])
        real = netfilter.counters

        def counters(backend, scope, table, chains):
            if scope.name == flaky:
                raise OperationFailed(f"iptables-save failed in namespace {flaky}: Cannot open network namespace")
            return real(backend, scope, table, chains)

        monkeypatch.setattr(netfilter, "counters", counters)
        capsys.readouterr()
        assert main(["status"]) == 0
        out = capsys.readouterr().out
        assert f"in-{flaky}  in namespace {flaky}" in out and "counters unavailable" in out
        assert main(["status", "--json"]) == 0
        assert {entry["name"] for entry in json.loads(capsys.readouterr().out)} == {f"in-{live}", f"in-{flaky}"}
        monkeypatch.undo()
        kshock("revert", f"in-{live}", f"in-{flaky}", env=run_env, check=True)
        assert _chains(live) == _chains(flaky) == []


# -- adversarial review of the fault lifecycle -----------------------------------------------

def test_two_faults_of_one_command_never_share_a_chain(tmp_path, run_env):
    """`a` (a trigger: its counting chain is KSHOCK-a-0t... or alike) and `a-0t` must not end up
    in one chain: refused whole, naming both, nothing loaded."""
    rules = tmp_path / "clash.yaml"
    rules.write_text("rules:\n"
                     "  - {name: a, match: 'api == Produce', action: drop, target: {port: 9092}, trigger: every 2}\n"
                     "  - {name: a-0t, match: 'api == Fetch', action: drop, target: {port: 9092}}\n")
    with _namespaces(1) as (space,):
        try:
            planned = kshock("apply", str(rules), "--netns", space, "--duration", "1m", env=run_env)
            line = _one_line_error(planned)
            assert "'a'" in line and "'a-0t'" in line and "already active" not in line, line
            assert _chains(space) == []
            # and against an active fault: a-0t first, then a
            kshock("apply", "--match", "api == Fetch", "--action", "drop", "--port", "9092", "--name", "a-0t",
                   "--netns", space, "--duration", "1m", env=run_env, check=True)
            single = tmp_path / "a.yaml"
            single.write_text("rules:\n  - {name: a, match: 'api == Produce', action: drop, target: {port: 9092},"
                              " trigger: every 2}\n")
            line = _one_line_error(kshock("apply", str(single), "--netns", space, "--duration", "1m", env=run_env))
            assert "'a'" in line and "'a-0t'" in line and "already active" not in line, line
            assert _chains(space) == ["KSHOCK-a-0t"]
        finally:
            kshock("revert", "--all", "--netns", space, env=run_env)


def test_a_folder_among_the_state_files_does_not_break_revert_all(run_env):
    with _namespaces(1) as (space,):
        kshock("apply", "--action", "drop", "--port", "9092", "--name", "f1", "--netns", space, env=run_env,
               check=True)
        base = os.path.join(run_env["KSHOCK_RUN_DIR"], "faults")
        (where,) = [entry for entry in os.listdir(base) if entry.startswith(f"netns-{space}")]
        folder = os.path.join(base, where, "evil.json")
        os.mkdir(folder)
        try:
            done = kshock("revert", "--all", "--netns", space, env=run_env)
            assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
            assert _chains(space) == [] and not os.path.exists(folder)
        finally:
            kshock("revert", "--all", "--netns", space, env=run_env)


def test_a_fifo_lock_makes_apply_refuse_not_hang(run_env):
    with _namespaces(1) as (space,):
        base = os.path.join(run_env["KSHOCK_RUN_DIR"], "faults")
        os.makedirs(base)
        os.mkfifo(os.path.join(base, ".lock"))
        line = _one_line_error(kshock("apply", "--action", "drop", "--port", "9092", "--name", "f1", "--netns", space,
                                      env=run_env))
        assert "lock" in line and "regular file" in line, line
        assert _chains(space) == []


def test_a_table_iptables_cannot_read_makes_revert_fail_loudly(run_env):
    import shutil

    if shutil.which("nft") is None or "nf_tables" not in subprocess.run(["iptables", "-V"], capture_output=True,
                                                                         text=True).stdout:
        pytest.skip("needs nft and iptables-nft")
    with _namespaces(1) as (space,):
        kshock("apply", "--action", "drop", "--port", "9092", "--name", "f1", "--netns", space, env=run_env,
               check=True)
        # a rule iptables-nft cannot show: its filter table then reads as "incompatible"
        added = _netns(space, "nft", "add rule ip filter INPUT meta l4proto tcp counter ct count 100 accept")
        if added.returncode != 0 or "incompatible" not in _netns(space, "iptables-save", "-t", "filter").stdout:
            pytest.skip(f"could not make an incompatible table here: {added.stderr.strip()}")
        line = _one_line_error(kshock("revert", "f1", "--netns", space, env=run_env), status=1)
        assert "cannot read table 'filter'" in line, line
        status = json.loads(kshock("status", "--json", env=run_env).stdout or "[]")
        assert [entry["name"] for entry in status] == ["f1"]  # not forgotten: its rules are still there


def test_a_table_kshock_created_stays_when_another_program_put_a_set_in_it(run_env):
    import shutil

    if shutil.which("nft") is None or "nf_tables" not in subprocess.run(["iptables", "-V"], capture_output=True,
                                                                         text=True).stdout:
        pytest.skip("needs nft and iptables-nft")
    with _namespaces(1) as (space,):
        assert "table ip filter" not in _netns(space, "nft", "list", "tables").stdout
        kshock("apply", "--action", "drop", "--port", "9092", "--name", "f1", "--netns", space, env=run_env,
               check=True)
        assert _netns(space, "nft", "add set ip filter theirs { type ipv4_addr; }").returncode == 0
        kshock("revert", "f1", "--netns", space, env=run_env, check=True)
        assert _chains(space) == []
        assert "set theirs" in _netns(space, "nft", "list", "table", "ip", "filter").stdout  # kept: not kshock's
        kshock("apply", "--action", "drop", "--port", "9092", "--name", "f2", "--netns", space, env=run_env,
               check=True)
        kshock("revert", "f2", "--netns", space, env=run_env, check=True)
        assert "set theirs" in _netns(space, "nft", "list", "table", "ip", "filter").stdout


def test_revert_by_name_acts_on_the_namespace_the_name_leads_to_now(run_env):
    """N is deleted while a process still holds it, and a new N is made: `revert f1 --netns N`
    reverts the new N's fault only; the question for `revert f1` offers two distinct commands."""
    with _namespaces(1) as (space,):
        holder = subprocess.Popen(["ip", "netns", "exec", space, "sleep", "300"])
        try:
            kshock("apply", "--action", "drop", "--port", "9092", "--name", "f1", "--netns", space, env=run_env,
                   check=True)
            time.sleep(0.3)
            subprocess.run(["ip", "netns", "del", space], check=True)
            subprocess.run(["ip", "netns", "add", space], check=True)
            kshock("apply", "--action", "drop", "--port", "9092", "--name", "f1", "--netns", space, env=run_env,
                   check=True)

            def old_chains() -> list[str]:
                text = subprocess.run(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "iptables-save"],
                                      capture_output=True, text=True).stdout
                return re.findall(r"^:(KSHOCK-\S+)", text, re.M)

            assert old_chains() == _chains(space) == ["KSHOCK-f1"]
            line = _one_line_error(kshock("revert", "f1", env=run_env))
            commands = line.split("say which: ", 1)[1].split(";")[0].split(" or ")
            assert "still held by" in line, line
            assert len(set(commands)) == 2 and f"kshock revert f1 --pid {holder.pid}" in commands, line
            kshock("revert", "f1", "--netns", space, env=run_env, check=True)
            assert _chains(space) == [] and old_chains() == ["KSHOCK-f1"]  # the old namespace's fault stays
            kshock("revert", "f1", "--pid", str(holder.pid), env=run_env, check=True)
            assert old_chains() == []
        finally:
            holder.kill()
            holder.wait()
            kshock("revert", "--all", "--netns", space, env=run_env)
