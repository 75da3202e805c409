"""EDGE: load and remove kshock's iptables chains atomically with iptables-restore --noflush.

Works with both backends Debian ships: `iptables -V` says nf_tables or legacy, and the matching
restore/save binaries are used (python-iptables only speaks legacy: see README). kshock only ever
touches chains named KSHOCK-* and the jumps into them: every text is checked by
rules.audit.audit_restore on its way in (load) and on its way out (revert, leftovers, expiry)
before iptables-restore sees it. `restore` itself audits nothing: besides load and
remove_chains, only `replay --kernel` calls it, in the throwaway namespaces it made and removes.
Every function that runs a program takes the Scope (the host or a namespace) to run it in.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from kshock.apply.scope import Scope
from kshock.errors import OperationFailed, UserError
from kshock.rules.audit import BUILTINS, CHAIN, CHAIN_PREFIX, TABLES, UnsafeRuleText, audit_restore, restore_words
from kshock.rules.kernel import RuleSet
from kshock.rules.render import render_restore_many

_INCOMPATIBLE = re.compile(r"^# Table [`'\"]?[^\s]*['\"]? is incompatible", re.M)
_MISSING_EXTENSION = re.compile(r"Couldn't load (?:match|target) `?(\w+)'?")


@dataclass(frozen=True, slots=True)
class Backend:
    name: str  # "nf_tables" | "legacy"
    restore: str
    save: str


def detect_backend() -> Backend:
    if shutil.which("iptables") is None:
        raise UserError("`iptables` is not installed", "install it: apt-get install iptables")
    version = subprocess.run(["iptables", "-V"], capture_output=True, text=True, timeout=10).stdout
    if "legacy" in version:
        return Backend("legacy", "iptables-legacy-restore", "iptables-legacy-save")
    return Backend("nf_tables", "iptables-restore", "iptables-save")


def save(backend: Backend, scope: Scope, table: str, counters: bool = False) -> str:
    argv = [backend.save, "-t", table] + (["-c"] if counters else [])
    result = subprocess.run(scope.argv(argv), capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OperationFailed(f"{backend.save} failed in {scope.describe()}: {result.stderr.strip()}")
    if _INCOMPATIBLE.search(result.stdout) or _INCOMPATIBLE.search(result.stderr):
        raise OperationFailed(f"{backend.save} cannot read table {table!r} in {scope.describe()}: another program "
                              "put an nft rule there that iptables cannot show, so kshock cannot see (or remove) "
                              "its chains",
                              f"remove the foreign rule (nft list table ip {table}; nft delete rule ...) and run "
                              "kshock again, or wait: every kshock rule stops at its --datestop")
    return result.stdout


def kshock_chains(backend: Backend, scope: Scope) -> dict[str, set[str]]:
    """table -> the KSHOCK-* chains that exist there now."""
    found = {}
    for table in TABLES:
        found[table] = {chain for chain in chains(backend, scope, table) if chain.startswith(CHAIN_PREFIX)}
    return found


def chains(backend: Backend, scope: Scope, table: str) -> set[str]:
    """Every chain `table` holds now (kshock's and others')."""
    return chains_in(save(backend, scope, table))


def chains_in(save_text: str) -> set[str]:
    """The chains an iptables-save text declares (its `:NAME POLICY [p:b]` lines)."""
    return {line[1:].split()[0] for line in save_text.splitlines() if line.startswith(":")}


def tables(backend: Backend, scope: Scope) -> set[str]:
    """The ip-family tables that exist now (nf_tables only: legacy tables always exist once
    their module is loaded, and iptables-save lists them either way)."""
    if backend.name != "nf_tables" or shutil.which("nft") is None:
        return set(TABLES)
    result = subprocess.run(scope.argv(["nft", "list", "tables", "ip"]), capture_output=True, text=True, timeout=10)
    return {line.split()[2] for line in result.stdout.splitlines() if line.startswith("table ip ")}


def drop_if_empty(backend: Backend, scope: Scope, table: str) -> bool:
    """Delete an nf_tables table kshock's first rule created, once nothing but empty built-in
    chains with an ACCEPT policy is left in it: `iptables-save` then reads exactly as before."""
    if backend.name != "nf_tables" or shutil.which("nft") is None:
        return False
    if table not in TABLES:
        return False  # kshock only ever notes filter and mangle
    for line in save(backend, scope, table).splitlines():
        if line.startswith("-A ") or (line.startswith(":") and " ACCEPT " not in line):
            return False
    # what iptables cannot show (another program's sets, maps, chains, rules) keeps the table too
    listed = subprocess.run(scope.argv(["nft", "list", "table", "ip", table]), capture_output=True, text=True,
                            timeout=10)
    if listed.returncode != 0 or not only_empty_base_chains(listed.stdout, table):
        return False
    result = subprocess.run(scope.argv(["nft", "delete", "table", "ip", table]), capture_output=True, text=True,
                            timeout=10)
    return result.returncode == 0


_BASE_CHAINS = {"filter": {"INPUT", "FORWARD", "OUTPUT"},
                "mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}}
_BASE_CHAIN_HOOK = re.compile(r"type (?:filter|route) hook \w+ priority [\w+-]+; policy accept;")


def only_empty_base_chains(listing: str, table: str) -> bool:
    """Whether `nft list table ip TABLE` shows nothing but empty built-in chains with an accept
    policy (no sets, maps, flowtables, other chains or rules)."""
    lines = [line.strip() for line in listing.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != f"table ip {table} {{" or lines[-1] != "}":
        return False
    body = lines[1:-1]
    if len(body) % 3:
        return False
    for at in range(0, len(body), 3):
        chain = re.fullmatch(r"chain (\w+) \{", body[at])
        if not chain or chain.group(1) not in _BASE_CHAINS.get(table, set()):
            return False
        if not _BASE_CHAIN_HOOK.fullmatch(body[at + 1]) or body[at + 2] != "}":
            return False
    return True


def load(backend: Backend, scope: Scope, ruleset: RuleSet) -> None:
    """Add the rule set in one transaction: all of it or (on any error) none of it."""
    load_many(backend, scope, [ruleset])


def load_many(backend: Backend, scope: Scope, rulesets: Sequence[RuleSet]) -> None:
    """Add several rule sets in one iptables-restore run (one transaction per table)."""
    if not rulesets:
        return
    check_free(backend, scope, rulesets)
    text = render_restore_many(rulesets)
    audit_restore(text, require_expiry=True)  # the dead-man switch on every rule, and nothing foreign
    restore_unaudited(backend, scope, text)


def check_free(backend: Backend, scope: Scope, rulesets: Sequence[RuleSet]) -> None:
    """UserError when a rule set's chains are already in the kernel (a fault of that name is active)."""
    existing = kshock_chains(backend, scope)
    for ruleset in rulesets:
        clash = sorted(existing.get(ruleset.table, set()) & set(ruleset.chain_names))
        if clash:
            raise UserError(f"fault {ruleset.name!r} would use chain(s) {', '.join(clash)}, which are already in "
                            f"{scope.describe()} (a fault of that name, or one whose chains are named alike)",
                            "kshock status shows the active faults; revert that one first, or choose another name")


