"""EDGE: live capture — an AF_PACKET socket with a kernel BPF filter on the Kafka ports.

    with LiveCapture(ports={9092}, interface="br0", netns="ksl-demo-broker") as capture:
        for ts, linktype, raw in capture.packets(stop=event):
            ...
        capture.stats()   # CaptureStats(packets=..., drops=...): the kernel's PACKET_STATISTICS

The socket is created inside the network namespace (host.netns.entered around socket()); it
stays in that namespace for its life, the calling thread does not. The kernel filter is the
classic BPF program capture/bpf.py builds from the port list (no libpcap, no per-packet scapy):
only IPv4 and IPv6 TCP segments to or from a Kafka port reach user space. Timestamps are the kernel's
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

from kshock.capture.bpf import SNAPLEN, Instruction, bpf_program
from kshock.errors import UserError
from kshock.host import netns

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
DEFAULT_BUFFER_MIB = 64

_TIMESPEC = struct.Struct("qq")
_STATS = struct.Struct("II")


@dataclass(slots=True)
class CaptureStats:
    packets: int = 0  # what the kernel passed the filter (tp_packets)
    drops: int = 0  # what it had to throw away because the socket buffer was full (tp_drops)


# -- the kernel filter -----------------------------------------------------------------------

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
        with netns.entered(self.netns or None):
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


__all__ = ["CaptureStats", "LiveCapture"]
