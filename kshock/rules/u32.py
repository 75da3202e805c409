"""PURE: building xt_u32 tests — byte strings as word comparisons, negations, the header guards.

xt_u32 compares 32-bit words read at offsets (after optional `@` hops) against ranges, at most
10 tests per match. Everything the compiler knows about turning "these bytes are here" into
such words lives here: whole words with an overlapping last word so no read passes the field's
end, masked words for short fields, complements as disjoint alternatives, and the frame-start
guard that keeps record bytes deep inside a large frame from passing for a request header.
"""

from __future__ import annotations

from dataclasses import replace

from kshock.rules.kernel import U32_MAX_TESTS, Hop, U32Test
from kshock.rules.ranges import Ranges, complement, listed, versions_text
from kshock.wire.apis import api_name
from kshock.wire.layout import API_AT, CLIENT_ID_AT

# The frame-start guard: what a request (or response) header at payload offset 0 looks like.
MAX_FRAME = 0x06400000  # 100 MiB, the broker's socket.request.max.bytes default
MIN_REQUEST = 10  # api_key, api_version, correlation_id, client-id length
MIN_RESPONSE = 4  # correlation_id
GUARD_API = (0, 0x3FF)
GUARD_VERSION = (0, 0x7F)
TESTS_PER_MATCH = U32_MAX_TESTS - 1  # one test of each -m u32 is the IHL guard


def bytes_tests(data: bytes, at: int, hops: tuple[Hop, ...], field_: str, note: str = "") -> list[U32Test]:
    """Tests that the bytes at `at` equal `data`: whole words; the last word ends at the last
    byte (overlapping the previous word) so no read goes past the field — a field that ends its
    frame may end its packet, and xt_u32 never matches a read past the end; under 4 bytes, one
    masked word ending at the field's last byte (or, right at the start of a hop, beginning at
    its first)."""
    n = len(data)
    if n < 4:
        word = int.from_bytes(data, "big")
        if at >= 4 - n:
            return [U32Test(at + n - 4, ((word, word),), mask=(1 << 8 * n) - 1, hops=hops, field=field_,
                            note=note)]
        word <<= 8 * (4 - n)
        mask = (0xFFFFFFFF << (8 * (4 - n))) & 0xFFFFFFFF
        return [U32Test(at, ((word, word),), mask=mask, hops=hops, field=field_, note=note)]
    starts = list(range(0, n - 3, 4))
    if starts[-1] != n - 4:
        starts.append(n - 4)
    return [U32Test(at + s, ((w, w),), hops=hops, field=field_, note=note)
            for s in starts for w in (int.from_bytes(data[s:s + 4], "big"),)]


def negate(test: U32Test, exclude: Ranges = ()) -> U32Test | None:
    """The test with complement ranges (None: the complement is empty)."""
    ranges = complement(test.ranges + exclude, 32 - test.shift)
    return replace(test, ranges=ranges, note=(test.note + " (differs)").strip()) if ranges else None


def differs(tests: list[U32Test], exclude_first: Ranges = ()) -> list[list[U32Test]]:
    """not (t0 and t1 and ...), as disjoint alternatives: [not t0], [t0, not t1], ..."""
    out = []
    for k, test in enumerate(tests):
        negated = negate(test, exclude_first if k == 0 else ())
        if negated is not None:
            out.append(tests[:k] + [negated])
    return out


def match_groups(tests: tuple[U32Test, ...] | list[U32Test]) -> tuple[tuple[U32Test, ...], ...]:
    """Tests cut into `-m u32` matches the kernel accepts (TESTS_PER_MATCH each)."""
    tests = tuple(tests)
    return tuple(tests[i:i + TESTS_PER_MATCH] for i in range(0, len(tests), TESTS_PER_MATCH))


def api_tests(api: Ranges | None, version: Ranges | None) -> list[U32Test]:
    """Tests on the word at offset 4 (api_key << 16 | api_version); one test when the product
    of keys and version ranges fits the kernel's 10 ranges, else one per half. An absent side
    gets the frame-start guard."""
    if api is not None and version is not None:
        keys = listed(api)
        if keys is not None and len(keys) * len(version) <= 10:
            ranges = tuple(((k << 16) | low, (k << 16) | high) for k in keys for low, high in version)
            note = " or ".join(f"{api_name(k)} {versions_text(version)}" for k in keys)
            return [U32Test(API_AT, ranges, field="api_key, api_version", note=note)]
    tests = []
    if api is not None:
        keys = listed(api)
        note = ", ".join(api_name(k) for k in keys) if keys else ""
        tests.append(U32Test(API_AT, api, shift=16, field="api_key", note=note))
    else:
        tests.append(U32Test(API_AT, (GUARD_API,), shift=16, field="api_key", note="frame-start guard"))
    if version is not None:
        tests.append(U32Test(API_AT, version, mask=0xFFFF, field="api_version"))
    else:
        tests.append(U32Test(API_AT, (GUARD_VERSION,), mask=0xFFFF, field="api_version",
                             note="frame-start guard"))
    return tests


def client_equal(value: str) -> list[U32Test]:
    """The request header's client id (int16 length and bytes) is `value`."""
    data = value.encode()
    return bytes_tests(len(data).to_bytes(2, "big") + data, CLIENT_ID_AT, (), "client_id",
                       f"length {len(data)} and {value!r}")


def client_differs(value: str) -> list[list[U32Test]]:
    """A non-null client id other than `value`, as disjoint alternatives."""
    tests = client_equal(value)
    first = tests[0]
    # The null id (length -1): the int16 length sits in the first word read at bit `shift` (16
    # for a full word at the length; lower for a short id's masked word ending at its last byte,
    # where a fixed 0xFFFF0000 excluded every length and `client_id != ""` matched nothing).
    shift = 8 * (first.offset + 2 - CLIENT_ID_AT)
    null = (((0xFFFF << shift) & first.mask, ((0xFFFF << shift) | ((1 << shift) - 1)) & first.mask),)
    return differs(tests, exclude_first=null)


__all__ = ["GUARD_API", "GUARD_VERSION", "MAX_FRAME", "MIN_REQUEST", "MIN_RESPONSE", "TESTS_PER_MATCH",
           "api_tests", "bytes_tests", "client_differs", "client_equal", "differs", "match_groups", "negate"]
