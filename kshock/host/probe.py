"""EDGE: short question-and-answer exchanges with a Kafka broker (kafka-python's protocol classes).

Used where kshock must ask rather than watch: is the lab's broker up (ApiVersions), and which
ids do these topics have (Metadata v10+), for rules on requests that name topics by id
(Produce v13, Fetch v13+) when no Metadata response went by in the capture.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from kshock.host.netns import entered

METADATA = 3
TOPIC_ID_METADATA = 10  # the first Metadata version whose answer carries topic ids


@dataclass(frozen=True, slots=True)
class ApiVersionsAnswer:
    error_code: int
    api_count: int
    max_versions: dict[int, int]  # api_key -> the broker's max version


def connect(host: str, port: int, timeout_s: float, netns: str | None = None) -> socket.socket:
    with entered(netns):
        return socket.create_connection((host, port), timeout=timeout_s)


def exchange(sock: socket.socket, request, response_class, correlation_id: int):
    """Send one request (kafka-python object) and decode its answer; OSError/ValueError on failure."""
    request.with_header(correlation_id=correlation_id, client_id="kshock-probe")
    sock.sendall(request.encode(header=True, framed=True))
    size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
    if not 0 < size < 64 << 20:
        raise ValueError(f"implausible response size {size}")
    response = response_class.decode(_recv_exactly(sock, size), header=True)
    if response.header.correlation_id != correlation_id:
        raise ValueError("the response has the wrong correlation id")
    return response


def api_versions(sock: socket.socket) -> ApiVersionsAnswer:
    from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

    response = exchange(sock, ApiVersionsRequest[0](), ApiVersionsResponse[0], 1)
    keys = {entry.api_key: entry.max_version for entry in response.api_keys}
    return ApiVersionsAnswer(response.error_code, len(keys), keys)


def probe_api_versions(host: str, port: int, timeout_s: float = 2.0, netns: str | None = None) -> ApiVersionsAnswer:
    """Send one ApiVersions v0 request and decode the answer; raises OSError/ValueError on failure."""
    with connect(host, port, timeout_s, netns) as sock:
        return api_versions(sock)


def topic_ids(host: str, port: int, names: Iterable[str], timeout_s: float = 3.0,
              netns: str | None = None) -> dict[str, bytes]:
    """Topic name -> 16-byte id for those of `names` the broker knows (never creates a topic).

    Raises ValueError when the broker's Metadata carries no topic ids (older than Kafka 2.8),
    OSError when it cannot be reached."""
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    wanted = sorted(set(names))
    with connect(host, port, timeout_s, netns) as sock:
        broker_max = api_versions(sock).max_versions.get(METADATA, -1)
        version = min(broker_max, len(MetadataRequest) - 1)
        if version < TOPIC_ID_METADATA:
            raise ValueError(f"the broker answers Metadata up to v{broker_max}, and topic ids came with "
                             f"v{TOPIC_ID_METADATA}")
        request_class = MetadataRequest[version]
        fields = {"topics": [request_class.MetadataRequestTopic(name=name, topic_id=None) for name in wanted],
                  "allow_auto_topic_creation": False}
        if version >= 11:
            fields["include_topic_authorized_operations"] = False
        else:
            fields.update(include_cluster_authorized_operations=False, include_topic_authorized_operations=False)
        response = exchange(sock, request_class(**fields), MetadataResponse[version], 2)
    found = {}
    for topic in response.topics:
        topic_id = getattr(topic, "topic_id", None)
        if topic.error_code == 0 and topic.name in wanted and topic_id is not None and any(topic_id.bytes):
            found[topic.name] = topic_id.bytes
    return found


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)
