"""EDGE: a raw-socket Kafka probe from inside a lab namespace — connect, send ApiVersions, wait.

It tells apart the three things a client can meet: no connection at all, a connection on which
nothing answers (the SYN-only stall), and an answer (with how long each step took).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

PROBE_CLIENT_ID = "kshock-demo-probe"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    connected: bool
    connect_ms: float | None = None
    sent_bytes: int = 0
    answered: bool = False
    answer_ms: float | None = None  # from the request written to the whole response read
    waited_s: float = 0.0
    error: str | None = None

    def describe(self) -> str:
        if not self.connected:
            return f"no connection ({self.error})"
        head = f"TCP handshake done in {self.connect_ms:.1f} ms, ApiVersions request sent ({self.sent_bytes} bytes)"
        if self.answered:
            return f"{head}, answered in {self.answer_ms:.1f} ms"
        return f"{head}, no answer in {self.waited_s:.1f} s" + (f" ({self.error})" if self.error else "")


def api_versions_request(correlation_id: int = 1, client_id: str = PROBE_CLIENT_ID) -> bytes:
    """ApiVersions v0 with a request header v1: api_key 18, version 0, correlation id, client id."""
    cid = client_id.encode()
    body = struct.pack(">hhih", 18, 0, correlation_id, len(cid)) + cid
    return struct.pack(">i", len(body)) + body


def probe(host: str, port: int, netns: str | None, timeout_s: float = 2.0, connect_timeout_s: float = 2.0,
          correlation_id: int = 1) -> ProbeResult:
    from kshock.host.netns import entered as in_netns

    with in_netns(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(connect_timeout_s)
        started = time.monotonic()
        try:
            sock.connect((host, port))
        except OSError as error:
            return ProbeResult(False, error=str(error) or type(error).__name__)
        connect_ms = (time.monotonic() - started) * 1000
        request = api_versions_request(correlation_id)
        sent_at = time.monotonic()
        try:
            sock.sendall(request)
            deadline = sent_at + timeout_s
            head = _recv(sock, 4, deadline)
            size = struct.unpack(">i", head)[0]
            body = _recv(sock, size, deadline)
        except TimeoutError:
            return ProbeResult(True, connect_ms, len(request), False, waited_s=time.monotonic() - sent_at)
        except OSError as error:
            return ProbeResult(True, connect_ms, len(request), False, waited_s=time.monotonic() - sent_at,
                               error=str(error) or type(error).__name__)
        answered = len(body) >= 4 and struct.unpack(">i", body[:4])[0] == correlation_id
        return ProbeResult(True, connect_ms, len(request), answered, (time.monotonic() - sent_at) * 1000,
                           waited_s=time.monotonic() - sent_at,
                           error=None if answered else "an answer with the wrong correlation id")


def _recv(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data
