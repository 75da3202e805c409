"""Rules on Kafka responses, `loss`, and `every N` / `probability` triggers, held to the kernel.

A rule file is compiled by the real CLI (`kshock compile`), loaded with iptables-restore into
the forwarding namespace of a throwaway pair (kernel_replay.namespace_pair), and packets built
here — one Kafka frame each, every one with its own IP id — are sent through it with a raw
socket. What each rule did is read twice, both times without kshock's code: the rules' own
counters (`iptables-save -c`, found by their `kshock:<set>/<rule>` comment) and which packets
came out of the far side (an AF_PACKET socket on the veth the forwarded packets leave by).
Each rule acts on its own API (or on responses), so every missing packet has one author.

    responses     `kind == response and correlation_id < 10` then `kind == response`: exactly
                  the response frames with those ids, then exactly the other response frames;
                  no request, no bare ACK from the broker
    loss 30%      on ApiVersions requests: drops within 4.5 binomial standard deviations
    every 5       on Metadata requests: exactly the 1st, 6th, 11th, ... (and nothing else)
    probability   40% on FindCoordinator requests: within 4.5 standard deviations
"""

from __future__ import annotations

import math
import socket
import struct
import time

import pytest

from conftest import kshock, lab_skip_reason
from kernel_replay import ip, namespace_pair
from kshock.host import netns

SENDER, RECEIVER = "198.19.248.1", "198.19.248.2"
FAR = "198.19.249.9"  # routed by the receiver onto a veth whose far end is the sender's kro1
PORT = 9092
SIGMAS = 4.5

API_VERSIONS, METADATA, FIND_COORDINATOR = 18, 3, 10
COUNTS = {"responses": 300, "acks": 100, API_VERSIONS: 3000, METADATA: 1000, FIND_COORDINATOR: 3000}
RESPONSE_IDS = 30  # response correlation ids cycle 0..29: a third are < 10

RULES = """\
rules:
  - name: early-responses
    match: kind == response and correlation_id < 10
    action: drop
    target: {port: 9092, direction: forward}
    duration: 5m
  - name: responses
    match: kind == response
    action: drop
    target: {port: 9092, direction: forward}
    duration: 5m
  - name: lossy-apiversions
    match: api == ApiVersions
    action: loss 30%
    target: {port: 9092, direction: forward}
    duration: 5m
  - name: fifth-metadata
    match: api == Metadata
    action: drop
    trigger: every 5
    target: {port: 9092, direction: forward}
    duration: 5m
  - name: coin-findcoordinator
    match: api == FindCoordinator
    action: drop
    trigger: probability 40%
    target: {port: 9092, direction: forward}
    duration: 5m
"""


# -- packets built here ---------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _packet(ip_id: int, sport: int, dport: int, seq: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x18 if payload else 0x10, 65535, 0, 0) + payload
    pseudo = socket.inet_aton(SENDER) + socket.inet_aton(FAR) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0, 64, 6, 0, socket.inet_aton(SENDER),
                         socket.inet_aton(FAR))
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + tcp


def _request(api_key: int, version: int, correlation_id: int) -> bytes:
    """A request header v1 (client id "kst") and a small body: one whole frame."""
    body = struct.pack(">hhih", api_key, version, correlation_id, 3) + b"kst" + b"\0" * 8
    return struct.pack(">i", len(body)) + body


def _response(correlation_id: int) -> bytes:
    body = struct.pack(">ih", correlation_id, 0) + struct.pack(">i", 0)  # id, error_code, an empty array
    return struct.pack(">i", len(body)) + body


def _traffic() -> tuple[list[bytes], dict[int, tuple[str, int]]]:
    """The packets in send order, and ip id -> (what it is, its index among its kind)."""
    kinds = ([API_VERSIONS] * COUNTS[API_VERSIONS] + [METADATA] * COUNTS[METADATA]
             + [FIND_COORDINATOR] * COUNTS[FIND_COORDINATOR] + ["responses"] * COUNTS["responses"]
             + ["acks"] * COUNTS["acks"])
    # interleaved, in a fixed order (a stride through the list), so no kind comes in one block
    order = [kinds[(i * 7919) % len(kinds)] for i in range(len(kinds))]
    assert sorted(map(str, order)) == sorted(map(str, kinds))
    packets, meaning, seen, seq = [], {}, {}, {}
    for n, kind in enumerate(order):
        ip_id = n + 1
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        client_port = 40000 + n % 50
        if kind == "responses":
            payload, sport, dport = _response(index % RESPONSE_IDS), PORT, client_port
        elif kind == "acks":
            payload, sport, dport = b"", PORT, client_port
        else:
            version = {API_VERSIONS: 3, METADATA: 12, FIND_COORDINATOR: 4}[kind]
            payload, sport, dport = _request(kind, version, index), client_port, PORT
        key = (sport, dport)
        packets.append(_packet(ip_id, sport, dport, seq.get(key, 1000), payload))
        seq[key] = seq.get(key, 1000) + len(payload)
        meaning[ip_id] = (str(kind), index)
    return packets, meaning


