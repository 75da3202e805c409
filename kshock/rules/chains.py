"""PURE: where compiled rules go — kshock's chain names, the built-in hooks, per-API dispatch.

Every name kshock puts in the kernel is made here, so the audit (only kshock's own chains, in
and out) and `iptables -L` readers have one place to look: `KSHOCK-<set>` (requests) and
`KSHOCK-<set>-r` (responses), `-g<k>`/`-g<k>r` for further targets, `-<i>t` (trigger
counters), `-<i>c` (tc classification), `-a<key>` (one API's rules).
"""

from __future__ import annotations

import ipaddress
import zlib

from kshock.rules.kernel import Chain, KernelRule, U32Test
from kshock.wire.apis import api_name
from kshock.wire.layout import API_AT

CHAIN_MAX = 28  # iptables' chain name limit (XT_EXTENSION_MAXNAMELEN - 1)
_SHORT_MAX = 16  # room for "KSHOCK-" and the longest suffix ("-g99r")
_DISPATCH_CHAIN = 16  # a chain longer than this sends each API's rules to a chain of their own
_DISPATCH_GROUP = 3  # ... when the API has at least this many (the jump costs a rule itself)


def short_name(name: str) -> str:
    """The rule set's name as it appears in chain names: long names cut and hashed."""
    if len(name) <= _SHORT_MAX:
        return name
    return f"{name[:_SHORT_MAX - 5]}-{zlib.crc32(name.encode()) & 0xFFFF:04x}"


def group_chains(short: str, k: int) -> tuple[str, str]:
    """(requests chain, responses chain) of the rule set's k-th target."""
    base = f"KSHOCK-{short}" + (f"-g{k}" if k else "")
    return base, base + ("r" if k else "-r")


def trigger_chain(short: str, index: int) -> str:
    """The chain that counts (nth) or remembers (once per connection) rule `index`'s hits."""
    return f"KSHOCK-{short}-{index}t"


def class_chain(short: str, index: int) -> str:
    """The chain that gives rule `index`'s packets their tc class."""
    return f"KSHOCK-{short}-{index}c"


def hooks(direction: str, traffic: str) -> tuple[str, ...]:
    """The built-in chains a request (or response) passes through on this host."""
    if direction == "forward":
        return ("FORWARD",)
    if direction == "both":
        return ("INPUT", "OUTPUT")
    arriving = (direction == "ingress") == (traffic == "request")
    return ("INPUT",) if arriving else ("OUTPUT",)


def tc_hook(direction: str) -> str:
    """Where tc shapes a target's packets: as they leave a device."""
    return "FORWARD" if direction == "forward" else "OUTPUT"


def host_match(host: str | None) -> str | None:
    """A target's host as iptables -s/-d takes it (a single address without /32)."""
    if host is None:
        return None
    network = ipaddress.ip_network(host, strict=False)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def dispatch(chain: str, rules: list[KernelRule], datestop: str | None,
             set_name: str) -> tuple[list[KernelRule], list[Chain]]:
    """A long chain's rules that pin one API key, moved to a chain per key behind one jump.

    Every Kafka packet that enters a chain walks its rules until one acts; with 20 rules on
    several APIs most of that walk is rules of other APIs. Rules pinned to different API keys
    read the same word and can never both match a packet, so their relative order does not
    matter: between two rules that pin no key (which keep their place, in order), the rules of
    each key go, in their order, into `<chain>-a<key>`, jumped to where the first of them stood
    when the key is right. What matches, and in which order, is unchanged."""
    if len(rules) <= _DISPATCH_CHAIN:
        return rules, []
    out: list[KernelRule] = []
    subs: dict[str, list[KernelRule]] = {}
    run: dict[int, list[KernelRule]] = {}

    def close() -> None:
        for key, members in run.items():
            name = f"{chain}-a{key}"
            if len(members) < _DISPATCH_GROUP or len(name) > CHAIN_MAX or name in subs:
                out.extend(members)
                continue
            subs[name] = members
            out.append(KernelRule(name, u32=((U32Test(API_AT, ((key, key),), shift=16, field="api_key",
                                                      note=f"{api_name(key)}: its rules' chain"),),),
                                  datestop=datestop, comment=f"kshock:{set_name}/api:{key}"))
        run.clear()

    for rule in rules:
        key = _pinned_api(rule)
        if key is None or rule.target == "RETURN":
            close()
            out.append(rule)
        else:
            run.setdefault(key, []).append(rule)
    close()
    return out, [Chain(name, tuple(members)) for name, members in subs.items()]


def _pinned_api(rule: KernelRule) -> int | None:
    """The one API key a rule's u32 tests require of the frame (the word at offset 4), or None."""
    for group in rule.u32:
        for test in group:
            if test.offset != API_AT or test.hops or not test.ranges:
                continue
            if test.shift == 16 and test.mask == 0xFFFFFFFF:
                keys = {k for low, high in test.ranges for k in (low, high)}
            elif test.shift == 0 and test.mask == 0xFFFFFFFF:
                keys = {v >> 16 for low, high in test.ranges for v in (low, high)}
            else:
                continue
            if len(keys) == 1:
                return keys.pop()
    return None


__all__ = ["CHAIN_MAX", "class_chain", "dispatch", "group_chains", "host_match", "hooks", "short_name",
           "tc_hook", "trigger_chain"]
