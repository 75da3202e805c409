"""Hypothesis over the whole command line, as a hostile or careless user would drive it.

Inputs: argv, conditions, rule-file YAML (and bytes that are not YAML), damaged state files and
damaged capture files. Every run must
- exit 0, 1 or 2 (argparse's usage errors are 2),
- print no traceback and no "internal error" (cli.main's last resort for a bug of ours),
- leave the kernel as it found it when it failed: iptables-save, nft and tc of the throwaway
  namespace every fault aims at, and the host's iptables-save,
- stay within the memory bounds the README promises (tracemalloc's peak of the run): a damaged
  11 KB capture, whatever lengths its bytes claim, within one flow's 64 MiB; a text input past
  kshock/host/files.py's 1 MiB bound refused without being read.
A run that succeeded and loaded a fault is reverted, and the kernel must then be back to the start.

The CLI runs in this process (kshock.cli.main): a subprocess per example would take the run
past its time budget. KSHOCK_FUZZ_EXAMPLES sets the number of examples per test.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import tracemalloc
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import lab_skip_reason

ROOT = Path(__file__).resolve().parents[2]
SMALL_CAPTURE = ROOT / "captures" / "lab-admin.pcap"
EXAMPLES = int(os.environ.get("KSHOCK_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
LARGE_REPR = pytest.mark.filterwarnings("ignore:Generating overly large repr")
EXIT_CODES = {0, 1, 2}

pytestmark = [pytest.mark.skipif(lab_skip_reason() is not None, reason=lab_skip_reason() or ""), LARGE_REPR]


# ---- the environment: one throwaway namespace, state in a temporary run dir ----

@pytest.fixture(scope="module")
def world():
    namespace = f"kfz{os.getpid() % 100000}"
    run_dir = tempfile.mkdtemp(prefix="kshock-fuzz-")
    previous = os.environ.get("KSHOCK_RUN_DIR")
    os.environ["KSHOCK_RUN_DIR"] = run_dir
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
        world = {"ns": namespace, "run_dir": Path(run_dir), "tmp": Path(tempfile.mkdtemp(prefix="kshock-fuzz-in-"))}
        world["baseline"] = kernel_state(namespace)
        yield world
    finally:
        _cli(["revert", "--all", "--netns", namespace])
        subprocess.run(["ip", "netns", "delete", namespace])
        if previous is None:
            os.environ.pop("KSHOCK_RUN_DIR", None)
        else:
            os.environ["KSHOCK_RUN_DIR"] = previous
        shutil.rmtree(run_dir, ignore_errors=True)


def _text(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def _normal_save(text: str) -> str:
    # iptables-save's comments carry a time, and chain counters move with traffic
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[-]", line) for line in lines)


def kernel_state(namespace: str) -> dict[str, str]:
    inside = ["ip", "netns", "exec", namespace]
    return {
        "namespace iptables": _normal_save(_text(inside + ["iptables-save"])),
        "namespace nft": _text(inside + ["nft", "list", "ruleset"]),
        "namespace tc": _text(["tc", "-n", namespace, "qdisc", "show"]),
        "host iptables": _normal_save(_text(["iptables-save"])),
    }


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from kshock.cli import main

    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse: --help (0) and usage errors (2)
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    out.flush()
    return status, out.buffer.getvalue().decode("utf-8", "replace"), err.getvalue()


class Peak:
    """tracemalloc's peak of what the block allocated."""

    def __enter__(self) -> "Peak":
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1] - self.base
        tracemalloc.stop()


MIB = 1 << 20
FLOW_BOUND = 64 * MIB  # --max-flow-mib's default: bytes buffered per TCP flow
TEXT_BOUND = 1 * MIB  # kshock/host/files.py: rule files, scripts (KSHOCK_MAX_TEXT_MIB unset)


def _short(argv: list[str]) -> str:
    return repr([arg if len(arg) <= 200 else f"{arg[:120]!r}... ({len(arg)} characters)" for arg in argv])


