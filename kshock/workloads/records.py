"""PURE: the records workloads produce — recognisable keys, headers and values of a given size."""

from __future__ import annotations


def record_key(client_id: str, seq: int) -> bytes:
    return f"{client_id}-{seq}".encode()


def record_headers(client_id: str, seq: int) -> list[tuple[str, bytes]]:
    return [("kshock-client", client_id.encode()), ("kshock-seq", str(seq).encode())]


def payload(client_id: str, seq: int, size: int) -> bytes:
    """`size` bytes: a JSON-ish head naming the record, padded with text that compresses well
    but not to nothing (so every codec has work to do)."""
    head = f'{{"client":"{client_id}","seq":{seq},"pad":"'.encode()
    filler = b"".join(f"{(seq * 7919 + i) % 100000:05d} lorem ipsum kafka ".encode() for i in range(size // 24 + 1))
    body = (head + filler)[: max(size - 2, 0)] + b'"}'
    return body[:size]
