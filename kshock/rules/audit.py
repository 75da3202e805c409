"""PURE: what kernel text kshock may produce, and a check of every text before it is loaded.

kshock runs as root and turns user text into netfilter rules. Two defences, both here:
- `check_token`: every argument the renderers write is checked against a strict allowlist for
  its option (user strings reach the kernel only as hex; comments carry only validated names).
- `audit_restore` / `audit_nft`: a whole iptables-restore (or nft) text is parsed and must touch
  only kshock's own chains (KSHOCK-*) and table, jump into them only from the built-in chains,
  and carry the dead-man switch (`-m time --datestop`, `meta time <`) on every rule it adds.
Whatever fails raises UnsafeRuleText before anything reaches the kernel; nothing is repaired.
"""

from __future__ import annotations

import re

from kshock.errors import OperationFailed

CHAIN_PREFIX = "KSHOCK-"
TABLES = ("filter", "mangle")
BUILTINS = ("INPUT", "OUTPUT", "FORWARD")  # the only chains kshock jumps from
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # a rule or rule set name: ASCII, so it is safe in a comment
RULE_NAME = re.compile(rf"{NAME}\Z")
CHAIN = re.compile(rf"{CHAIN_PREFIX}[A-Za-z0-9][A-Za-z0-9_.-]{{0,20}}\Z")  # 28 characters at most
# kshock:<set>, kshock:<set>/<rule>, and kshock's own rules: /identity:0x<bit>, /api:<key>
# (a ':' never occurs in a rule name, so these cannot be mistaken for one).
COMMENT = re.compile(rf"kshock:{NAME}(?:/(?:{NAME}|identity:0x[0-9a-f]{{1,8}}|api:[0-9]{{1,5}}))?\Z")
# A plain argument: an option, a number, an address, a mark, a time, an interface, flags.
TOKEN = re.compile(r"[A-Za-z0-9_.:/,=@+-]{1,64}\Z")
U32 = re.compile(r"[0-9A-Fa-fx&@<>=:,]+(?: && [0-9A-Fa-fx&@<>=:,]+)*\Z")
HEX_STRING = re.compile(r"\|(?:[0-9a-f]{2})+\|\Z")
DATESTOP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\Z")
INTERFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\+?\Z")
ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\Z")
# The value an option takes, when it is not a plain TOKEN.
_BY_OPTION = {"--u32": U32, "--hex-string": HEX_STRING, "--comment": COMMENT, "--datestop": DATESTOP,
              "-i": INTERFACE, "-o": INTERFACE, "-s": ADDRESS, "-d": ADDRESS}
_MATCHES = ("tcp", "connmark", "u32", "string", "statistic", "time", "comment")
_TERMINAL = {"filter": ("DROP", "REJECT", "RETURN", "CONNMARK"),
             # the traffic-control chains classify then ACCEPT (exactly those two rules, see
             # _Block.close), which ends only the mangle table
             "mangle": ("DROP", "RETURN", "CONNMARK", "CLASSIFY", "ACCEPT")}
_TARGET_ARGS = {
    "REJECT": re.compile(r"(?: --reject-with "
                         r"(?:tcp-reset|icmp-(?:port|host|net)-unreachable|icmp-admin-prohibited))?\Z"),
    "CONNMARK": re.compile(r" --set-xmark (?P<value>0x[0-9a-f]{1,8})/(?P<mask>0x[0-9a-f]{1,8})\Z"),
    "CLASSIFY": re.compile(r" --set-class [0-9a-f]{1,4}:[0-9a-f]{1,4}\Z"),
}
# kshock's connection-mark bits (compile.CONNMARK_SPACE): a mark outside them is not kshock's.
MARK_SPACE = 0x00FFFF00
_MARK = re.compile(r"(0x[0-9a-f]{1,8})/(0x[0-9a-f]{1,8})\Z")
_PORT = re.compile(r"\d{1,5}\Z")
_SMALL = re.compile(r"\d{1,5}\Z")
_FLAGS = re.compile(r"(?:FIN|SYN|RST|PSH|ACK|URG|ECE|CWR|ALL|NONE)(?:,(?:FIN|SYN|RST|PSH|ACK|URG|ECE|CWR|ALL|NONE))*\Z")
_PROBABILITY = re.compile(r"\d(?:\.\d{1,12})?(?:e-\d{1,2})?\Z")
# Every option kshock writes (and iptables-save prints back), where it may stand and what value
# patterns it takes (one per value); anything else — `--match`, `--modprobe`, `-c`, `!`, a value
# that fails its pattern, however it starts — is refused.
_TOP_OPTIONS = {"-p": (re.compile(r"tcp\Z"),), "-s": (ADDRESS,), "-d": (ADDRESS,), "-i": (INTERFACE,),
                "-o": (INTERFACE,)}