def run_checked(world, argv: list[str]) -> tuple[int, str, str]:
    """Run argv; assert the three promises; leave the kernel at the baseline for the next run."""
    status, out, err = _cli(argv)
    event(f"{argv[0][:20] if argv else '(none)'} exit {status}")  # --hypothesis-show-statistics: what the inputs reached
    shown = f"argv={_short(argv)}\nstatus={status}\nstderr={err[-2000:]}"
    assert status in EXIT_CODES, shown
    assert "Traceback" not in err and "Traceback" not in out, shown
    assert "internal error" not in err, shown
    if status != 0:
        assert (err + out).strip(), f"a failure must say why\n{shown}"
        assert kernel_state(world["ns"]) == world["baseline"], f"a failed run changed the kernel\n{shown}"
    elif kernel_state(world["ns"]) != world["baseline"]:  # it loaded a fault: take it out again
        _cli(["revert", "--all", "--netns", world["ns"]])
        assert kernel_state(world["ns"]) == world["baseline"], f"revert --all did not restore the kernel\n{shown}"
    return status, out, err


# ---- strategies ----

HOSTILE = ["\n", "\r", "\x00", '"', "'", "\\", "COMMIT", "*nat", "-A OUTPUT -j ACCEPT", "-I INPUT 1", "#", "$(id)",
           "`id`", ";", "|", " ", "\t", "\u2028", "\x7f", "é", "☃", "../", "-j", "--hex-string", "%", "{", "}"]
hostile_text = st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from(HOSTILE) | st.text(max_size=4), max_size=8).map("".join),
    st.integers(1, 70_000).map(lambda n: "x" * n),
)
huge_number = st.one_of(st.integers(-(2 ** 70), 2 ** 70), st.integers(1, 6000).map(lambda n: "9" * n))


def _quote(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


FIELD_NAMES = ["api", "api_version", "kind", "correlation_id", "client_id", "size", "topic", "partition", "acks",
               "transactional_id", "records", "error_code", "key", "value", "header", 'header["trace"]',
               "src.host", "src.port", "dst.host", "dst.port", "host", "port", "nosuchfield", "src", "client_id.x"]
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "contains", "matches", "=", "=~", ""]
value = st.one_of(
    hostile_text.map(_quote),
    huge_number.map(str),
    st.sampled_from(["Produce", "Fetch", "request", "response", "all", "198.18.0.1", "10.0.0.0/8", "::1",
                     "999.1.1.1", "1.2.3.4/99", "0x7fffffff", "-1", "null", "{}", "{1,}", "(", ")"]),
    st.lists(hostile_text.map(_quote) | huge_number.map(str), max_size=6).map(lambda v: "{" + ", ".join(v) + "}"),
)
random_atom = st.builds(lambda f, o, v: f"{f} {o} {v}", st.sampled_from(FIELD_NAMES), st.sampled_from(OPS), value)
# tests that parse and compile, carrying hostile strings: the inputs that reach the kernel
short_hostile = st.one_of(st.text(min_size=1, max_size=12),
                          st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=5).map("".join))
valid_atom = st.one_of(
    st.builds(lambda f, o, v: f"{f} {o} {_quote(v)}", st.sampled_from(["client_id", "topic", "transactional_id"]),
              st.sampled_from(["==", "!="]), short_hostile),
    st.builds(lambda v: f"client_id in {{{', '.join(_quote(x) for x in v)}}}", st.lists(short_hostile, min_size=1,
                                                                                          max_size=3)),
    st.builds(lambda a: f"api == {a}", st.sampled_from(["Produce", "Fetch", "Metadata", "JoinGroup", "ListOffsets"])),
    st.builds(lambda o, v: f"api_version {o} {v}", st.sampled_from(["==", "<", ">=", "!="]), st.integers(0, 20)),
    st.builds(lambda f, v: f"{f} == {v}", st.sampled_from(["port", "dst.port", "src.port"]), st.integers(0, 65535)),
    st.builds(lambda v: f"partition == {v}", st.integers(-5, 2 ** 31 - 1)),
    st.sampled_from(["acks == 0", "acks == all", "kind == request", "src.host == 198.18.0.11",
                     "dst.host == 198.18.0.0/24", "size > 100"]),
)
atom = st.one_of(valid_atom, valid_atom, valid_atom, random_atom)
condition = st.one_of(
    st.recursive(atom, lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a, b: f"{a} && {b}", inner, inner),
        inner.map(lambda a: f"not {a}"),
        inner.map(lambda a: f"({a})"),
    ), max_leaves=6),
    st.recursive(valid_atom, lambda inner: st.builds(lambda a, b: f"{a} and {b}", inner, inner), max_leaves=3),
    st.text(max_size=60),
    st.one_of(  # past the limits
    st.integers(1, 5000).map(lambda n: "not " * n + "api == Produce"),
    st.integers(1, 5000).map(lambda n: "(" * n + "api == Produce" + ")" * n),
    st.integers(1, 2000).map(lambda n: " or ".join(f"partition == {i}" for i in range(n))),
    st.integers(1, 2000).map(lambda n: "client_id in {" + ", ".join(f'"c{i}"' for i in range(n)) + "}")),
)
ACTIONS = ["drop", "reset", "stall", "loss 5%", "loss 101%", "rate 1mbit", "rate " + "9" * 400 + "kbit",
           "delay 200ms", "duplicate 5%", "corrupt 1%", "reorder 10%", "drop drop", "", "ACCEPT", "-j ACCEPT"]
