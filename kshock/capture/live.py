"""EDGE: live capture — an AF_PACKET socket with a kernel BPF filter on the Kafka ports.

    with LiveCapture(ports={9092}, interface="br0", netns="ksl-demo-broker") as capture:
        for ts, linktype, raw in capture.packets(stop=event):
            ...
        capture.stats()   # CaptureStats(packets=..., drops=...): the kernel's PACKET_STATISTICS

The socket is created inside the network namespace (pyroute2 pushns/popns around socket());
it stays in that namespace for its life, the calling thread does not. The kernel filter is a
classic BPF program built here from the port list (no libpcap, no per-packet scapy): only IPv4
and IPv6 TCP segments to or from a Kafka port reach user space. Timestamps are the kernel's
(SO_TIMESTAMPNS). Drops are never silent: `stats()` reads PACKET_STATISTICS (the kernel resets
its counters on every read; this object accumulates them).

On an Ethernet-like interface (Ethernet, loopback, a bridge) the socket reads whole frames
(pcap linktype 1, the wire core's fast path). Without an interface, or on one without an
Ethernet header (tun, WireGuard), it reads cooked packets that start at the IP header
(linktype 101, raw IP). Capturing every interface of a namespace that has a bridge sees a
packet once per port it crosses: the wire core drops the copies as retransmissions, but give
the bridge (`interface`) to see each packet once.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from kshock.errors import UserError

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
SNAPLEN = 262144  # whole GRO/TSO super-packets fit
DEFAULT_BUFFER_MIB = 64

# classic BPF opcodes (linux/filter.h)
_LDH_ABS = 0x28
_LDB_ABS = 0x30
_LDH_IND = 0x48
_LDXB_MSH = 0xB1
_JEQ = 0x15
_JSET = 0x45
_RET = 0x06
_AND = 0x54
_RSH = 0x74

_TIMESPEC = struct.Struct("qq")
_STATS = struct.Struct("II")


@dataclass(slots=True)
class CaptureStats:
    packets: int = 0  # what the kernel passed the filter (tp_packets)
    drops: int = 0  # what it had to throw away because the socket buffer was full (tp_drops)


# -- the kernel filter -----------------------------------------------------------------------

Instruction = tuple[int, int, int, int]  # code, jt, jf, k


def bpf_program(ports: Collection[int], ethernet: bool = True) -> list[Instruction]:
    """A classic BPF program accepting IPv4/IPv6 TCP segments with a source or destination port
    in `ports` (IPv4: only first fragments, which carry the TCP header). `ethernet`: packets
    start with a 14-byte Ethernet header; otherwise at the IP header (a cooked socket)."""
    chosen = sorted(set(ports))
    if not chosen or not all(0 < p < 65536 for p in chosen):
        raise UserError(f"bad Kafka port list {chosen}", "give ports from 1 to 65535")
    l3 = 14 if ethernet else 0
    code: list[tuple] = []  # (code, jt label or None, jf label or None, k, own label or None)

    def emit(op: int, k: int = 0, jt: str | None = None, jf: str | None = None, label: str | None = None):
        code.append((op, jt, jf, k, label))

    def port_tests(offset_op: int, at: int, last_jf: str) -> None:
        for direction, delta in (("src", 0), ("dst", 2)):
            emit(offset_op, at + delta)
            for i, port in enumerate(chosen):
                final = direction == "dst" and i == len(chosen) - 1
                emit(_JEQ, port, "accept", last_jf if final else None)

    if ethernet:
        emit(_LDH_ABS, 12)
        emit(_JEQ, 0x86DD, "v6", None)
        emit(_JEQ, 0x0800, None, "drop")
    else:
        emit(_LDB_ABS, 0)
        emit(_RSH, 4)
        emit(_JEQ, 6, "v6", None)
        emit(_JEQ, 4, None, "drop")
    emit(_LDB_ABS, l3 + 9)  # IPv4 protocol
    emit(_JEQ, 6, None, "drop")
    emit(_LDH_ABS, l3 + 6)  # flags and fragment offset
    emit(_JSET, 0x1FFF, "drop", None)
    emit(_LDXB_MSH, l3)  # X = IPv4 header length
    port_tests(_LDH_IND, l3, "drop")
    emit(_LDB_ABS, l3 + 6, label="v6")  # IPv6 next header (no extension headers)
    emit(_JEQ, 6, None, "drop")
    port_tests(_LDH_ABS, l3 + 40, "drop")
    emit(_RET, SNAPLEN, label="accept")
    emit(_RET, 0, label="drop")

    where = {label: i for i, (_, _, _, _, label) in enumerate(code) if label}
    program = []
    for i, (op, jt, jf, k, _) in enumerate(code):
        jt_off = where[jt] - i - 1 if jt else 0
        jf_off = where[jf] - i - 1 if jf else 0
        if not (0 <= jt_off < 256 and 0 <= jf_off < 256):
            raise UserError(f"too many Kafka ports ({len(chosen)}) for one kernel filter", "give fewer ports")
        program.append((op, jt_off, jf_off, k))
    return program


def run_bpf(program: list[Instruction], packet: bytes) -> int:
    """Interpret a classic BPF program of the kind bpf_program builds (for tests): the number of
    bytes the kernel would keep, 0 for a packet it drops."""
    a = x = 0
    pc = 0
    while True:
        op, jt, jf, k = program[pc]
        pc += 1
        if op in (_LDH_ABS, _LDH_IND):
            at = k + (x if op == _LDH_IND else 0)
            if at + 2 > len(packet):
                return 0
            a = int.from_bytes(packet[at:at + 2], "big")
        elif op == _LDB_ABS:
            if k >= len(packet):
                return 0
            a = packet[k]
        elif op == _LDXB_MSH:
            if k >= len(packet):
                return 0
            x = (packet[k] & 0xF) * 4
        elif op == _RSH:
            a >>= k
        elif op == _AND:
            a &= k
        elif op == _JEQ:
            pc += jt if a == k else jf
        elif op == _JSET:
            pc += jt if a & k else jf
        elif op == _RET:
            return min(k, len(packet))
        else:
            raise ValueError(f"opcode {op:#x} not interpreted")


def _attach(sock: socket.socket, program: list[Instruction]) -> None:
    import ctypes

    blob = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(blob))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# -- the socket ------------------------------------------------------------------------------

class LiveCapture:
    """One AF_PACKET socket; see the module docstring."""

    def __init__(self, ports: Collection[int] = (9092,), *, interface: str | None = None,
                 netns: str | None = None, buffer_mib: int = DEFAULT_BUFFER_MIB) -> None:
        self.ports = frozenset(ports)
        self.interface = interface
        self.netns = netns
        self.buffer_mib = buffer_mib
        self.linktype = LINKTYPE_ETHERNET
        self.totals = CaptureStats()
        self.started = 0.0
        self._sock: socket.socket | None = None

    def describe(self) -> str:
        where = self.interface or "every interface"
        if self.netns:
            where += f" in namespace {self.netns}"
        return f"{where}, TCP port(s) {','.join(map(str, sorted(self.ports)))}"

    def open(self) -> LiveCapture:
        if os.geteuid() != 0:
            raise UserError("live capture needs root (CAP_NET_RAW)", "run it with sudo, or give --pcap FILE")
        if self.netns:
            from pyroute2 import netns as pyroute_netns

            if not os.path.exists(f"/run/netns/{self.netns}"):
                raise UserError(f"there is no network namespace {self.netns!r}",
                                "list them with `ip netns list`")
            pyroute_netns.pushns(self.netns)
            try:
                self._sock = self._create()
            finally:
                pyroute_netns.popns()
        else:
            self._sock = self._create()
        self.started = time.time()
        return self

    def _create(self) -> socket.socket:
        ethernet = True
        kind = socket.SOCK_RAW
        if self.interface is None:
            ethernet, kind = False, socket.SOCK_DGRAM
        else:
            try:
                socket.if_nametoindex(self.interface)
            except OSError:
                raise UserError(f"there is no interface {self.interface!r}"
                                + (f" in namespace {self.netns}" if self.netns else ""),
                                "list them with `ip link`" + (f" (ip -n {self.netns} link)" if self.netns else "")
                                ) from None
            hatype = _hatype(self.interface)
            if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
                ethernet, kind = False, socket.SOCK_DGRAM
        # Bound to an interface, the socket is made with protocol 0 (it receives nothing) and
        # only starts receiving at bind(), after the filter is on: no unfiltered packet queues.
        # Unbound, it receives from socket() on; what queued before the filter is drained.
        sock = socket.socket(socket.AF_PACKET, kind, 0 if self.interface else socket.htons(ETH_P_ALL))
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.buffer_mib << 20)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.buffer_mib << 20)
            _attach(sock, bpf_program(self.ports, ethernet))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            if self.interface is not None:
                sock.bind((self.interface, ETH_P_ALL))
            else:
                _drain(sock)
            sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)  # start the counters at 0
        except BaseException:
            sock.close()
            raise
        self.linktype = LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self.stats()
            self._sock.close()
            self._sock = None

    def __enter__(self) -> LiveCapture:
        return self.open() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def stats(self) -> CaptureStats:
        """The totals so far: packets passed by the filter and packets the kernel dropped."""
        if self._sock is not None:
            packets, drops = _STATS.unpack(self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size))
            self.totals.packets += packets
            self.totals.drops += drops
        return CaptureStats(self.totals.packets, self.totals.drops)

    def read_ready(self, limit: int = 4096) -> list[tuple[float, int, bytes]]:
        """Every packet queued now (at most `limit`), without waiting."""
        sock = self._sock
        assert sock is not None, "open() the capture first"
        out = []
        recvmsg = sock.recvmsg
        linktype = self.linktype
        unpack = _TIMESPEC.unpack_from
        append = out.append
        for _ in range(limit):
            try:
                raw, anc, _flags, _addr = recvmsg(SNAPLEN, 64)
            except BlockingIOError:
                break
            ts = None
            for level, kind, data in anc:
                if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET:
                    sec, nsec = unpack(data)
                    ts = sec + nsec * 1e-9
            append((ts if ts is not None else time.time(), linktype, raw))
        return out

    def packets(self, stop=None, poll_s: float = 0.2) -> Iterator[tuple[float, int, bytes]]:
        """Packets as they come, until `stop` (a threading.Event) is set."""
        sock = self._sock
        assert sock is not None, "open() the capture first"
        while stop is None or not stop.is_set():
            batch = self.read_ready()
            if batch:
                yield from batch
            else:
                select.select([sock], [], [], poll_s)


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(SNAPLEN)
        except BlockingIOError:
            return


def _hatype(interface: str) -> int:
    """The interface's ARPHRD type (from a throwaway bound packet socket: no sysfs, which shows
    the host's interfaces rather than the namespace's)."""
    probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        probe.bind((interface, 0))
        return probe.getsockname()[3]
    finally:
        probe.close()


__all__ = ["CaptureStats", "LiveCapture", "bpf_program", "run_bpf"]