# -- the run --------------------------------------------------------------------------------

def _counters_by_rule(namespace: str) -> dict[str, int]:
    """kshock:<set>/<rule> -> packets, summed over that rule's DROP lines, from iptables-save."""
    out: dict[str, int] = {}
    for line in ip(namespace, "iptables-save", "-c", "-t", "filter").stdout.splitlines():
        if not line.startswith("[") or " -j DROP" not in line or "--comment " not in line:
            continue
        packets = int(line[1:line.index(":")])
        comment = line.split("--comment ", 1)[1].split()[0].strip('"')
        rule = comment.rsplit("/", 1)[1]
        out[rule] = out.get(rule, 0) + packets
    return out


def _far_side_socket(namespace: str, device: str) -> socket.socket:
    with netns.entered(namespace):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    sock.bind((device, 0x0800))
    sock.setblocking(False)
    return sock


def _arrived(sock: socket.socket) -> set[int]:
    """IP ids of our packets that left by the far veth (waits until no more come)."""
    ids: set[int] = set()
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.5:
        try:
            frame = sock.recv(65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        quiet_since = time.monotonic()
        packet = frame[14:]
        if packet[9] == 6 and packet[12:16] == socket.inet_aton(SENDER):
            ids.add(struct.unpack_from("!H", packet, 4)[0])
    return ids


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Compile, load, send once; what the kernel counted and what came out, per kind."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    rule_file = tmp_path_factory.mktemp("triggers") / "triggers.yaml"
    rule_file.write_text(RULES)
    compiled = kshock("compile", str(rule_file), check=True).stdout
    assert "--mode nth --every 5" in compiled and "--mode random --probability 0.3" in compiled
    assert "--mode random --probability 0.4" in compiled and "--sport 9092" in compiled
    packets, meaning = _traffic()
    started = time.monotonic()
    with namespace_pair("kst", SENDER, RECEIVER, far=FAR) as (sender, receiver):
        ip(sender, "ping", "-c", "1", "-W", "2", RECEIVER)  # the neighbour is known before the burst
        ip(receiver, "iptables-restore", "--noflush", input=compiled)
        far = _far_side_socket(sender, "kro1")
        with far:
            with netns.entered(sender):
                raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            with raw:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                for n, packet in enumerate(packets):
                    raw.sendto(packet, (FAR, 0))
                    if n % 200 == 199:
                        time.sleep(0.002)  # let the veth's backlog drain: only the rules drop
            arrived = _arrived(far)
        counted = _counters_by_rule(receiver)
    missing: dict[str, list[int]] = {}
    for ip_id, (kind, index) in meaning.items():
        if ip_id not in arrived:
            missing.setdefault(kind, []).append(index)
    return {"counted": counted, "missing": missing, "sent": len(packets), "arrived": len(arrived),
            "seconds": time.monotonic() - started}


def _bound(n: int, p: float) -> float:
    return SIGMAS * math.sqrt(n * p * (1 - p))


def test_every_missing_packet_is_one_a_rule_counted(run):
    assert run["arrived"] > 0
    assert run["sent"] - run["arrived"] == sum(run["counted"].values()), run["counted"]
    assert run["seconds"] < 60


def test_a_rule_on_responses_counts_exactly_the_response_frames(run):
    early = sorted(i for i in range(COUNTS["responses"]) if i % RESPONSE_IDS < 10)
    assert run["counted"]["early-responses"] == len(early) == 100
    assert run["counted"]["responses"] == COUNTS["responses"] - len(early) == 200
    assert sorted(run["missing"]["responses"]) == list(range(COUNTS["responses"]))
    assert "acks" not in run["missing"]  # no payload: no frame, never a response rule's


def test_loss_drops_a_binomial_share(run):
    n, p = COUNTS[API_VERSIONS], 0.30
    dropped = run["counted"]["lossy-apiversions"]
    assert dropped == len(run["missing"][str(API_VERSIONS)])
    assert abs(dropped - n * p) <= _bound(n, p), (dropped, n * p, _bound(n, p))


def test_every_5_drops_exactly_every_fifth(run):
    n = COUNTS[METADATA]
    dropped = sorted(run["missing"][str(METADATA)])
    assert dropped == list(range(0, n, 5)), dropped[:10]  # `--every 5 --packet 0`: the 1st, 6th, 11th, ...
    assert run["counted"]["fifth-metadata"] == len(dropped) == n // 5


def test_probability_acts_on_a_binomial_share(run):
    n, p = COUNTS[FIND_COORDINATOR], 0.40
    dropped = run["counted"]["coin-findcoordinator"]
    assert dropped == len(run["missing"][str(FIND_COORDINATOR)])
    assert abs(dropped - n * p) <= _bound(n, p), (dropped, n * p, _bound(n, p))
    # not all at one end: each half of the candidates loses a share within the bound
    halves = [sum(1 for i in run["missing"][str(FIND_COORDINATOR)] if (i < n // 2) == first) for first in (1, 0)]
    assert all(abs(h - n / 2 * p) <= _bound(n // 2, p) for h in halves), halves
