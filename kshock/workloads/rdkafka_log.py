"""PURE: librdkafka's debug log -> the requests it wrote to its sockets.

With `debug=protocol,broker` librdkafka logs `Sent <Name>Request (v<version>, <n> bytes @ <offset>,
CorrId <id>)` once the *whole* request has been handed to the kernel (a partial write logs
`Sent partial ...` and is not counted), and `Connected (#<n>)` each time a broker handle opens a
new TCP connection. Lines come from librdkafka's default logger (`rd_kafka_log_print`):

    %7|1795493205.577|SEND|app#producer-1| [thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: Sent ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kshock.workloads.rdkafka_names import api_name, rdkafka_api_key

_LINE = re.compile(
    r"^%(?P<level>\d)\|(?P<ts>[\d.]+)\|(?P<fac>[A-Z_]+)\|(?P<handle>.*?)\| "
    r"\[thrd:[^\]]*\]: (?P<broker>\S+): (?P<message>.*)$"
)
_SENT = re.compile(r"^Sent (?P<name>\S+)Request \(v(?P<version>\d+), \d+ bytes @ \d+, CorrId (?P<corrid>\d+)\)$")
_RECEIVED = re.compile(r"^Received (?P<name>\S+)Response \(v\d+, \d+ bytes, CorrId (?P<corrid>\d+), "
                       r"rtt (?P<rtt>[\d.]+)ms\)$")
_CONNECTED = re.compile(r"^Connected \(#(?P<n>\d+)\)$")
_DISCONNECTED = re.compile(r"^Disconnected: (?P<why>.*?)(?: \(after .*)?$")


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One thing the client says happened, at its own clock."""

    ts: float
    what: str  # "sent", "received" or "disconnected"
    api: str | None = None  # as the spec names it (librdkafka's names translated)
    api_key: int | None = None
    correlation_id: int | None = None
    rtt_ms: float | None = None  # the round trip the client measured, for "received"
    why: str = ""  # for "disconnected": librdkafka's reason ("connection reset by peer")


def parse_event(line: str) -> ClientEvent | None:
    """One log line -> the request sent, response received or connection lost it records; None
    for every other line."""
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    ts, message = float(match["ts"]), match["message"]
    if sent := _SENT.match(message):
        return ClientEvent(ts, "sent", *_spec_name(sent["name"]), int(sent["corrid"]))
    if received := _RECEIVED.match(message):
        return ClientEvent(ts, "received", *_spec_name(received["name"]), int(received["corrid"]),
                           float(received["rtt"]))
    if match["fac"] == "FAIL" and match["level"] == "6" and (lost := _DISCONNECTED.match(message)):
        return ClientEvent(ts, "disconnected", why=lost["why"])  # level 7 repeats it with a code
    return None


def _spec_name(rdkafka_name: str) -> tuple[str, int | None]:
    try:
        key = rdkafka_api_key(rdkafka_name)
    except KeyError:
        return rdkafka_name, None
    return api_name(key), key


def parse_requests(lines: Iterable[str]) -> list[dict]:
    """Every request a librdkafka log says was completely sent, in log order.

    `connection` names the TCP connection: the client handle, the broker handle and how many
    times that handle had connected (`app#producer-1 127.0.0.1:9092/1 #1`).
    """
    connects: dict[tuple[str, str], int] = {}
    requests = []
    for line in lines:
        match = _LINE.match(line.rstrip("\r\n"))
        if match is None:
            continue
        handle, broker, message = match["handle"], match["broker"], match["message"]
        if connected := _CONNECTED.match(message):
            connects[handle, broker] = int(connected["n"])
        elif sent := _SENT.match(message):
            try:
                key = rdkafka_api_key(sent["name"])
                name = api_name(key)
            except KeyError:  # a name newer than our table: keep the request, flag the name
                key, name = -1, f"rdkafka:{sent['name']}"
            requests.append({
                "api_key": key,
                "api": name,
                "api_version": int(sent["version"]),
                "correlation_id": int(sent["corrid"]),
                "connection": f"{handle} {broker} #{connects.get((handle, broker), 0)}",
            })
    return requests


def problems(lines: Iterable[str]) -> list[str]:
    """The log's warnings and errors (syslog level 4 or more severe), without their prefix."""
    found = []
    for line in lines:
        if line.startswith("%") and line[1:2].isdigit() and int(line[1]) <= 4:
            parts = line.rstrip("\r\n").split("|", 4)
            found.append(f"{parts[2]}: {parts[4].strip()}" if len(parts) == 5 else line.strip())
    return found