_MATCH_OPTIONS = {
    "tcp": {"--sport": (_PORT,), "--dport": (_PORT,), "--tcp-flags": (_FLAGS, _FLAGS)},
    "connmark": {"--mark": (_MARK,)},
    "u32": {"--u32": (U32,)},
    "string": {"--algo": (re.compile(r"kmp\Z"),), "--from": (_SMALL,), "--to": (_SMALL,),
               "--hex-string": (HEX_STRING,)},
    "statistic": {"--mode": (re.compile(r"(?:random|nth)\Z"),), "--probability": (_PROBABILITY,),
                  "--every": (_SMALL,), "--packet": (_SMALL,)},
    "time": {"--datestop": (DATESTOP,)},
    "comment": {"--comment": (COMMENT,)},
}
# options a match must carry (time: exactly its --datestop, the dead-man switch)
_MATCH_REQUIRED = {"connmark": {"--mark"}, "u32": {"--u32"}, "time": {"--datestop"}, "comment": {"--comment"},
                   "string": {"--algo", "--from", "--to", "--hex-string"}, "statistic": {"--mode"}}
# A restore line's words: double-quoted (iptables-save escapes \" and \\ inside) or bare.
_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"]+)')
_HINT = "nothing was loaded; this is a kshock bug, please report it with the rule that caused it"


class UnsafeRuleText(OperationFailed):
    """Rule text that would touch more than kshock's own chains, or carries an unsafe value."""

    def __init__(self, problem: str, line: str = "") -> None:
        where = f" in `{_show(line)}`" if line else ""
        super().__init__(f"refusing rule text: {problem}{where}", _HINT)


def check_token(arg: str, option: str = "") -> str:
    """`arg` if it is safe as the value of `option` (or as a plain word), else UnsafeRuleText."""
    pattern = _BY_OPTION.get(option, TOKEN)
    if not isinstance(arg, str) or not pattern.match(arg):
        raise UnsafeRuleText(f"{_show(arg)} is not a valid {option or 'argument'} value")
    return arg


def check_chain(name: str) -> str:
    if not CHAIN.match(name):
        raise UnsafeRuleText(f"{_show(name)} is not a kshock chain name")
    return name


# -- iptables-restore ------------------------------------------------------------------------

def audit_restore(text: str, *, require_expiry: bool = True, revert: bool = False) -> None:
    """Raise UnsafeRuleText unless `text` (for `iptables-restore --noflush`) only declares and
    fills KSHOCK-* chains, adds jumps into them from INPUT/OUTPUT/FORWARD, deletes such jumps,
    and flushes/deletes KSHOCK-* chains; each table once, one COMMIT each, nothing else.
    Every rule word is checked against the options kshock writes (see _MATCH_OPTIONS).
    With `revert` (text on the way out), only -D, -F and -X lines are allowed."""
    _text_shape(text, tabs=False)
    seen_tables: set[str] = set()
    table = None
    for line in text[:-1].split("\n"):
        if table is None:
            if not line.startswith("*") or line[1:] not in TABLES:
                raise UnsafeRuleText("a line outside a `*filter` or `*mangle` block", line)
            table = line[1:]
            if table in seen_tables:
                raise UnsafeRuleText(f"table {table} appears twice", line)
            seen_tables.add(table)
            block = _Block(table)
        elif line == "COMMIT":
            block.close()
            table = None
        else:
            block.line(line, require_expiry, revert)
    if table is not None:
        raise UnsafeRuleText(f"the {table} block has no COMMIT")
    if not seen_tables:
        raise UnsafeRuleText("no table block")