action = st.one_of(st.sampled_from(["drop", "reset", "stall"]), st.sampled_from(ACTIONS), hostile_text)
duration = st.one_of(st.sampled_from(["1m", "90s", "2m", "0s", "-5m", "1h", "99999999h", "5", "abc", ""]),
                     huge_number.map(str), hostile_text)
scalar = st.one_of(st.none(), st.booleans(), huge_number, st.floats(allow_nan=True), hostile_text,
                   st.sampled_from(["2:33:12", "0755", "yes", "off", "~", "1e309", ".inf"]))
target = st.fixed_dictionaries({}, optional={
    "port": st.one_of(scalar, st.integers(0, 70_000)), "ports": st.lists(scalar, max_size=3),
    "direction": st.one_of(st.sampled_from(["ingress", "egress", "forward", "both"]), scalar),
    "host": st.one_of(st.sampled_from(["198.18.0.1", "10.0.0.0/8", "::1"]), scalar),
    "interface": st.one_of(st.just("lo"), scalar)})
VALID_ACTIONS = ["drop", "reset", "stall", "loss 5%", "rate 1mbit"]
valid_rule = st.fixed_dictionaries({
    "name": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), "match": condition,
    "action": st.sampled_from(VALID_ACTIONS),
    "target": st.fixed_dictionaries({"port": st.integers(1, 65535),
                                     "direction": st.sampled_from(["ingress", "egress", "both"])}),
    "duration": st.sampled_from(["1m", "90s"])}, optional={
    "trigger": st.sampled_from(["every 3", "probability 50%", "once-per-connection"]), "latch": st.booleans()})


def _spoil(rule: dict, key: str, garbage) -> dict:
    return {**rule, key: garbage}


spoilt_rule = st.builds(_spoil, valid_rule, st.sampled_from(["name", "match", "action", "target", "duration", "trigger",
                                                            "latch", "approximate", "nosuchkey"]), scalar)
any_rule = st.fixed_dictionaries({"name": st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), hostile_text),
                              "match": condition, "action": action},
                             optional={"target": target, "duration": duration, "latch": scalar, "approximate": scalar,
                                       "exact": scalar, "when": scalar,
                                       "trigger": st.one_of(st.sampled_from(["every 3", "probability 50%",
                                                                             "once-per-connection", "every 0"]),
                                                            st.integers(1, 6000).map(lambda n: "every " + "9" * n),
                                                            scalar)})


def _deep_yaml(n: int) -> bytes:
    return ("rules: " + "[" * n + "]" * n + "\n").encode()


SHIPPED = sorted((ROOT / "rules").glob("*.yaml"))
rule = st.one_of(valid_rule, valid_rule, spoilt_rule, any_rule)
rule_file_bytes = st.one_of(
    st.lists(rule, min_size=1, max_size=3).map(lambda rules: yaml.safe_dump({"rules": rules}).encode()),
    st.lists(rule, min_size=1, max_size=3).map(lambda rules: yaml.safe_dump({"rules": rules}).encode()),
    st.lists(rule, min_size=1, max_size=2).map(
        lambda rules: yaml.safe_dump({"rules": rules}, allow_unicode=True).encode("utf-16")),
    st.builds(lambda path, at, byte: _flip(path.read_bytes(), at, byte),
              st.sampled_from(SHIPPED), st.integers(0, 10_000), st.integers(0, 255)),
    st.integers(1, 60_000).map(_deep_yaml),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("latin-1", "replace")),
)


