"""PURE: sets of integer values as sorted, disjoint (low, high) ranges — what one u32 test holds.

A condition on a number (`api_version >= 3`, `acks != 0`) becomes ranges of the unsigned word
the kernel reads; negation is the complement within the field's width and two tests on one
field intersect. Signed wire values (int16 acks -1) map to their two's-complement words here,
once, so the rest of the compiler only ever sees unsigned ranges.
"""

from __future__ import annotations

Ranges = tuple[tuple[int, int], ...]


def domain(bits: int) -> Ranges:
    """Every value a field of `bits` bits can hold."""
    return ((0, (1 << bits) - 1),)


def normalize(ranges) -> Ranges:
    out: list[list[int]] = []
    for low, high in sorted(r for r in ranges if r[0] <= r[1]):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return tuple((low, high) for low, high in out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    return normalize((max(x[0], y[0]), min(x[1], y[1])) for x in a for y in b)


def complement(a: Ranges, bits: int) -> Ranges:
    out, at = [], 0
    for low, high in normalize(a):
        if low > at:
            out.append((at, low - 1))
        at = high + 1
    if at <= (1 << bits) - 1:
        out.append((at, (1 << bits) - 1))
    return tuple(out)


def signed(low: int, high: int, bits: int) -> Ranges:
    """A signed interval as unsigned ranges of the same width (two's complement)."""
    top = 1 << bits
    low, high = max(low, -(top >> 1)), min(high, (top >> 1) - 1)
    if low > high:
        return ()
    if low >= 0:
        return ((low, high),)
    if high < 0:
        return ((low + top, high + top),)
    return normalize(((0, high), (low + top, top - 1)))


def op_ranges(op: str, value: int, bits: int) -> Ranges:
    """`field <op> value` as unsigned ranges of a `bits`-wide word."""
    big = 1 << bits
    interval = {"==": (value, value), "<": (-big, value - 1), "<=": (-big, value), ">": (value + 1, big),
                ">=": (value, big)}.get(op)
    if op == "!=":
        return complement(signed(value, value, bits), bits)
    return signed(*interval, bits)


def listed(ranges: Ranges, most: int = 16) -> list[int] | None:
    """The values of small ranges one by one (api keys); None when there are more than `most`."""
    count = sum(high - low + 1 for low, high in ranges)
    if count > most:
        return None
    return [k for low, high in ranges for k in range(low, high + 1)]


def versions_text(ranges: Ranges) -> str:
    return ",".join(f"v{low}" if low == high else f"v{low}-{high}" for low, high in ranges)


__all__ = ["Ranges", "complement", "domain", "intersect", "listed", "normalize", "op_ranges", "signed",
           "versions_text"]
