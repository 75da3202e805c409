"""EDGE: active faults — apply, revert, expire, report. State lives under /run/kshock/faults/.

A fault is a RuleSet loaded into one network namespace (the host's, a named one, or a PID's),
which its state names by inode (see scope.py), so it is found again after its pid exited.
The state file is written before the rules go in and removed after they come out, so `status`
and `revert --all` work after a crash. Every rule also carries `-m time --datestop`, so an
expired fault stops acting even if nothing ever runs kshock again; kshock removes expired
chains at the start of its next command. A state file that does not read as a fault record,
field by field, is skipped with a warning (`damaged`); `revert --all` still finds its chains.

The faults of one namespace never share a connection-mark bit or a tc class slot: `Claims`
compiles each fault with the marks the namespace's other faults hold (their records, and the
kernel's own rules, kshock's or not) left out, and `install_many` checks again under a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kshock.apply import netfilter
from kshock.apply.scope import Scope, locate, same_namespace
from kshock.errors import OperationFailed, UserError
from kshock.host.run_dir import run_dir
from kshock.rules.kernel import Marks, RuleSet
from kshock.rules.spec import RuleSpec

STATE_MAX_BYTES = 4 << 20  # a state file holds one fault's rules: a few KB, 4 MiB is damage
_LAST_EPOCH = 4102444800.0  # 2100-01-01: any later time in a state file is damage
_MAX_SPAN = 24 * 3600.0 + 3600.0  # rulefile.MAX_DURATION_S plus slack: a record lasting longer is damage


@dataclass(slots=True)
class FaultRecord:
    name: str
    scope: Scope
    tables: dict[str, list[str]]  # table -> kshock chains
    created_at: float
    expires_at: float  # epoch seconds
    summary: dict = field(default_factory=dict)  # match, action, target, rules: for status
    tc: list[dict] = field(default_factory=list)  # qdiscs kshock added, to remove on revert
    restore: str = ""  # the iptables-restore text that was applied
    connmark_mask: int = 0  # the conntrack mark bits the fault's rules set and test (RuleSet.connmark_mask)

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    @property
    def marks(self) -> Marks:
        """The marks the fault holds in its namespace (a record from before the mask was kept:
        read from its rules)."""
        return Marks(self.connmark_mask, frozenset((entry["classid"] >> 8) & 0xFF for entry in self.tc)) | \
            marks_in_rules(self.restore)

    def to_json(self) -> dict:
        data = asdict(self)
        data["scope"] = {"name": self.scope.name, "pid": self.scope.pid,
                         "inode": list(self.scope.inode) if self.scope.inode else None}
        data["expires_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))
        return data


def utc_text(epoch: float) -> str:
    """The form `-m time --datestop` takes (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def kernel_end(expires: float) -> float:
    """When the kernel really stops a rule whose --datestop is utc_text(expires): xt_time has 1 s
    granularity and still matches during the datestop second, so at the next whole second."""
    return float(int(expires) + 1)


def human_duration(seconds: float) -> str:
    """4m05s, 1h02m, 9s: for countdowns and summaries."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def summary_of(specs: RuleSpec | list[RuleSpec], ruleset: RuleSet) -> dict:
    """What `status` shows of a fault: its match, action, target and number of kernel rules
    (for a fault of several rules, each rule's name and match)."""
    specs = specs if isinstance(specs, list) else [specs]
    if len(specs) == 1:
        match = specs[0].match_text
    else:
        match = f"{len(specs)} rules: " + "; ".join(f"{spec.name}: {spec.match_text}" for spec in specs)
    return {"match": match, "action": ", ".join(dict.fromkeys(str(spec.action) for spec in specs)),
            "target": ", ".join(dict.fromkeys(str(spec.target) for spec in specs)),
            "rules": sum(len(chain.rules) for chain in ruleset.chains)}


def faults_dir() -> Path:
    return run_dir() / "faults"


def _path(scope: Scope, name: str) -> Path:
    return faults_dir() / scope.key / f"{name}.json"


def save(record: FaultRecord) -> None:
    path = _path(record.scope, record.name)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_file()) and not discard_damaged(path):
        raise UserError(f"{path} is in the way of the fault's state file (not a regular file)", f"remove {path}")
    tmp = path.with_suffix(".tmp")
    if os.path.lexists(tmp) and not discard_damaged(tmp):
        raise UserError(f"{tmp} is in the way of the fault's state file", f"remove {tmp}")
    path.parent.mkdir(parents=True, exist_ok=True)  # discard_damaged may have taken an empty folder
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def forget(record: FaultRecord) -> None:
    path = _path(record.scope, record.name)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # only when empty: no other fault (nor a created-tables note) is left
    except OSError:
        pass


# -- reading state: every field checked ------------------------------------------------------

class _Damaged(Exception):
    """A state file that is not a fault record; the text says what is wrong with it."""


def records(scope: Scope | None = None) -> list[FaultRecord]:
    """The faults recorded (in `scope`'s namespace only, when given); damaged files are skipped."""
    found = scan()[0]
    return found if scope is None else [record for record in found if same_namespace(record.scope, scope)]


def damaged() -> list[tuple[Path, str]]:
    """(state file, what is wrong with it) for every state file that is skipped."""
    return scan()[1]


def scan() -> tuple[list[FaultRecord], list[tuple[Path, str]]]:
    """Every state file, read and checked field by field: (fault records, damaged files)."""
    base = faults_dir()
    if not base.is_dir():
        return [], []
    found, bad = [], []
    for path in sorted(base.glob("*/*.json")):
        try:
            record = _read(path)
        except _Damaged as error:
            bad.append((path, str(error)))
            continue
        except OSError:  # removed meanwhile (another kshock command reverted it)
            continue
        found.append(record)
    return found, bad


def _read(path: Path) -> FaultRecord:
    if path.is_symlink() or not path.is_file():
        raise _Damaged("not a regular file")
    if path.stat().st_size > STATE_MAX_BYTES:
        raise _Damaged(f"larger than {STATE_MAX_BYTES >> 20} MiB")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _Damaged(f"not JSON ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise _Damaged(f"a JSON {type(data).__name__}, not an object")
    for required in ("name", "scope", "tables", "created_at", "expires_at"):
        if required not in data:
            raise _Damaged(f"no {required!r}")
    from kshock.rules.rulefile import NAME

    name = data["name"]
    if not isinstance(name, str) or not NAME.match(name):
        raise _Damaged("'name' is not a fault name")
    record = FaultRecord(name=name, scope=_scope_of(data["scope"]), tables=_tables_of(data["tables"]),
                         created_at=_epoch(data, "created_at"), expires_at=_epoch(data, "expires_at"),
                         summary=_summary_of(data.get("summary", {})), tc=_tc_of(data.get("tc", [])),
                         restore=_text(data, "restore"), connmark_mask=_mask(data.get("connmark_mask", 0)))
    if record.expires_at - record.created_at > _MAX_SPAN:
        raise _Damaged("'expires_at' is further from 'created_at' than a fault lasts (at most 24h)")
    if (path.parent.name, path.stem) != (record.scope.key, record.name):
        raise _Damaged(f"its place ({path.parent.name}/{path.name}) is not its fault's "
                       f"({record.scope.key}/{record.name}.json)")
    return record


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scope_of(value: object) -> Scope:
    if not isinstance(value, dict) or set(value) - {"name", "pid", "inode"}:
        raise _Damaged("'scope' is not {name, pid, inode}")
    name, pid, inode = value.get("name"), value.get("pid"), value.get("inode")
    from kshock.host import netns

    if name is not None and not netns.valid_name(name):
        raise _Damaged("'scope.name' is not a namespace name")
    if pid is not None and not (_is_int(pid) and 0 < pid < 1 << 22):
        raise _Damaged("'scope.pid' is not a process id")
    if name is not None and pid is not None:
        raise _Damaged("'scope' names a namespace and a pid")
    if inode is not None:
        if not (isinstance(inode, list) and len(inode) == 2 and all(_is_int(n) and 0 <= n < 1 << 64 for n in inode)):
            raise _Damaged("'scope.inode' is not [device, inode]")
        inode = (inode[0], inode[1])
    return Scope(name=name, pid=pid, inode=inode)


def _tables_of(value: object) -> dict[str, list[str]]:
    from kshock.rules.audit import CHAIN

    if not isinstance(value, dict) or not set(value) <= set(netfilter.TABLES):
        raise _Damaged(f"'tables' is not {{table: chains}} for tables {', '.join(netfilter.TABLES)}")
    for chains in value.values():
        if not isinstance(chains, list) or not all(isinstance(c, str) and CHAIN.match(c) for c in chains):
            raise _Damaged("'tables' names a chain that is not kshock's (KSHOCK-*)")
    return {table: list(chains) for table, chains in value.items()}


def _epoch(data: Mapping, key: str) -> float:
    value = data[key]
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= _LAST_EPOCH):
        raise _Damaged(f"{key!r} is not a time (seconds since 1970)")
    return float(value)


def _summary_of(value: object) -> dict:
    if not isinstance(value, dict):
        raise _Damaged("'summary' is not an object")
    return value


def _tc_of(value: object) -> list[dict]:
    from kshock.rules.compile import TC_ROOT_MAJOR
    from kshock.rules.audit import INTERFACE

    if not isinstance(value, list):
        raise _Damaged("'tc' is not a list")
    for entry in value:
        if not (isinstance(entry, dict) and isinstance(entry.get("interface"), str)
                and INTERFACE.match(entry["interface"]) and entry.get("what") == "class"
                and _is_int(entry.get("classid")) and entry["classid"] >> 16 == TC_ROOT_MAJOR
                and entry["classid"] & 0xFFFF and entry.get("kind") in ("tbf", "netem")):
            raise _Damaged("'tc' holds an entry that is not one of kshock's htb classes")
    return value


def _text(data: Mapping, key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise _Damaged(f"{key!r} is not text")
    return value


def _mask(value: object) -> int:
    if not (_is_int(value) and 0 <= value <= 0xFFFFFFFF):
        raise _Damaged("'connmark_mask' is not a 32-bit mask")
    return value


def damaged_scope(path: Path) -> Scope | None:
    """The namespace a damaged state file's folder names, when it still leads somewhere
    (so `revert --all` looks for its chains there too)."""
    from kshock.host import netns

    found = re.fullmatch(r"netns-(.+?)(?:-(\d+))?|pid-(\d+)(?:-(\d+))?|host", path.parent.name)
    if found is None:
        return None
    if found.group(0) == "host":
        return Scope().pinned()
    candidates = []
    if found.group(1) is not None:  # the name may itself end in -digits: try both readings
        candidates.append(found.group(1) + (f"-{found.group(2)}" if found.group(2) else ""))
        if found.group(2):
            candidates.append(found.group(1))
        for name in candidates:
            if netns.exists(name):
                return Scope(name=name).pinned()
        return None
    pid = int(found.group(3))
    if pid <= 0 or pid >= 1 << 22 or not os.path.exists(f"/proc/{pid}/ns/net"):
        return None
    here = Scope(pid=pid).pinned()
    return here if found.group(4) is None or (here.inode and here.inode[1] == int(found.group(4))) else None


# -- marks: never shared within a namespace --------------------------------------------------

_CONNMARK_TEST = re.compile(r"-m connmark (?:! )?--mark (0x[0-9a-fA-F]+|\d+)(?:/(0x[0-9a-fA-F]+|\d+))?")
_CONNMARK_TARGET = re.compile(r"-j CONNMARK\b(.*)")
_CLASSIFY = re.compile(r"--set-class 4b53:([0-9a-fA-F]+)", re.I)
_ALL = 0xFFFFFFFF


def marks_in_rules(text: str) -> Marks:
    """The conntrack mark bits that iptables rules (iptables-save or -restore text) set or test,
    and the htb class slots kshock's CLASSIFY rules pick. A rule that writes the whole mark
    (`--save-mark`, `--set-mark V`) holds every bit: kshock then has none to give."""
    connmark, slots = 0, set()
    for line in text.splitlines():
        if not line.startswith("-A "):
            continue
        for _, mask in _CONNMARK_TEST.findall(line):
            connmark |= int(mask, 0) if mask else _ALL
        target = _CONNMARK_TARGET.search(line)
        if target:
            connmark |= _ctmark_written(target.group(1).split())
        for minor in _CLASSIFY.findall(line):
            slots.add((int(minor, 16) >> 8) & 0xFF)
    return Marks(connmark & _ALL, frozenset(slots))


def _ctmark_written(words: list[str]) -> int:
    """The conntrack mark bits a CONNMARK target's options write — or read, for --restore-mark:
    a rule that copies them into the packet mark uses them as much as one that sets them."""
    def value_of(option: str) -> str:
        at = words.index(option)
        return words[at + 1] if at + 1 < len(words) else ""

    def number(text: str) -> int:
        try:
            return int(text, 0) & _ALL
        except ValueError:
            return _ALL

    if "--save-mark" in words or "--restore-mark" in words:
        return number(value_of("--ctmask")) if "--ctmask" in words else _ALL
    for option in ("--set-xmark", "--set-mark"):
        if option in words:
            _, slash, mask = value_of(option).partition("/")
            return number(mask) if slash else _ALL
    if "--and-mark" in words:
        return ~number(value_of("--and-mark")) & _ALL
    for option in ("--or-mark", "--xor-mark"):
        if option in words:
            return number(value_of(option))
    return _ALL  # an option we do not know: assume it touches every bit


def marks_in_use(scope: Scope, backend: netfilter.Backend | None = None) -> Marks:
    """The marks held in `scope`'s namespace: by the faults recorded there and (as root) by
    every rule the namespace holds, kshock's or another program's."""
    held = Marks()
    for record in records(scope):
        held |= record.marks
    if os.geteuid() == 0:
        where = locate(scope.pinned())
        if where is not None:
            backend = backend or netfilter.detect_backend()
            result = subprocess.run(where.argv([backend.save]), capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                held |= marks_in_rules(result.stdout)
    return held


def holders(scope: Scope, marks: Marks) -> list[str]:
    """The faults in `scope`'s namespace that hold any of `marks`."""
    return [record.name for record in records(scope) if record.marks & marks]


class Claims:
    """Compiles the faults of one command for one namespace, each with the marks the namespace's
    other faults — and the ones this command compiled before it — hold left out."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.taken = marks_in_use(scope)

    def compile(self, specs: list[RuleSpec], name: str, *, expires_at: str | None,
                topic_ids: Mapping[str, bytes] | None = None) -> RuleSet:
        from kshock.rules.compile import MarksExhausted, compile_rules

        try:
            ruleset = compile_rules(specs, name, expires_at=expires_at, topic_ids=topic_ids, taken=self.taken)
        except MarksExhausted as error:
            names = holders(self.scope, self.taken)
            raise UserError(f"{error.message} in {self.scope.describe()}"
                            + (f" (faults {', '.join(names)})" if names else ""), error.hint) from None
        self.taken |= ruleset.marks
        return ruleset


def _describe(marks: Marks) -> str:
    parts = []
    if marks.connmark:
        parts.append(f"connection-mark bits 0x{marks.connmark:x}")
    if marks.tc_slots:
        parts.append("tc class slot(s) " + ", ".join(f"4b53:{slot:02x}xx" for slot in sorted(marks.tc_slots)))
    return " and ".join(parts)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One kshock command at a time installs faults (the marks it read must still be free)."""
    base = faults_dir()
    base.mkdir(parents=True, exist_ok=True)
    path = base / ".lock"
    try:  # never blocks on a FIFO, never follows a link
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise UserError(f"cannot open the lock file {path}: {error.strerror or error}",
                        f"remove {path} (kshock re-creates it as a plain file)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"the lock file {path} is not a regular file",
                            f"remove {path} (kshock re-creates it as a plain file)")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def discard_damaged(path: Path) -> bool:
    """Remove a damaged state entry (a file, a link, a FIFO, an empty folder); a folder that is
    not empty is left alone. False when it could not be removed."""
    try:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    except OSError:
        return False
    try:
        path.parent.rmdir()
    except OSError:
        pass
    return True


# -- install ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Planned:
    """One fault to install: its rule set, when the kernel ends it, what status shows."""

    ruleset: RuleSet
    expires_at: float  # epoch seconds
    summary: dict
    host: str | None = None  # picks the interface of a tc fault that names none (the route to it)


def install(ruleset: RuleSet, scope: Scope, expires_at: float, summary: dict, host: str | None = None) -> FaultRecord:
    """Load one rule set (and its tc classes) and record it; see install_many."""
    return install_many([Planned(ruleset, expires_at, summary, host)], scope)[0]


def install_many(planned: list[Planned], scope: Scope) -> list[FaultRecord]:
    """Load several faults together and record each; on any failure none of them stays behind.

    Order: the state files (so a crash from here on is found by `revert --all`), then the tc
    classes (harmless until something classifies into them), then every rule set's iptables
    rules in one iptables-restore run (one transaction per table). Refused when a rule set
    would share a connection-mark bit or tc class slot with a fault of the namespace (compile
    with `Claims` to get free ones) or with another rule set of the same command."""
    if not planned:
        return []
    scope = scope.pinned()
    with _locked():
        return _install_locked(planned, scope)


def _install_locked(planned: list[Planned], scope: Scope) -> list[FaultRecord]:
    backend = netfilter.detect_backend()
    from kshock.rules.render import render_restore

    # before any state file is written: one would overwrite the active fault's of the same name
    active_records = records(scope)
    active = {record.name for record in active_records}
    for item in planned:
        if item.ruleset.name in active:
            raise UserError(f"a fault named {item.ruleset.name!r} is already active in {scope.describe()}",
                            f"revert it first (kshock revert {item.ruleset.name}) or choose another name")
    _check_chain_names(planned, active_records, scope)
    netfilter.check_free(backend, scope, [item.ruleset for item in planned])
    taken = marks_in_use(scope, backend=backend)
    for item in planned:
        shared = item.ruleset.marks & taken
        if shared:
            names = holders(scope, shared) or [p.ruleset.name for p in planned if p.ruleset.marks & shared
                                               and p is not item]
            raise UserError(f"fault {item.ruleset.name!r} would share {_describe(shared)} with "
                            + (f"fault(s) {', '.join(names)}" if names else "rules already")
                            + f" in {scope.describe()}, and two faults must never act on each other's connections",
                            "apply it again: kshock picks free marks from what is active then")
        taken |= item.ruleset.marks
    made, plans = [], []
    for item in planned:
        ruleset = item.ruleset
        record = FaultRecord(name=ruleset.name, scope=scope, tables={ruleset.table: list(ruleset.chain_names)},
                             created_at=time.time(), expires_at=item.expires_at, summary=item.summary,
                             connmark_mask=ruleset.connmark_mask)
        record.restore = render_restore(ruleset)
        if ruleset.traffic_control:
            from kshock.apply import tc

            mine = [tc.plan_from(control, control.interface or tc.resolve_interface(scope, item.host))
                    for control in ruleset.traffic_control]
            record.tc = [{"interface": plan.interface, "what": "class", "classid": plan.classid, "kind": plan.kind}
                         for plan in mine]
            record.summary = {**item.summary, "tc": [plan.describe for plan in mine]}
            plans += mine
        made.append(record)
    present = netfilter.tables(backend, scope)
    for table in dict.fromkeys(item.ruleset.table for item in planned):
        if table not in present:
            _note_created(scope, table)  # kshock's rules bring the table; the last one out takes it away
    saved: list[FaultRecord] = []
    try:
        for record in made:  # first, so a crash between here and the end is still found by revert --all
            save(record)
            saved.append(record)
        if plans:
            from kshock.apply import tc

            tc.install(scope, plans)
        try:
            netfilter.load_many(backend, scope, [item.ruleset for item in planned])
        except BaseException:
            if plans:
                tc.remove(scope, [entry for record in made for entry in record.tc])
            raise
    except BaseException:
        for record in saved:
            forget(record)
        _drop_created(backend, scope)
        raise
    return made


def _check_chain_names(planned: list[Planned], active: list[FaultRecord], scope: Scope) -> None:
    """Two faults never share a chain (reverting one would take the other's rules out, or the
    restore would put both into one chain): refused among the faults of this command and
    against the faults active in the namespace."""
    owner: dict[str, str] = {}
    for item in planned:
        for chain in item.ruleset.chain_names:
            other = owner.setdefault(chain, item.ruleset.name)
            if other != item.ruleset.name:
                raise UserError(f"faults {other!r} and {item.ruleset.name!r} would share chain {chain}",
                                "rename one of them (their names give their chains' names)")
    for record in active:
        for chains in record.tables.values():
            for chain in chains:
                if chain in owner:
                    raise UserError(f"fault {owner[chain]!r} would use chain {chain}, which active fault "
                                    f"{record.name!r} holds in {scope.describe()}",
                                    f"rename {owner[chain]!r}, or revert {record.name!r} first "
                                    f"(kshock revert {record.name})")


# -- remove ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Removal:
    """What reverting one fault did: `where` its namespace was found (None: nothing holds it
    any more, so the kernel freed it and its rules with it), and what came out of the kernel."""

    record: FaultRecord
    where: Scope | None
    removed: tuple[str, ...] = ()

    @property
    def gone(self) -> bool:
        return self.where is None


def remove(record: FaultRecord) -> list[str]:
    """Take the fault's chains (and qdiscs) out; idempotent."""
    return remove_many([record])


def remove_many(faults: list[FaultRecord]) -> list[str]:
    """Take several faults out, one iptables-restore run per namespace and table; idempotent."""
    return [item for removal in revert_many(faults) for item in removal.removed]


def revert_many(faults: list[FaultRecord]) -> list[Removal]:
    """Take faults out of the kernel wherever their namespace is now, check that their chains
    are gone, and forget them; a fault whose namespace nothing holds any more is forgotten as
    gone (its rules went with the namespace). Raises OperationFailed if chains stay behind."""
    outcomes: list[Removal] = []
    groups: dict[tuple, list[FaultRecord]] = {}
    for record in faults:
        groups.setdefault((record.scope.key, record.scope.inode), []).append(record)
    for group in groups.values():
        scope = group[0].scope
        where = locate(scope)
        if where is not None:
            try:
                outcomes += _remove_group(group, scope, where)
                continue
            except (UserError, OSError):
                if locate(scope) is not None:
                    raise
                # the namespace went away while we worked in it: its rules went with it
        for record in group:
            forget(record)
            outcomes.append(Removal(record, None))
        if not [r for r in records() if r.scope.key == scope.key]:
            _forget_created(scope)
    return outcomes


def _remove_group(group: list[FaultRecord], scope: Scope, where: Scope) -> list[Removal]:
    """Remove the faults of one namespace (reached at `where`), check, and forget them."""
    outcomes: list[Removal] = []
    backend = netfilter.detect_backend()
    tables: dict[str, set[str]] = {}
    for record in group:
        for table, chains in record.tables.items():
            tables.setdefault(table, set()).update(chains)
    removed: set[str] = set()
    for table, chains in tables.items():
        removed.update(netfilter.remove_chains(backend, where, table, chains))
    left = {table: netfilter.chains(backend, where, table) for table in tables}  # what the kernel holds now
    for record in group:
        still = sorted(chain for table, chains in record.tables.items() for chain in chains
                       if chain in left.get(table, set()))
        if still:
            raise OperationFailed(f"fault {record.name!r}: {', '.join(still)} still in {where.describe()} "
                                  "after removing it", "kshock revert --all --netns/--pid removes every kshock chain")
    for record in group:
        mine = [chain for chains in record.tables.values() for chain in chains if chain in removed]
        if record.tc:
            from kshock.apply import tc

            mine += tc.remove(where, record.tc)
        forget(record)
        outcomes.append(Removal(record, where, tuple(mine)))
    _drop_created(backend, scope, where)
    return outcomes


def remove_leftovers(scope: Scope) -> list[str]:
    """Every KSHOCK-* chain and kshock root htb (handle 4b53:) in the scope, with or without a
    state file (crashed runs)."""
    from kshock.apply import tc

    scope = scope.pinned()
    where = locate(scope)
    if where is None:
        return []
    backend = netfilter.detect_backend()
    removed = []
    for table, chains in netfilter.kshock_chains(backend, where).items():
        removed += netfilter.remove_chains(backend, where, table, chains)
    removed += tc.remove_leftovers(where)
    _drop_created(backend, scope, where)
    return removed


def _created_path(scope: Scope) -> Path:
    return faults_dir() / scope.key / "created-tables"


_CREATED_MAX = 4096  # the note names at most two tables


def _read_created(scope: Scope) -> set[str]:
    """The tables kshock noted it created in `scope`: filter and mangle only, read only from a
    regular file of a few bytes (never a FIFO, a device or a link to one)."""
    path = _created_path(scope)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return set()
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _CREATED_MAX:
            return set()
        data = os.read(fd, _CREATED_MAX)
    except OSError:
        return set()
    finally:
        os.close(fd)
    return {word for word in data.decode("ascii", "replace").split() if word in netfilter.TABLES}


def _write_created(scope: Scope, tables: set[str]) -> None:
    path = _created_path(scope)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
        discard_damaged(path)  # a link, FIFO or folder in its place is never written through
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("created-tables.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(sorted(tables & set(netfilter.TABLES))) + "\n")
    os.replace(tmp, path)


def _note_created(scope: Scope, table: str) -> None:
    if table not in netfilter.TABLES:
        return
    _write_created(scope, _read_created(scope) | {table})


def _drop_created(backend: netfilter.Backend, scope: Scope, where: Scope | None = None) -> None:
    """Delete the tables kshock created in `scope` (reached at `where`) once no kshock fault uses
    them and nothing else (another program's sets, chains or rules) is in them."""
    where = where or scope
    path = _created_path(scope)
    if not os.path.lexists(path):
        return
    noted = _read_created(scope)
    in_use = {table for record in records() if record.scope.key == scope.key for table in record.tables}
    present = netfilter.tables(backend, where) if noted else set()
    left = set()
    for table in noted:
        if table in present and (table in in_use or not netfilter.drop_if_empty(backend, where, table)):
            left.add(table)
    if left:
        _write_created(scope, left)
        return
    _forget_created(scope)


def _forget_created(scope: Scope) -> None:
    """The note of tables kshock created goes, and the scope's state folder once it is empty."""
    path = _created_path(scope)
    if os.path.lexists(path):
        discard_damaged(path)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def collect_expired(now: float | None = None) -> list[FaultRecord]:
    """Remove faults whose time is up (the kernel already stopped applying them). A namespace
    where that fails keeps its faults' state for the next command (their rules are inert): the
    command that only collects on its way must not fail for it."""
    groups: dict[tuple, list[FaultRecord]] = {}
    for record in records():
        if record.seconds_left(now) <= 0:
            groups.setdefault((record.scope.key, record.scope.inode), []).append(record)
    done = []
    for group in groups.values():
        try:
            revert_many(group)
        except (UserError, OSError):
            continue
        done += group
    return done
