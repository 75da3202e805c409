"""PURE: would a rule set cut the operator's own SSH session? Walked by header matches; payload tests may match."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from kshock.rules.emulate import compile_rule, view_ipv4_tcp
from kshock.rules.kernel import KernelRule, RuleSet


@dataclass(frozen=True, slots=True)
class SshSession:
    """The operator's SSH session as SSH_CONNECTION gives it, or None fields when it is unknown
    (unset or malformed): then a session to port 22 from anywhere is assumed."""

    client: str | None = None
    client_port: int = 50022
    server: str | None = None
    server_port: int = 22
    problem: str | None = None  # why SSH_CONNECTION was not understood (None: it was, or is unset)


def ssh_session(ssh_connection: str | None) -> SshSession:
    """SSH_CONNECTION is "client_ip client_port server_ip server_port" (IPv4 here: kshock's rules
    are IPv4). Anything else is reported in `problem` and treated as unknown."""
    if not ssh_connection or not ssh_connection.strip():
        return SshSession()
    parts = ssh_connection.split()
    if len(parts) != 4:
        return SshSession(problem=f"has {len(parts)} fields, not 4")
    if not (_is_ipv4(parts[0]) and _is_ipv4(parts[2])):
        return SshSession(problem="does not hold two IPv4 addresses")
    if not all(_is_port(p) for p in (parts[1], parts[3])):
        return SshSession(problem="does not hold two TCP ports (1 to 65535)")
    return SshSession(parts[0], int(parts[1]), parts[2], int(parts[3]))


def warning(ssh_connection: str | None) -> str | None:
    """One line for stderr when SSH_CONNECTION is set but not understood, else None."""
    problem = ssh_session(ssh_connection).problem
    if problem is None:
        return None
    shown = ascii(ssh_connection[:60])
    return (f"SSH_CONNECTION {shown} {problem}; guarding as if an SSH session came to port 22 "
            "from any address")


def ssh_packets(ssh_connection: str | None) -> list[tuple[str, bytes]]:
    """(builtin chain, IPv4 packet) pairs an SSH session would put through this host's rules;
    an unknown session gets placeholder addresses (see cuts_ssh)."""
    session = ssh_session(ssh_connection)
    client = session.client or "198.51.100.7"
    server = session.server or "198.51.100.1"
    packets = []
    for flags, payload in ((0x02, b""), (0x18, b"SSH-2.0-kshock-guard"), (0x10, b""), (0x11, b"")):
        packets.append(("INPUT", _ipv4_tcp(client, session.client_port, server, session.server_port, flags, payload)))
        packets.append(("OUTPUT", _ipv4_tcp(server, session.server_port, client, session.client_port, flags, payload)))
    return packets


def cuts_ssh(ruleset: RuleSet, ssh_connection: str | None) -> bool:
    """Would the rule set block, shape or otherwise touch an SSH session? Decided soundly, not by
    emulating a few probe packets: an encrypted session's segments can hold any bytes, so every
    test that reads the payload or keeps state (u32, string, statistic, connmark, TCP flags) is
    taken as satisfiable. The session cuts if a rule its packets reach (by protocol, addresses
    and ports; interfaces too are taken as satisfiable) has any target other than RETURN — DROP,
    REJECT, CLASSIFY (tc shaping), CONNMARK (feeds a later drop), ... A RETURN only stops the walk
    when it needs nothing but the header. With the session unknown, its addresses are too: the
    rules are asked with their address tests left out (any address may be the session's)."""
    if ssh_session(ssh_connection).client is None:
        ruleset = _any_address(ruleset)
    chains = {chain.name: chain.rules for chain in ruleset.chains}
    headers: dict[int, object] = {}
    for builtin, raw in ssh_packets(ssh_connection):
        packet = view_ipv4_tcp(raw)
        for jump in ruleset.jumps:
            if jump.builtin == builtin and _header_matches(jump.rule, packet, headers) \
                    and _reaches_cut(jump.rule, packet, chains, headers, 0):
                return True
    return False


def _header_matches(rule: KernelRule, packet, headers: dict) -> bool:
    """The rule's header part (protocol, addresses, ports) matches; everything else is assumed to."""
    check = headers.get(id(rule))
    if check is None:
        check = headers[id(rule)] = compile_rule(_header_only(rule))
    return check(packet)


def _header_only(rule: KernelRule) -> KernelRule:
    return replace(rule, payload_required=False, tcp_flags=None, u32=(), strings=(), connmark=None, statistic=())


def _conditional(rule: KernelRule) -> bool:
    """Does the rule test more than the header (so it may not match a given session packet)?"""
    return rule != _header_only(rule)


def _reaches_cut(rule: KernelRule, packet, chains: dict, headers: dict, depth: int) -> bool:
    """A matching rule: does its target (or, for a chain, anything in it) cut the session?"""
    if rule.target not in chains:
        return rule.target != "RETURN"
    if depth > 8:
        return True  # deeper than kshock ever nests: assume the worst
    for inner in chains[rule.target]:
        if not _header_matches(inner, packet, headers):
            continue
        if inner.target == "RETURN":
            if _conditional(inner):
                continue  # may not match: the rules after it may still see the packet
            return False
        if _reaches_cut(inner, packet, chains, headers, depth + 1):
            return True
    return False


def _any_address(ruleset: RuleSet) -> RuleSet:
    def widen(rule: KernelRule) -> KernelRule:
        return replace(rule, source=None, destination=None)

    return replace(ruleset, chains=tuple(replace(chain, rules=tuple(map(widen, chain.rules))) for chain in ruleset.chains),
                   jumps=tuple(replace(jump, rule=widen(jump.rule)) for jump in ruleset.jumps))


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts)


def _packed(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def _ipv4_tcp(src: str, sport: int, dst: str, dport: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0) + payload
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                         _packed(src), _packed(dst))
    return header + tcp