class _Block:
    """One `*table ... COMMIT` block, checked line by line."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.declared: set[str] = set()
        self.rules = False
        self.jumps_deleted: list[tuple[str, str]] = []  # (target, line)
        self.removed: set[str] = set()  # chains this block deletes (-X)
        self.targets: dict[str, list[str]] = {}  # chain -> the targets of its rules, in order

    def line(self, line: str, require_expiry: bool, revert: bool = False) -> None:
        if line.startswith(":"):
            if revert:
                raise UnsafeRuleText("text that removes kshock's rules declares no chain (only -D, -F, -X)", line)
            found = re.fullmatch(r":(\S+) - \[0:0\]", line)
            if not found or not CHAIN.match(found.group(1)):
                raise UnsafeRuleText("only KSHOCK-* chains may be declared (`:KSHOCK-x - [0:0]`)", line)
            if self.rules:
                raise UnsafeRuleText("a chain declared after the rules", line)
            self.declared.add(found.group(1))
            return
        self.rules = True
        words = restore_words(line)
        op = words[0]
        if op in ("-F", "-X"):
            if len(words) != 2 or not CHAIN.match(words[1]):
                raise UnsafeRuleText(f"{op} may name only one KSHOCK-* chain", line)
            if op == "-X":
                self.removed.add(words[1])
            return
        if op not in ("-A", "-D") or len(words) < 2:
            raise UnsafeRuleText(f"{_show(op)} is not an operation kshock uses (only -A, -D, -F, -X)", line)
        chain, args = words[1], words[2:]
        if op == "-A" and revert:
            raise UnsafeRuleText("text that removes kshock's rules adds none (only -D, -F, -X)", line)
        target, target_args = _target(args, line)
        _check_rule_args(args[:args.index("-j")], line)
        if op == "-D":
            if target_args:
                raise UnsafeRuleText("a jump takes no target options", line)
            # a revert deletes the jumps into the chains it removes, and nothing else
            if chain not in BUILTINS or not CHAIN.match(target):
                raise UnsafeRuleText("-D may remove only a jump from INPUT/OUTPUT/FORWARD into a KSHOCK-* chain",
                                     line)
            self.jumps_deleted.append((target, line))
            return
        if require_expiry and not _has_datestop(args):
            raise UnsafeRuleText("a rule without `-m time --datestop` (the dead-man switch)", line)
        if chain in BUILTINS:
            if target not in self.declared or target_args:
                raise UnsafeRuleText(f"a rule in {chain} may only jump into a KSHOCK-* chain this text declares",
                                     line)
            return
        if chain not in self.declared:
            raise UnsafeRuleText(f"-A into {_show(chain)}, which this text does not declare (kshock fills only "
                                 "its own new chains)", line)
        if target in self.declared:
            if target_args:
                raise UnsafeRuleText("a jump takes no target options", line)
            return
        if target not in _TERMINAL[self.table]:
            raise UnsafeRuleText(f"target {_show(target)} is not allowed in the {self.table} table", line)
        found = _TARGET_ARGS.get(target, re.compile(r"\Z")).match("".join(" " + a for a in target_args))
        if not found:
            raise UnsafeRuleText(f"unexpected options for -j {target}", line)
        if target == "CONNMARK" and not _kshock_mark(found.group("value"), found.group("mask")):
            raise UnsafeRuleText(f"-j CONNMARK may set only kshock's mark bits (0x{MARK_SPACE:08x}), "
                                 "each as BIT/BIT", line)
        self.targets.setdefault(chain, []).append(target)

    def close(self) -> None:
        for chain, targets in self.targets.items():
            # ACCEPT only as kshock's traffic-control chains write it: classify, then accept
            if "ACCEPT" in targets and targets != ["CLASSIFY", "ACCEPT"]:
                raise UnsafeRuleText(f"-j ACCEPT in {chain}, which is not a chain of exactly "
                                     "`-j CLASSIFY` then `-j ACCEPT`")
        for target, line in self.jumps_deleted:
            if target not in self.removed:
                raise UnsafeRuleText(f"-D of a jump into {target}, which this text does not remove", line)


def _target(args: list[str], line: str) -> tuple[str, list[str]]:
    """The rule's one `-j TARGET` and the options after it (always last in kshock's rules)."""
    if "-g" in args or "--goto" in args or "--jump" in args:
        raise UnsafeRuleText("only `-j` jumps are allowed", line)
    if args.count("-j") != 1 or args.index("-j") == len(args) - 1:
        raise UnsafeRuleText("a rule needs exactly one `-j TARGET`", line)
    at = args.index("-j")
    return args[at + 1], args[at + 2:]


def _check_rule_args(args: list[str], line: str) -> None:
    """The words of a rule before its `-j`: only options kshock writes, each where it belongs
    (a match's options right after its `-m`), at most once, each value against its own pattern."""
    i, match, seen, used = 0, None, set(), set()

    def finish() -> None:
        missing = _MATCH_REQUIRED.get(match, set()) - used if match else set()
        if missing:
            raise UnsafeRuleText(f"-m {match} without {', '.join(sorted(missing))}", line)

    while i < len(args):
        option = args[i]
        if option == "-m":
            finish()
            if i + 1 >= len(args) or args[i + 1] not in _MATCHES:
                raise UnsafeRuleText(f"match `{_show(args[i + 1] if i + 1 < len(args) else '')}` is not one "
                                     "kshock uses", line)
            match, used = args[i + 1], set()
            if ("-m", match) in seen and match != "u32":  # kshock repeats only -m u32
                raise UnsafeRuleText(f"-m {match} twice", line)
            seen.add(("-m", match))
            i += 2
            continue
        patterns = _TOP_OPTIONS.get(option)
        if patterns is not None:
            finish()
            match = None
            if option in seen:
                raise UnsafeRuleText(f"{option} twice", line)
            seen.add(option)
        else:
            patterns = _MATCH_OPTIONS.get(match, {}).get(option) if match else None
            if patterns is None:
                raise UnsafeRuleText(f"{_show(option)} is not an option kshock writes"
                                     + (f" (after -m {match})" if match else ""), line)
            if option in used:
                raise UnsafeRuleText(f"{option} twice", line)
            used.add(option)
        values = args[i + 1:i + 1 + len(patterns)]
        if len(values) != len(patterns):
            raise UnsafeRuleText(f"{option} without its value", line)
        for value, pattern in zip(values, patterns):
            if not pattern.match(value):
                raise UnsafeRuleText(f"{_show(value)} is not a valid {option} value", line)
        if option == "--mark":
            value, mask = _MARK.match(values[0]).groups()
            if not _kshock_mark(value, mask, exact=False):
                raise UnsafeRuleText(f"a connection mark outside kshock's bits (0x{MARK_SPACE:08x})", line)
        i += 1 + len(patterns)
    finish()


def _kshock_mark(value: str, mask: str, exact: bool = True) -> bool:
    """value/mask within kshock's mark bits; with `exact`, value == mask (set the bits)."""
    v, m = int(value, 16), int(mask, 16)
    return m != 0 and m & ~MARK_SPACE == 0 and v & ~m == 0 and (v == m or not exact)


def _has_datestop(args: list[str]) -> bool:
    for i in range(len(args) - 3):
        if args[i:i + 3] == ["-m", "time", "--datestop"] and DATESTOP.match(args[i + 3]):
            return True
    return False


def restore_words(line: str) -> list[str]:
    """The words of one restore line, quotes removed; UnsafeRuleText for anything left over
    (a stray quote, two spaces, a leading space: text kshock never writes)."""
    words, at = [], 0
    for found in _WORD.finditer(line):
        if line[at:found.start()] != (" " if words else ""):
            raise UnsafeRuleText("a line that does not split cleanly into words", line)
        words.append(found.group(1) if found.group(1) is not None else found.group(2))
        at = found.end()
    if at != len(line) or not words:
        raise UnsafeRuleText("a line that does not split cleanly into words", line)
    return words


# -- nft -------------------------------------------------------------------------------------

_NFT_HEADER = re.compile(r"# kshock rule set (?P<name>\S+): load with `nft -f`, remove with "
                         r"`nft delete table ip (?P<table>\S+)`\Z")
_NFT_EXPIRES = re.compile(r"# expires \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2} UTC \(`meta time <` takes UTC epoch "
                          r"seconds\)\Z")
_NFT_TABLE = re.compile(r"kshock_[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_NFT_BASE = re.compile(r"\t\ttype (?:filter|route) hook (?P<hook>input|output|forward) priority "
                       r"(?P<priority>filter|mangle); policy accept;\Z")
# A rule: matches exactly as render_nft writes them (one of these parts each, in any order);
# then counter, one statement, a comment. No statement hides among the matches (`ct mark set`,
# `log`, `dup`, `notrack`, ...): a word outside these parts is refused.
_NFT_FLAG = r"(?:fin|syn|rst|psh|ack|urg|ecn|cwr)"
_NFT_RANGE = r"0x[0-9a-f]{1,8}(?:-0x[0-9a-f]{1,8})?"
_NFT_PART = re.compile(
    r"(?:meta l4proto tcp"
    r"|ip [sd]addr \d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?"
    r'|(?:iif|oif)name "[A-Za-z0-9_.:@-]{1,15}\*?"'
    r"|tcp [sd]port \d{1,5}"
    rf"|tcp flags & (?:{_NFT_FLAG}|\({_NFT_FLAG}(?: \| {_NFT_FLAG})+\)) == (?:0x0|{_NFT_FLAG}(?: \| {_NFT_FLAG})*)"
    r"|ct mark & (?P<mask>0x[0-9a-f]{1,8}) == (?P<value>0x[0-9a-f]{1,8})"
    r"|ip hdrlength 5"
    rf"|@ih,\d{{1,5}},32(?: & 0x[0-9a-f]{{1,8}})? == (?:{_NFT_RANGE}|\{{ {_NFT_RANGE}(?:, {_NFT_RANGE})* \}})"
    r"|meta random & 0x7fffffff < \d{1,10}"
    r"|numgen inc mod \d{1,5} == \d{1,5}"
    r"|meta time < \d{1,12})(?: |\Z)")
_NFT_STATEMENTS = re.compile(
    r"(?:(?P<verdict>drop|return|accept)|jump (?P<jump>\S+)"
    r"|reject with (?:tcp reset|icmp type (?:port|host|net|admin)-(?:unreachable|prohibited))"
    r"|ct mark set ct mark or (?P<mark>0x[0-9a-f]{1,8})"
    r"|(?P<classify>meta priority set [0-9a-f]{1,4}:[0-9a-f]{1,4}))\Z")


def audit_nft(text: str, *, require_expiry: bool = True) -> None:
    """Raise UnsafeRuleText unless `text` (for `nft -f`) is render_nft's shape: its own table
    `ip kshock_<name>` created, deleted and defined whole; base chains input/output/forward that
    accept by default and only jump into the table's KSHOCK-* chains; every rule with a counter,
    one known statement, and (with require_expiry) `meta time <`."""
    _text_shape(text, tabs=True)
    lines = text[:-1].split("\n")
    header = _NFT_HEADER.match(lines[0]) if lines else None
    if (header is None or not _NFT_TABLE.match(header.group("table"))
            or header.group("table") != f"kshock_{header.group('name')}"):
        raise UnsafeRuleText("nft text must start with kshock's header naming its own table",
                             lines[0] if lines else "")
    table = f"ip {header.group('table')}"
    at = 1
    if at < len(lines) and lines[at].startswith("#"):
        if not _NFT_EXPIRES.match(lines[at]):
            raise UnsafeRuleText("an unexpected nft comment", lines[at])
        at += 1
    expected = [f"table {table}", f"delete table {table}", f"table {table} {{"]
    if lines[at:at + 3] != expected:
        raise UnsafeRuleText(f"nft text must create, delete and define only `table {table}`",
                             "\n".join(lines[at:at + 3]))
    if lines[-1] != "}":
        raise UnsafeRuleText("the table block must end the text", lines[-1])
    body = lines[at + 3:-1]
    chains = _nft_chains(body)
    defined = {name for name, _, _ in chains}
    for name, base, rules in chains:
        kinds = [_nft_rule(rule, base is not None, defined, require_expiry) for rule in rules]
        # accept only as kshock's traffic-control chains write it: set the priority, then accept
        if "accept" in kinds and kinds != ["classify", "accept"]:
            raise UnsafeRuleText(f"accept in chain {name}, which is not exactly `meta priority set` then `accept`")


def _nft_chains(body: list[str]) -> list[tuple[str, re.Match | None, list[str]]]:
    chains, i = [], 0
    hooks: set[str] = set()
    while i < len(body):
        if body[i] == "" and chains:
            i += 1
            continue
        found = re.fullmatch(r"\tchain (\S+) \{", body[i])
        if not found:
            raise UnsafeRuleText("expected a chain", body[i])
        name, i = found.group(1), i + 1
        base = None
        if name in ("input", "output", "forward"):
            base = _NFT_BASE.match(body[i]) if i < len(body) else None
            if base is None or base.group("hook") != name or name in hooks:
                raise UnsafeRuleText(f"base chain {name} must hook {name} once, with policy accept",
                                     body[i] if i < len(body) else "")
            hooks.add(name)
            i += 1
        elif not CHAIN.match(name):
            raise UnsafeRuleText(f"{_show(name)} is not a kshock chain", body[i - 1])
        if name in {c[0] for c in chains}:
            raise UnsafeRuleText(f"chain {name} defined twice", body[i - 1])
        rules = []
        while i < len(body) and body[i] != "\t}":
            rules.append(body[i])
            i += 1
        if i == len(body):
            raise UnsafeRuleText(f"chain {name} is not closed")
        chains.append((name, base, rules))
        i += 1
    return chains


def _nft_rule(rule: str, base: bool, defined: set[str], require_expiry: bool) -> str:
    """Check one rule; return its statement's kind (classify, accept, drop, return or other).
    (accept is allowed only as kshock writes it — see audit_nft — where it ends only this
    table's base chain, unlike an iptables ACCEPT)"""
    if not rule.startswith("\t\t") or rule[2:3].isspace():
        raise UnsafeRuleText("a rule must sit inside its chain", rule)
    text = rule[2:]
    comment = re.search(r' comment "([^"]*)"\Z', text)
    if comment:
        if not COMMENT.match(comment.group(1)) and not _nft_cut_comment(comment.group(1)):
            raise UnsafeRuleText("a comment must name a kshock rule", rule)
        text = text[:comment.start()]
    matches, sep, statement = text.partition(" counter ")
    if not sep:
        matches, sep, statement = ("", "x", text[len("counter "):]) if text.startswith("counter ") else ("", "", "")
    if not sep:
        raise UnsafeRuleText("every rule carries a counter before its statement", rule)
    at = 0
    while at < len(matches):
        part = _NFT_PART.match(matches, at)
        if part is None or part.end() == at:
            raise UnsafeRuleText("a match made of unexpected words (only the matches kshock writes)", rule)
        if part.group("mask") and not _kshock_mark(part.group("value"), part.group("mask"), exact=False):
            raise UnsafeRuleText(f"a connection mark outside kshock's bits (0x{MARK_SPACE:08x})", rule)
        at = part.end()
    if require_expiry and not re.search(r"(?:^| )meta time < \d{1,12}(?: |$)", matches):
        raise UnsafeRuleText("a rule without `meta time <` (the dead-man switch)", rule)
    found = _NFT_STATEMENTS.match(statement)
    if not found:
        raise UnsafeRuleText("a statement kshock does not use", rule)
    if found.group("mark") and not _kshock_mark(found.group("mark"), found.group("mark")):
        raise UnsafeRuleText(f"ct mark set may set only kshock's mark bits (0x{MARK_SPACE:08x})", rule)
    jump = found.group("jump")
    if jump is not None and (jump not in defined or not CHAIN.match(jump)):
        raise UnsafeRuleText(f"a jump to {_show(jump)}, which is not a KSHOCK-* chain of this table", rule)
    if base and jump is None:
        raise UnsafeRuleText("a base chain may only jump into kshock's chains", rule)
    return "classify" if found.group("classify") else (found.group("verdict") or "other")


def _nft_cut_comment(text: str) -> bool:
    """render_nft cuts comments over nft's 128 bytes and marks the cut with `...`."""
    return text.endswith("...") and bool(re.fullmatch(r"kshock:[A-Za-z0-9_.:/-]*\.\.\.", text))


# -- shared ----------------------------------------------------------------------------------

def _text_shape(text: str, *, tabs: bool) -> None:
    """Printable ASCII lines (nft indents with tabs), each ended by a line break."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise UnsafeRuleText("rule text must end with a line break")
    for char in text:
        if not (" " <= char <= "~" or char == "\n" or (tabs and char == "\t")):
            raise UnsafeRuleText(f"the character {char!r} in rule text (only printable ASCII is written)")


def _show(text: object) -> str:
    """A value as a person can read it on one line, whatever it holds."""
    shown = text if isinstance(text, str) and text.isprintable() and '"' not in text else repr(text)
    return shown if len(shown) <= 160 else shown[:157] + "..."


__all__ = ["BUILTINS", "CHAIN", "COMMENT", "MARK_SPACE", "RULE_NAME", "TABLES", "UnsafeRuleText", "audit_nft",
           "audit_restore",
           "check_chain", "check_token", "restore_words"]