def _flip(data: bytes, at: int, byte: int) -> bytes:
    out = bytearray(data)
    out[at % len(out)] = byte
    return bytes(out)


def _write(world, name: str, data: bytes) -> str:
    path = world["tmp"] / name
    path.write_bytes(data)
    return str(path)


# ---- the tests ----

@SETTINGS
@given(data=st.data())
def test_argv(world, data):
    ns = world["ns"]
    command = data.draw(st.sampled_from(["apply", "apply-dry", "compile", "explain", "revert", "status", "decode",
                                         "lab-status", "junk"]))
    options = {
        "--match": condition, "--action": action, "--port": huge_number.map(str), "--name": hostile_text,
        "--host": hostile_text, "--interface": hostile_text, "--direction": hostile_text, "--duration": duration,
        "--set-name": hostile_text, "--format": st.sampled_from(["iptables-restore", "iptables", "nft", "json", "x"]),
        "--filter": condition, "--max-flow-mib": huge_number.map(str), "--netns": hostile_text,
        "--pid": huge_number.map(str),
    }
    chosen = data.draw(st.lists(st.sampled_from(sorted(options)), max_size=5, unique=True))
    args = [word for name in chosen for word in (name, data.draw(options[name]))]
    if command == "apply":
        # a fault only ever goes into our namespace: the last --netns wins
        argv = ["apply", *[a for a in args], "--duration", "1m", "--netns", ns]
        if "--pid" in chosen:
            argv = ["apply", *args, "--dry-run"]
    elif command == "apply-dry":
        argv = ["apply", *args, "--dry-run"]
    elif command == "compile" or command == "explain":
        argv = [command, *args] if command == "compile" else ["explain", data.draw(condition), *args[:2]]
    elif command == "revert":
        argv = ["revert", *data.draw(st.lists(hostile_text, max_size=2)), "--netns", ns]
    elif command == "status":
        argv = ["status", *data.draw(st.sampled_from([[], ["--json"]]))]
    elif command == "decode":
        argv = ["decode", str(SMALL_CAPTURE), *[a for a in args if a != "--json"][:4],
                *data.draw(st.sampled_from([[], ["--json"]]))]
    elif command == "lab-status":
        argv = ["lab", "status", "--name", data.draw(hostile_text)]
    else:
        argv = data.draw(st.lists(hostile_text, max_size=6))
    run_checked(world, argv)


@SETTINGS
@given(match=condition, act=action)
def test_conditions_through_every_command(world, match, act):
    for argv in (["compile", "--match", match, "--action", act],
                 ["compile", "--match", match, "--action", act, "--format", "nft"],
                 ["explain", match],
                 ["decode", str(SMALL_CAPTURE), "--filter", match],
                 ["apply", "--match", match, "--action", act, "--duration", "1m", "--netns", world["ns"]]):
        run_checked(world, argv)


@SETTINGS
@given(content=rule_file_bytes, set_name=st.one_of(st.none(), hostile_text))
def test_rule_files_through_every_command(world, content, set_name):
    path = _write(world, "rules.yaml", content)
    named = [] if set_name is None else ["--set-name", set_name]
    for argv in (["compile", path, *named],
                 ["compile", path, "--format", "nft"],
                 ["explain", path],
                 ["replay", str(SMALL_CAPTURE), "--rules", path],
                 ["apply", path, "--dry-run", "--netns", world["ns"]],
                 ["apply", path, "--netns", world["ns"], *named]):
        run_checked(world, argv)


json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=8)
STATE_FIELDS = ["name", "scope", "tables", "created_at", "expires_at", "summary", "tc", "restore", "marks",
                "namespace"]


