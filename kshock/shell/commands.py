"""The shell's commands: a registry of small handlers, one per command, over a Session.

    shell = Shell(session, target=ShellTarget(...))
    result = shell.execute("stats")      # Result(text=..., ok=True)

Handlers return text and never print; a UserError (a condition with its caret, a rule that
cannot compile, a missing file) becomes one failed Result and the prompt stays. The same
registry serves the interactive prompt, `--script FILE` and the tests.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from kshock.apply.faults import human_duration as _human, utc_text as _utc
from kshock.conditions import ConditionError, describe_fields, parse_condition, topics_named
from kshock.errors import UserError
from kshock.rules.durations import is_whole_number, parse_seconds
from kshock.rules.rulefile_writer import render_rule_file, rule_extras
from kshock.rules.spec import RuleSpec
from kshock.shell.completion import WHEN_CLAUSES, split_do
from kshock.shell.session import Session, ShellRule, Tally, frame_client
from kshock.wire.model import KafkaFrame
from kshock.wire.text import terminal_safe

SHOW_LAST = 20
DEFAULT_DURATION = "5m"


@dataclass(frozen=True, slots=True)
class ShellTarget:
    """Where `apply` puts faults: a namespace (or the host), and the rules' target."""

    scope_name: str | None = None  # a network namespace; None: the host
    live: bool = True  # False for a capture file: there is no kernel to change
    ports: tuple[int, ...] = (9092,)
    direction: str = "ingress"
    host: str | None = None


@dataclass(slots=True)
class Result:
    text: str = ""
    ok: bool = True
    prefill: str | None = None  # text to put on the prompt, ready to edit (pick)
    quit: bool = False
    keep_faults: bool = False  # quit without reverting
    wait_s: float = 0.0  # a script asked to wait for the capture


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Callable[[Shell, str], Result]
    details: str = ""


REGISTRY: dict[str, Command] = {}


def command(name: str, usage: str, summary: str, details: str = ""):
    def register(handler: Callable[[Shell, str], Result]) -> Callable[[Shell, str], Result]:
        REGISTRY[name] = Command(name, usage, summary, handler, details)
        return handler
    return register