def remove_chains(backend: Backend, scope: Scope, table: str, chains: set[str]) -> list[str]:
    """Delete the jumps into `chains` and the chains themselves, in one transaction. Built from
    what the kernel holds now, so it also works when a rule was removed by hand."""
    text = save(backend, scope, table)
    present = chains_in(text)
    # only kshock's own chains, whatever a (damaged) state file lists: never -F INPUT
    targets = {chain for chain in chains & present if CHAIN.match(chain)}
    if not targets:
        return []
    lines = [f"*{table}"]
    for line in text.splitlines():
        if line.startswith("-A ") and _jumps_into(line, targets):
            lines.append("-D " + line[3:])
    lines += [f"-F {chain}" for chain in sorted(targets)]
    lines += [f"-X {chain}" for chain in sorted(targets)]
    lines.append("COMMIT")
    revert = "\n".join(lines) + "\n"
    audit_restore(revert, revert=True)  # only jumps into, and flushes of, the chains being removed
    restore_unaudited(backend, scope, revert)
    return sorted(targets)


def _jumps_into(line: str, targets: set[str]) -> bool:
    """Whether an iptables-save `-A` line is a built-in chain's jump into one of `targets`. Read
    word by word (quotes honoured), so a comment that mentions `-j KSHOCK-x` is no jump."""
    try:
        words = restore_words(line)
    except UnsafeRuleText:
        return False  # not a line kshock wrote
    return (len(words) >= 4 and words[1] in BUILTINS and words.count("-j") == 1 and words[-2] == "-j"
            and words[-1] in targets)


def counters(backend: Backend, scope: Scope, table: str, chains: set[str]) -> dict[str, list[tuple[int, int, str]]]:
    """chain -> [(packets, bytes, rule text)] for the rules of kshock's chains."""
    out: dict[str, list[tuple[int, int, str]]] = {chain: [] for chain in chains}
    for line in save(backend, scope, table, counters=True).splitlines():
        found = re.match(r"\[(\d+):(\d+)\] -A (\S+) (.*)", line)
        if found and found.group(3) in chains:
            out[found.group(3)].append((int(found.group(1)), int(found.group(2)), found.group(4)))
    return out


def restore_unaudited(backend: Backend, scope: Scope, text: str) -> None:
    """`iptables-restore --noflush` of `text` in `scope`, as one transaction; a one-line
    OperationFailed naming a missing extension or the refused line. The text is not audited
    here: load and remove_chains audit theirs first, and replay's kernel check loads its own into
    namespaces it made and removes (tests/unit/test_architecture.py keeps it to those callers)."""
    if shutil.which(backend.restore) is None:
        raise UserError(f"`{backend.restore}` is not installed", "install it: apt-get install iptables")
    result = subprocess.run(scope.argv([backend.restore, "--noflush"]), input=text, capture_output=True, text=True,
                            timeout=30)
    if result.returncode == 0:
        return
    stderr = result.stderr.strip()
    missing = _MISSING_EXTENSION.search(stderr)
    if missing:
        raise OperationFailed(f"this kernel or iptables lacks the `{missing.group(1)}` extension, so nothing was applied",
                              f"load it (modprobe xt_{missing.group(1)}) or use a rule that does not need it")
    line = re.search(r"line:? (\d+)", stderr)
    detail = ""
    if line:
        number = int(line.group(1))
        lines = text.splitlines()
        if 0 < number <= len(lines):
            detail = f" at `{lines[number - 1][:160]}`"
    raise OperationFailed(f"{backend.restore} refused the rule set{detail}: {stderr.splitlines()[0] if stderr else 'no message'}"
                          ", so nothing was applied")
