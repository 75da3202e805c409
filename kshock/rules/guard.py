"""PURE: would a rule set cut the operator's own SSH session? Asked of the emulator, not guessed."""

from __future__ import annotations

import struct

from kshock.rules.emulate import Emulator
from kshock.rules.kernel import RuleSet

BLOCKING = ("DROP", "REJECT")


def ssh_packets(ssh_connection: str | None) -> list[tuple[str, bytes]]:
    """(builtin chain, IPv4 packet) pairs an SSH session would put through this host's rules:
    SSH_CONNECTION is "client_ip client_port server_ip server_port"; without it, a session to
    port 22 from anywhere is assumed."""
    client, client_port, server, server_port = "198.51.100.7", 50022, "198.51.100.1", 22
    if ssh_connection:
        parts = ssh_connection.split()
        if len(parts) == 4 and all(_is_ipv4(p) for p in (parts[0], parts[2])):
            client, client_port, server, server_port = parts[0], int(parts[1]), parts[2], int(parts[3])
    packets = []
    for flags, payload in ((0x02, b""), (0x18, b"SSH-2.0-kshock-guard"), (0x10, b""), (0x11, b"")):
        packets.append(("INPUT", _ipv4_tcp(client, client_port, server, server_port, flags, payload)))
        packets.append(("OUTPUT", _ipv4_tcp(server, server_port, client, client_port, flags, payload)))
    return packets


def cuts_ssh(ruleset: RuleSet, ssh_connection: str | None) -> bool:
    emulator = Emulator(ruleset)
    for builtin, packet in ssh_packets(ssh_connection):
        verdict = emulator.verdict(builtin, packet)
        if verdict is not None and verdict in BLOCKING:
            return True
    return False


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _packed(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def _ipv4_tcp(src: str, sport: int, dst: str, dport: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0) + payload
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                         _packed(src), _packed(dst))
    return header + tcp