class Shell:
    def __init__(self, session: Session, target: ShellTarget | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.session = session
        self.target = target or ShellTarget(live=False)
        self.clock = clock
        self._next_rule = 1

    def execute(self, line: str) -> Result:
        """Run one command line; errors come back as a failed Result, never as an exception."""
        text = line.strip()
        if not text or text.startswith("#"):
            return Result()
        name, _, arg = text.partition(" ")
        entry = REGISTRY.get(name.lower())
        if entry is None:
            import difflib

            close = difflib.get_close_matches(name.lower(), list(REGISTRY), n=1)
            hint = f"did you mean {close[0]}?" if close else "type help for the commands"
            return Result(f"unknown command {name!r} — {hint}", ok=False)
        try:
            return entry.handler(self, arg.strip())
        except ConditionError as error:
            return Result(str(error), ok=False)
        except UserError as error:
            return Result(str(error), ok=False)

    # -- shared pieces -----------------------------------------------------------------------

    def scope(self):
        from kshock.apply.scope import Scope

        return Scope(name=self.target.scope_name).pinned()  # named by its inode, as `kshock apply` does

    def compile(self, spec: RuleSpec, expires_at: float, claims=None):
        """The rule's rule set; with `claims` (faults.Claims), with marks no active fault holds."""
        from kshock.rules.compile import compile_rules

        compile_ = claims.compile if claims is not None else compile_rules
        return compile_([spec], spec.name, expires_at=_utc(expires_at), topic_ids=self.topic_ids_for(spec))

    def topic_ids_for(self, spec: RuleSpec) -> dict[str, bytes]:
        """The topic ids a rule may need (Produce v13 and Fetch v13+ name topics by id).

        Learned from Metadata responses in the capture; when a topic's id went by before the
        capture began, a live shell asks a broker the requests went to (one Metadata request from
        the capture's namespace). A broker that cannot be asked leaves the id unknown, and the
        compiler says what to do."""
        known = self.session.topic_ids()
        missing = [t for t in topics_named(spec.condition) if t not in known] if spec.condition else []
        if not missing or not self.target.live:
            return known
        from kshock.host import probe as broker_talk

        for host, port in self.session.broker_endpoints()[:3]:
            try:
                found = broker_talk.topic_ids(host, port, missing, timeout_s=2.0, netns=self.target.scope_name)
            except (OSError, ValueError):
                continue
            self.session.asked_topic_ids.update(found)
            return {**known, **found}
        return known

    def new_rule_name(self) -> str:
        """r1, r2, ...: the next name neither this session nor an active fault in the target's
        namespace (another shell's, an apply's) has."""
        taken: set[str] = set()
        if self.target.live:
            from kshock.apply import faults

            taken = {record.name for record in faults.records(self.scope())}
        while self.session.rule(f"r{self._next_rule}") is not None or f"r{self._next_rule}" in taken:
            self._next_rule += 1
        name = f"r{self._next_rule}"
        self._next_rule += 1
        return name

    def expire(self) -> list[ShellRule]:
        """Mark applied rules whose time is up as expired and take their chains out."""
        from kshock.apply import faults

        now = self.clock()
        ended = [r for r in self.session.active_rules() if r.expires_at is not None and r.expires_at <= now]
        for rule in ended:
            if rule.record is not None:
                faults.remove(rule.record)
            rule.state = "expired"
        return ended

    def revert_all(self) -> list[str]:
        from kshock.apply import faults

        names = []
        for rule in self.session.active_rules():
            if rule.record is not None:
                faults.remove(rule.record)
            rule.state = "reverted"
            names.append(rule.spec.name)
        return names


# -- looking -----------------------------------------------------------------------------------

@command("show", "show [EXPR | N]", "list the last frames (matching EXPR, or the filter); show N: one frame in full",
         "Without EXPR the live filter applies (see filter). The first column is the frame number "
         "that pick and show N take.")
def _show(shell: Shell, arg: str) -> Result:
    session = shell.session
    if is_frame_number(arg):
        with session.lock:
            frame = session.frame(int(arg))
        if frame is None:
            return Result(_no_frame(session, int(arg)), ok=False)
        data = frame.as_json()
        data["ts"] = f"{_clock(frame.ts)} ({frame.ts:.6f})"
        return Result("\n".join(f"  {key:<15} {terminal_safe(str(value))}" for key, value in data.items()))
    condition = parse_condition(arg) if arg else None
    with session.lock:
        if condition is None and session.filter_text is not None:
            condition = parse_condition(session.filter_text)
        keep = session.matcher(condition) if condition is not None else None
        frames = session.numbered()
    chosen = [(n, f) for n, f in frames if keep is None or keep(f)]
    lines = [frame_header()] + [frame_line(n, f) for n, f in chosen[-SHOW_LAST:]]
    what = f"matching {condition}" if condition is not None else "captured"
    if len(chosen) > SHOW_LAST:
        lines.append(f"({len(chosen)} frames {what}; the last {SHOW_LAST} shown)")
    else:
        lines.append(f"({len(chosen)} frames {what})")
    return Result("\n".join(lines))


@command("filter", "filter EXPR | filter off", "show only matching frames in the live view",
         'e.g. filter api == Produce and client_id == "shop"')
def _filter(shell: Shell, arg: str) -> Result:
    if not arg:
        current = shell.session.filter_text
        return Result(f"filter: {current}" if current else "no filter: every frame is shown (filter EXPR sets one)")
    if arg.lower() == "off":
        shell.session.set_filter(None, None)
        return Result("filter off: every frame is shown")
    condition = parse_condition(arg)
    shell.session.set_filter(str(condition), condition)
    return Result(f"filter: {condition}")


@command("stats", "stats", "frames and rates per API, client-id and topic; latency p50/p99 per API")
def _stats(shell: Shell, arg: str) -> Result:
    session = shell.session
    with session.lock:
        elapsed = session.elapsed_s()
        by_api = {k: _copy(v) for k, v in session.by_api.items()}
        by_client = {k: _copy(v) for k, v in session.by_client.items()}
        by_topic = {k: _copy(v) for k, v in session.by_topic.items()}
        head = (f"{session.frame_count} frames in {elapsed:.1f} s: {session.requests} requests, "
                f"{session.responses} responses, {session.malformed} undecodable")
        sniffer = session.sniffer.stats
        capture = (f"{sniffer.packets} packets, {sniffer.connections} connections, {sniffer.gaps} gaps "
                   f"({sniffer.gap_bytes} bytes never captured)")
        if shell.target.live:
            capture += f"; the kernel dropped {session.kernel_drops} packets"
    rate = (lambda n: f"{n / elapsed:9.1f}") if elapsed > 0 else (lambda n: f"{'-':>9}")
    lines = [head, capture, ""]
    lines.append(f"{'API':<26}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for api, tally in sorted(by_api.items(), key=lambda kv: (-kv[1].requests, kv[0])):
        p50, p99 = tally.percentile(50), tally.percentile(99)
        lines.append(f"{terminal_safe(str(api)):<26}{tally.requests:>9}{rate(tally.requests)}{_ms(p50)}{_ms(p99)}")
    lines += ["", f"{'client-id':<26}{'requests':>9}{'req/s':>9}{'records':>9}"]
    for client, tally in sorted(by_client.items(), key=lambda kv: (-kv[1].requests, kv[0])):
        lines.append(f"{terminal_safe(str(client)):<26}{tally.requests:>9}{rate(tally.requests)}{tally.records:>9}")
    lines += ["", f"{'topic':<26}{'requests':>9}{'req/s':>9}{'records':>9}"]
    for topic, tally in sorted(by_topic.items(), key=lambda kv: (-kv[1].requests, kv[0])):
        lines.append(f"{terminal_safe(str(topic)):<26}{tally.requests:>9}{rate(tally.requests)}{tally.records:>9}")
    return Result("\n".join(lines))


@command("pick", "pick N", "turn frame N into a condition (api, client-id, topic), ready to edit")
def _pick(shell: Shell, arg: str) -> Result:
    if not is_frame_number(arg):
        raise UserError("pick takes a frame number", "the first column of show; e.g. pick 12")
    with shell.session.lock:
        frame = shell.session.frame(int(arg))
    if frame is None:
        return Result(_no_frame(shell.session, int(arg)), ok=False)
    condition = pick_condition(frame)
    prefill = f"when {condition} do "
    return Result(f"frame {arg}: {condition}\n{prefill}", prefill=prefill)


def pick_condition(frame: KafkaFrame) -> str:
    """The condition that picks out frames like this one: its api, client id and topics."""
    parts = []
    if frame.api is not None:
        parts.append(f"api == {frame.api}")
    elif frame.api_key is not None:
        parts.append(f"api == {frame.api_key}")
    client = frame_client(frame)
    if client is not None:
        parts.append(f"client_id == {_quote(client)}")
    topics = list(dict.fromkeys(frame.topics))
    if len(topics) == 1:
        parts.append(f"topic == {_quote(topics[0])}")
    elif topics:
        parts.append("topic in {" + ", ".join(_quote(t) for t in topics) + "}")
    if not frame.is_request and not parts:
        parts.append("kind == response")
    text = " and ".join(parts) or "kind == request"
    return str(parse_condition(text))


# -- rules -------------------------------------------------------------------------------------

@command("when", "when EXPR do ACTION [for DURATION] [as NAME] [trigger T] [latch] [approximate]",
         "write a rule: compile it and show the kernel rules (nothing is applied yet)",
         "ACTION: drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | "
         "corrupt 1% | reorder 10%. DURATION: 30s, 5m, 1h (default 5m). NAME: r1, r2, ... unless given.\n"
         "T: every 5 | probability 30% | once-per-connection (default: every matching packet). latch: once a "
         "packet of a connection matches, act on the rest of it. approximate: widen what the kernel cannot "
         "test exactly, with a warning. (The same words as a rule file's keys.)\n"
         'e.g. when api == Produce and client_id == "shop" do drop for 30s trigger every 3')
def _when(shell: Shell, arg: str) -> Result:
    at = split_do(arg)
    if at is None:
        raise UserError("when needs `do ACTION`", 'e.g. when api == Produce do drop for 30s')
    condition_text, action_text = arg[:at].strip(), arg[at + 4:].strip()
    condition = parse_condition(condition_text)
    action, clauses = _when_clauses(action_text)
    name = clauses.get("as")
    if name is not None and shell.session.rule(name) is not None:
        raise UserError(f"there is already a rule named {name!r}", "choose another name (as NAME)")
    spec = _spec(shell, name or shell.new_rule_name(), str(condition), action, clauses.get("for", DEFAULT_DURATION),
                 trigger=clauses.get("trigger"), latch="latch" in clauses, approximate="approximate" in clauses)
    ruleset = _compile_for_show(shell, spec, condition_text)
    shell.session.rules.append(ShellRule(spec, ruleset))
    return Result(_describe_rule(spec, ruleset) + "\nnothing is applied yet: apply puts it in the kernel")


def _when_clauses(text: str) -> tuple[str, dict[str, str]]:
    """`ACTION [for D] [as NAME] [trigger T] [latch] [approximate]` -> (ACTION, {clause: value}):
    the first clause word ends the action; `trigger` takes the words up to the next clause."""
    words = text.split()
    cut = next((i for i, word in enumerate(words) if word.lower() in WHEN_CLAUSES), len(words))
    action, rest = " ".join(words[:cut]), words[cut:]
    if not action:
        raise UserError("when needs an action after do", "e.g. do drop, do delay 200ms, do loss 30%")
    clauses: dict[str, str] = {}
    i = 0
    while i < len(rest):
        word = rest[i].lower()
        if word in clauses:
            raise UserError(f"`{word}` is given twice", "give each of for, as, trigger, latch, approximate once")
        if word in ("latch", "approximate"):
            clauses[word] = ""
            i += 1
            continue
        end = i + 1
        while end < len(rest) and rest[end].lower() not in WHEN_CLAUSES:
            end += 1
        value = " ".join(rest[i + 1:end])
        if not value or (word != "trigger" and end - i != 2):
            example = {"for": "for 30s", "as": "as slow-orders", "trigger": "trigger every 5"}[word]
            raise UserError(f"`{word}` needs {'one word' if word != 'trigger' else 'a trigger'} after it",
                            f"e.g. {example}")
        clauses[word] = value
        i = end
    return action, clauses


def _spec(shell: Shell, name: str, match: str, action: str, duration: str, *, trigger: str | None = None,
          latch: bool = False, approximate: bool = False) -> RuleSpec:
    """One rule through the rule-file validator (the same messages as a rule file)."""
    import yaml

    from kshock.rules.rulefile import RuleFileError, parse_rule_file

    target = {"ports": list(shell.target.ports), "direction": shell.target.direction}
    if shell.target.host:
        target["host"] = shell.target.host
    rule = {"name": name, "match": match, "action": action, "target": target, "duration": duration}
    if trigger is not None:
        rule["trigger"] = trigger
    if latch:
        rule["latch"] = True
    if approximate:
        rule["approximate"] = True
    try:
        (spec,) = parse_rule_file(yaml.safe_dump({"rules": [rule]}, sort_keys=False), "<shell>")
    except RuleFileError as error:
        message = re.sub(r"^<shell>:\d+(?::\d+)?: ", "", error.message)
        raise UserError(message, error.hint) from None
    return replace(spec, source="shell")


def _compile_for_show(shell: Shell, spec: RuleSpec, condition_text: str):
    from kshock.rules.compile import CompileError

    try:
        return shell.compile(spec, shell.clock() + spec.duration_s)
    except CompileError as error:
        if error.span and spec.condition is not None:
            text = str(spec.condition)
            start, end = error.span
            caret = f"  {text}\n  {' ' * start}{'^' * max(1, end - start)}"
            raise UserError(f"{error.message}", f"{error.hint}\n{caret}" if error.hint else caret) from None
        raise


def _describe_rule(spec: RuleSpec, ruleset) -> str:
    from kshock.rules.render import render_restore

    kernel = sum(len(chain.rules) for chain in ruleset.chains)
    extras = "".join(f", {extra}" for extra in rule_extras(spec))
    lines = [f"rule {spec.name}: {spec.action} {spec.match_text} for {_human(spec.duration_s)} "
             f"({spec.target.direction}, port {','.join(map(str, spec.target.ports))}{extras}); {kernel} kernel rules:"]
    lines += ["  " + line for line in render_restore(ruleset).splitlines()]
    lines += [f"  warning: {warning}" for warning in ruleset.warnings]
    return "\n".join(lines)


@command("rules", "rules", "the session's rules: pending, applied (with time left), reverted")
def _rules(shell: Shell, arg: str) -> Result:
    shell.expire()
    if not shell.session.rules:
        return Result("no rules yet: write one with when EXPR do ACTION (or load FILE)")
    now = shell.clock()
    lines = []
    for rule in shell.session.rules:
        spec = rule.spec
        state = rule.state
        if rule.state == "applied" and rule.expires_at is not None:
            state = f"applied, {_human(rule.expires_at - now)} left"
        kernel = sum(len(chain.rules) for chain in rule.ruleset.chains)
        lines.append(f"{spec.name:<10} {state:<22} {str(spec.action):<14} {spec.match_text}  "
                     f"[{_human(spec.duration_s)}, {kernel} kernel rules]")
    return Result("\n".join(lines))


@command("apply", "apply", "put the pending rules into the kernel (each until its duration ends)")
def _apply(shell: Shell, arg: str) -> Result:
    from kshock.apply import faults
    from kshock.rules.compile import TC_ACTIONS

    if not shell.target.live:
        raise UserError("there is no kernel to apply rules to when reading a capture file",
                        "start the shell on live traffic (--lab NAME, --netns NAME or --interface IF); "
                        "replay shows what the rules would do to this capture")
    pending = [r for r in shell.session.rules if r.state == "pending"]
    if not pending:
        raise UserError("no pending rules", "write one with when EXPR do ACTION")
    scope = shell.scope()
    for rule in pending:
        if rule.spec.action.kind in TC_ACTIONS:
            raise UserError(f"rule {rule.spec.name} ({rule.spec.action}) needs traffic control, which the shell "
                            "does not apply yet", "use drop, reset, stall or loss; or save it and use kshock apply")
    faults.collect_expired()
    from kshock.rules.guard import cuts_ssh, warning as ssh_warning

    guarded = scope.is_host()  # the host's namespace however it was named: the SSH guard applies
    session = os.environ.get("SSH_CONNECTION")
    lines = [f"warning: {ssh_warning(session)}"] if guarded and ssh_warning(session) else []
    claims = faults.Claims(scope)  # marks no fault of the namespace (nor an earlier rule here) holds
    planned = []
    for rule in pending:
        spec = rule.spec
        datestop = shell.clock() + spec.duration_s
        ruleset = shell.compile(spec, datestop, claims)
        if guarded and cuts_ssh(ruleset, session):
            raise UserError(f"rule {spec.name!r} would cut this SSH session",
                            "narrow it, or start the shell in a namespace (--netns/--lab)")
        planned.append((rule, ruleset, datestop, faults.kernel_end(datestop)))  # when the kernel really stops it
    # all or nothing: the pending rules go in with one iptables-restore run
    records = faults.install_many([faults.Planned(ruleset, expires, faults.summary_of(rule.spec, ruleset))
                                   for rule, ruleset, _, expires in planned], scope)
    for (rule, ruleset, datestop, expires), record in zip(planned, records):
        spec = rule.spec
        rule.ruleset, rule.record, rule.expires_at, rule.state = ruleset, record, expires, "applied"
        lines.append(f"applied {spec.name} in {scope.describe()} until {_utc(datestop)} UTC "
                     f"({_human(spec.duration_s)}): {spec.action} {spec.match_text}")
    return Result("\n".join(lines))


@command("revert", "revert [NAME]", "take applied rules out of the kernel (all of this session's, or NAME)")
def _revert(shell: Shell, arg: str) -> Result:
    from kshock.apply import faults

    shell.expire()
    if not arg:
        names = shell.revert_all()
        return Result("reverted: " + ", ".join(names) if names else "nothing to revert")
    rule = shell.session.rule(arg)
    if rule is not None and rule.state == "applied":
        faults.remove(rule.record)
        rule.state = "reverted"
        return Result(f"reverted: {arg}")
    if shell.target.live:  # a fault of the same scope made elsewhere (kshock apply, another shell)
        for record in faults.records(shell.scope()):
            if record.name == arg:
                faults.remove(record)
                return Result(f"reverted: {arg} (not made by this shell)")
    active = ", ".join(r.spec.name for r in shell.session.active_rules()) or "none"
    raise UserError(f"no applied rule named {arg!r}", f"applied: {active}")


@command("save", "save FILE", "write the session's rules to a rule file (kshock apply/replay read it)")
def _save(shell: Shell, arg: str) -> Result:
    if not arg:
        raise UserError("save needs a file name", "e.g. save rules/shop.yaml")
    if not shell.session.rules:
        raise UserError("no rules to save", "write one with when EXPR do ACTION")
    text = render_rule_file([r.spec for r in shell.session.rules])
    try:
        with open(arg, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as error:
        raise UserError(f"cannot write {arg}: {error.strerror or error}", "check the path") from None
    return Result(f"saved {len(shell.session.rules)} rules to {arg}")


@command("load", "load FILE", "read a rule file; its rules become pending rules")
def _load(shell: Shell, arg: str) -> Result:
    from kshock.replay.coverage import load_rule_file

    if not arg:
        raise UserError("load needs a file name", "e.g. load rules/drop-client.yaml")
    specs = load_rule_file(arg)
    clash = [s.name for s in specs if shell.session.rule(s.name) is not None]
    if clash:
        raise UserError(f"the session already has rules named {', '.join(clash)}", "rename them in the file")
    compiled = [(spec, shell.compile(spec, shell.clock() + spec.duration_s)) for spec in specs]
    for spec, ruleset in compiled:
        shell.session.rules.append(ShellRule(spec, ruleset))
    return Result("\n".join(_describe_rule(spec, ruleset) for spec, ruleset in compiled))


@command("export", "export", "the rules as iptables-restore text (what apply loads)")
def _export(shell: Shell, arg: str) -> Result:
    from kshock.rules.render import render_restore

    rules = [r for r in shell.session.rules if r.state in ("pending", "applied")]
    if not rules:
        raise UserError("no rules to export", "write one with when EXPR do ACTION")
    blocks = []
    for rule in rules:
        ruleset = rule.ruleset if rule.state == "applied" else shell.compile(rule.spec, shell.clock() + rule.spec.duration_s)
        blocks.append(f"# kshock rule {rule.spec.name}: {rule.spec.action} {rule.spec.match_text}\n"
                      + render_restore(ruleset))
    return Result("".join(blocks).rstrip("\n"))


@command("replay", "replay", "coverage of the rules on the packets captured so far (emulated kernel)")
def _replay(shell: Shell, arg: str) -> Result:
    from kshock.replay.coverage import replay

    specs = [r.spec for r in shell.session.rules if r.state in ("pending", "applied")]
    if not specs:
        raise UserError("no rules to replay", "write one with when EXPR do ACTION")
    session = shell.session
    with tempfile.TemporaryDirectory(prefix="kshock-shell-") as folder:
        path = os.path.join(folder, "captured.pcap")
        with session.lock:
            packets = list(session.packets)
            linktype = session.linktype or 1
            forgotten = session.packets_dropped_from_memory
        if not packets:
            raise UserError("nothing captured yet", "wait for traffic, then replay")
        from kshock.capture.writer import write_pcap

        write_pcap(path, linktype, packets)
        report = replay(path, specs, session.ports, name="shell", topic_ids=session.topic_ids())
    text = report.render_text().rstrip("\n")
    if forgotten:
        text += f"\n(the oldest {forgotten} packets were no longer in memory)"
    return Result(text)


# -- the session -------------------------------------------------------------------------------

@command("help", "help [CMD | fields]", "the commands, one command in full, or the condition fields")
def _help(shell: Shell, arg: str) -> Result:
    if arg == "fields":
        return Result("fields of a condition (EXPR):\n" + describe_fields())
    if arg:
        entry = REGISTRY.get(arg.lower())
        if entry is None:
            raise UserError(f"no command {arg!r}", "help lists them")
        text = f"{entry.usage}\n  {entry.summary}"
        if entry.details:
            text += "\n  " + entry.details.replace("\n", "\n  ")
        return Result(text)
    width = max(len(c.usage) for c in REGISTRY.values())
    lines = [f"  {c.usage:<{width}}  {c.summary}" for c in REGISTRY.values()]
    lines.append("EXPR is a condition, e.g. api == Produce and client_id == \"shop\" (help fields); "
                 "Tab completes; Ctrl-C cancels the line")
    return Result("\n".join(lines))


@command("wait", "wait SECONDS", "let the capture run (for scripts)")
def _wait(shell: Shell, arg: str) -> Result:
    try:
        seconds = parse_seconds(arg)
    except ValueError:
        raise UserError(f"wait takes seconds, not {terminal_safe(repr(arg))}", "e.g. wait 2") from None
    if not 0 <= seconds <= 3600:
        raise UserError(f"wait {arg} is out of range", "use 0 to 3600 seconds")
    return Result(wait_s=seconds)


@command("quit", "quit [keep]", "leave (applied rules are reverted unless you say keep)")
def _quit(shell: Shell, arg: str) -> Result:
    if arg and arg != "keep":
        raise UserError(f"quit takes nothing or keep, not {arg!r}", "quit keep leaves applied rules active")
    return Result(quit=True, keep_faults=arg == "keep")


REGISTRY["exit"] = replace(REGISTRY["quit"], name="exit", usage="exit [keep]", summary="the same as quit")


# -- text --------------------------------------------------------------------------------------

def frame_header() -> str:
    return f"{'#':>6} {'time':<15} {'api':<22} {'corr':>7} {'client-id':<20} {'topics':<20} {'rec':>4} {'err':<6} latency"


def frame_line(number: int, frame: KafkaFrame) -> str:
    from kshock.replay.listing import frame_cells

    time_, _conn, api, corr, client, topics, _parts, records, errors, latency = frame_cells(frame)
    line = (f"{number:>6} {time_:<15} {_cut(api, 22):<22} {corr:>7} {_cut(client, 20):<20} {_cut(topics, 20):<20} "
            f"{records:>4} {_cut(errors, 6):<6} {latency}")
    if frame.kind == "malformed":
        line += f"  ! {terminal_safe(str(frame.error))}"
    return line.rstrip()


def _copy(tally: Tally) -> Tally:
    copy = Tally(tally.requests, tally.responses, tally.records)
    copy.latencies_ms.extend(tally.latencies_ms)
    return copy


def _no_frame(session: Session, number: int) -> str:
    if session.frame_count == 0:
        return "no frames captured yet"
    return f"there is no frame {number} — frames {session.first_number} to {session.frame_count} are kept"


def is_frame_number(text: str) -> bool:
    """A frame number: a whole number in ASCII decimal (str.isdigit takes "٣" and "²")."""
    return is_whole_number(text)


def _quote(text: str) -> str:
    from kshock.conditions.parse import quote

    return quote(text)


def _ms(value: float | None) -> str:
    return f"{'-':>9}" if value is None else f"{value:9.2f}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _clock(ts: float) -> str:
    from kshock.replay.listing import clock

    return clock(ts)


__all__ = ["REGISTRY", "Command", "Result", "Shell", "ShellTarget", "frame_header", "frame_line", "is_frame_number",
           "pick_condition"]