@SETTINGS
@given(data=st.data())
def test_damaged_state_files(world, data):
    """A real fault's state file is damaged (or a stray file appears): status and revert neither
    crash nor lose the fault's chains — revert --all still takes them out."""
    ns = world["ns"]
    _cli(["revert", "--all", "--netns", ns])  # an example that failed half-way left its fault
    shutil.rmtree(world["run_dir"] / "faults", ignore_errors=True)
    assert kernel_state(ns) == world["baseline"]
    loaded = data.draw(st.booleans())
    if loaded:
        status, _, err = _cli(["apply", str(SHIPPED[0]), "--netns", ns, "--duration", "1m"])
        assert status == 0, f"{err}\nkernel: {kernel_state(ns)}\nstate: {sorted(world['run_dir'].rglob('*'))}"
    state_files = sorted((world["run_dir"] / "faults").glob("*/*.json"))
    if loaded:
        assert state_files, "apply wrote no state file"
        victim = data.draw(st.sampled_from(state_files))
    else:
        inode = os.stat(f"/run/netns/{ns}").st_ino
        victim = world["run_dir"] / "faults" / data.draw(st.sampled_from([f"netns-{ns}-{inode}", f"netns-{ns}"])) / "stray.json"
        victim.parent.mkdir(parents=True, exist_ok=True)
    how = data.draw(st.sampled_from(["field", "json", "bytes", "truncate"]))
    if how == "field" and victim.exists():
        record = json.loads(victim.read_text())
        record[data.draw(st.sampled_from(STATE_FIELDS))] = data.draw(json_value)
        victim.write_text(json.dumps(record))
    elif how == "json":
        victim.write_text(json.dumps(data.draw(json_value)))
    elif how == "bytes":
        victim.write_bytes(data.draw(st.binary(max_size=300)))
    elif victim.exists():
        victim.write_bytes(victim.read_bytes()[: data.draw(st.integers(0, 200))])
    for argv in (["status"], ["status", "--json"], ["revert", data.draw(hostile_text), "--netns", ns]):
        status, _, err = _cli(argv)
        assert status in EXIT_CODES and "Traceback" not in err and "internal error" not in err, (argv, err)
    status, _, err = _cli(["revert", "--all", "--netns", ns])
    assert status == 0 and "internal error" not in err, err
    assert kernel_state(ns) == world["baseline"], "revert --all left a fault with a damaged state file in the kernel"
    shutil.rmtree(world["run_dir"] / "faults", ignore_errors=True)


@SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=8),
       cut=st.integers(0, 20_000), head=st.one_of(st.just(b""), st.just(b""), st.binary(max_size=40)))
def test_damaged_captures(world, edits, cut, head):
    data = bytearray(SMALL_CAPTURE.read_bytes()[:cut] if cut else SMALL_CAPTURE.read_bytes())
    for at, byte in edits:
        if data:
            data[at % len(data)] = byte
    if head:
        data[: len(head)] = head
    path = _write(world, "damaged.pcap", bytes(data))
    for argv in (["decode", path], ["decode", path, "--json"],
                 ["replay", path, "--rules", str(SHIPPED[0])]):
        with Peak() as peak:
            run_checked(world, argv)
        # lengths in the damaged bytes may claim up to 2 GiB: nothing is allocated by a claim
        assert peak.bytes < FLOW_BOUND, f"{argv}: peak {peak.bytes >> 20} MiB for an 11 KB capture"


RULE = b"rules:\n  - name: r\n    match: api == Produce\n    action: drop\n"


@settings(max_examples=min(EXAMPLES, 12), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(over=st.sampled_from([0, 1, 64, 1 << 40]))  # reading 1 MiB of YAML takes seconds
def test_text_inputs_at_the_text_bound(world, over):
    """A rule file of 1 MiB + `over` bytes (sparse for the huge ones): within the bound it is
    read, past it refused with the one-line error before a byte is read."""
    path = world["tmp"] / "big-rules.yaml"
    size = TEXT_BOUND + over
    with open(path, "wb") as out:
        out.write(RULE)
        if over < (1 << 30):
            out.write(b"#" + b"x" * (size - len(RULE) - 2) + b"\n")
        else:
            out.truncate(size)
    assert path.stat().st_size == size
    with Peak() as peak:
        status, _, err = run_checked(world, ["compile", str(path)])
    if over > 0:
        assert status == 2 and f"{path} is larger than 1 MiB, kshock's bound for a rule file" in err, err
        assert peak.bytes < MIB, f"refusing a {size}-byte file took {peak.bytes} bytes"
    else:
        assert status == 0, err
        assert peak.bytes < 32 * TEXT_BOUND, f"reading a {size}-byte rule file took {peak.bytes >> 20} MiB"
    path.unlink()
