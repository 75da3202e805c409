"""EDGE: where the shell's packets come from — a capture file, or a live AF_PACKET capture.

    target, source = open_source(args, session)   # what `kshock shell`'s options ask for
    source.start()        # a thread feeds session.feed_packets; the prompt never waits for it
    source.run_to_end()   # (--script) a file is read to its end first: deterministic numbers
    source.stop()
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from kshock.errors import UserError
from kshock.shell.commands import ShellTarget
from kshock.shell.session import Session

BATCH = 2048  # packets decoded per lock


class PcapSource:
    """A capture file, read as fast as it decodes."""

    def __init__(self, path: str, session: Session) -> None:
        from kshock.capture.reader import CaptureReader

        self.reader = CaptureReader(path)  # a file that is not a capture fails here
        self.session = session
        session.source = os.path.basename(path)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def run_to_end(self) -> None:
        batch = []
        for packet in self.reader:
            batch.append(packet)
            if len(batch) >= BATCH:
                self.session.feed_packets(batch)
                batch = []
                if self._stop.is_set():
                    return
        self.session.feed_packets(batch)
        self.session.finish()
        self.session.source_problem = self.reader.problem
        self.session.source_done = True
        self.session.kernel_packets = self.reader.packets

    def start(self) -> None:
        if self.session.source_done:
            return
        self._thread = threading.Thread(target=self.run_to_end, name="kshock-pcap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.reader.close()


class LiveSource:
    """An AF_PACKET socket (kshock.capture.live) emptied by one thread and decoded by another.

    The reader only moves packets from the kernel's buffer into memory, so a burst the decoder
    cannot follow waits here (up to MAX_BACKLOG packets) instead of overflowing the socket; the
    decoder catches up afterwards. Packets lost anyway are counted: the kernel's
    (PACKET_STATISTICS) and, past the backlog bound, ours — both go into `kernel_drops`."""

    MAX_BACKLOG = 2_000_000

    def __init__(self, capture, session: Session) -> None:
        import collections

        self.capture = capture
        self.session = session
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._backlog: collections.deque = collections.deque()
        self._pending = 0
        self.backlog_drops = 0
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self._switch_interval: float | None = None

    def start(self) -> None:
        if self._threads:
            return
        self.capture.open()
        # The reader gives up the GIL on every receive and, with the default 5 ms switch
        # interval, gets it back too late while the decoder is busy: bursts then overflow the
        # kernel's buffer. A 0.5 ms interval kept up with 29k requests/s (vs 25k) in
        # benchmarks/live_capture.py. Restored in stop().
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, 0.0005))
        self.session.source = self.capture.describe()
        self._threads = [threading.Thread(target=self._read, name="kshock-capture", daemon=True),
                         threading.Thread(target=self._decode, name="kshock-decode", daemon=True)]
        for thread in self._threads:
            thread.start()

    def run_to_end(self) -> None:
        self.start()

    def _read(self) -> None:
        import select

        capture = self.capture
        next_stats = 0.0
        try:  # emptying the socket comes before everything else we do (root may raise priority)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        except OSError:
            pass
        try:
            while not self._stop.is_set():
                batch = capture.read_ready(BATCH)
                if batch:
                    if self._pending + len(batch) > self.MAX_BACKLOG:
                        self.backlog_drops += len(batch)
                    else:
                        self._pending += len(batch)
                        self._backlog.append(batch)
                        self._ready.set()
                else:
                    select.select([capture], [], [], 0.1)
                now = time.monotonic()
                if now >= next_stats:
                    next_stats = now + 0.5
                    self._update_stats()
        except BaseException as error:  # shown in the toolbar; the prompt stays usable
            self.error = error
            self.session.source_problem = f"capture stopped: {error}"

    def _decode(self) -> None:
        backlog, session = self._backlog, self.session
        while True:
            try:
                batch = backlog.popleft()
            except IndexError:
                if self._stop.is_set():
                    return
                self._ready.wait(0.1)
                self._ready.clear()
                continue
            self._pending -= len(batch)
            session.feed_packets(batch)

    def _update_stats(self) -> None:
        stats = self.capture.stats()
        self.session.kernel_drops = stats.drops + self.backlog_drops
        self.session.kernel_packets = stats.packets

    def stop(self) -> None:
        self._stop.set()
        self._ready.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.capture.is_open:
            self._update_stats()
        self.capture.close()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None


def open_source(args: argparse.Namespace, session: Session) -> tuple[ShellTarget, PcapSource | LiveSource]:
    """The capture source and the apply target the options ask for."""
    ports = tuple(session.ports)
    if args.pcap:
        if args.lab or args.netns or args.interface:
            raise UserError("--pcap reads a file; it does not go with --lab, --netns or --interface",
                            "give either a capture file or a place to capture live")
        return ShellTarget(live=False, ports=ports, direction=args.direction), PcapSource(args.pcap, session)
    from kshock.capture.live import LiveCapture

    interface, netns = args.interface, args.netns
    if netns is not None:  # never '' for the host, nor '.' or '..': the one namespace-name check
        from kshock.host.netns import check_name

        check_name(netns)
    if args.lab:
        if netns:
            raise UserError("give --lab or --netns, not both", "--lab NAME captures in the lab's broker namespace")
        from kshock.lab import state
        from kshock.lab.plan import validate_name

        lab = state.load(validate_name(args.lab))
        if lab is None:
            raise UserError(f"there is no lab {args.lab!r}", f"start one: kshock lab up --name {args.lab}")
        netns = lab.plan.broker.netns
        interface = interface or lab.plan.broker.ifname
        if not args.port:
            ports = (lab.plan.port,)
            session.ports = frozenset(ports)
            session.sniffer = type(session.sniffer)(ports=session.ports)
    capture = LiveCapture(ports, interface=interface, netns=netns, buffer_mib=args.buffer_mib)
    return ShellTarget(scope_name=netns, live=True, ports=ports, direction=args.direction), LiveSource(capture, session)


__all__ = ["LiveSource", "PcapSource", "open_source"]
