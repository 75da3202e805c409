"""PURE: the compiler's output — a rule set as plain, frozen data.

A `RuleSet` owns its chains (named `KSHOCK-<name>...`), the jumps into them from the built-in
chains, and an expiry the kernel enforces (`-m time --datestop`). Nothing here knows how the
rules get into the kernel; `render` turns them into text and `emulate` evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The u32 path from the IPv4 header to the first byte of the TCP payload, for any IP header
# length: IHL*4, then the TCP data offset*4 (`@` moves the cursor by the value read).
IPV4_TO_PAYLOAD = "0>>22&0x3C@12>>26&0x3C"
# xt_u32 allows only 10 numbers per location (XT_U32_MAXSIZE), and the general path above
# spends 6 of them. Kafka tests use a 3-number path instead — read the TCP data offset at the
# fixed position 32 and add the 20-byte IP header to every offset — and guard it with the test
# IHL_IS_5 in the same match. IPv4 options (IHL > 5) are vanishingly rare; such a packet simply
# does not match, which `explain` says.
TCP_DATA_OFFSET = "32>>26&0x3C"
IP_HEADER = 20
IHL_IS_5 = "0>>24=0x45"
# xt_u32 accepts at most 10 tests per match, and 10 numbers per location (XT_U32_MAXSIZE).
U32_MAX_TESTS = 10
U32_MAX_NUMBERS = 10
# A rule's matches travel in one netlink message, and with iptables-nft a rule over ~32 KB of
# match data loads without an error but comes out EMPTY: iptables-save shows its chain with no
# rule (measured, Linux 6.18, iptables 1.8.9 nf_tables: 15 `-m u32` matches of 1,984 bytes each
# load, 16 do not). The compiler keeps a rule to 14, leaving room for kshock's other matches
# (connmark, statistic, time, comment): a client id or topic of about 490 bytes at most.
U32_MAX_MATCHES = 14


@dataclass(frozen=True, slots=True)
class Hop:
    """Move the cursor forward by a length read from the packet: read the 4 bytes at
    `offset` from the cursor, `>> shift`, `& mask`, and add the result to the cursor.
    This is how u32 steps over a variable-length field such as the client-id."""

    offset: int
    shift: int = 16
    mask: int = 0xFFFF
    field: str = ""


@dataclass(frozen=True, slots=True)
class U32Test:
    """Read 4 bytes at `offset` from the cursor (first the TCP payload start, then wherever the
    `hops` moved it), `& mask`, `>> shift`, and accept a value inside any of `ranges`."""

    offset: int
    ranges: tuple[tuple[int, int], ...]
    mask: int = 0xFFFFFFFF
    shift: int = 0
    hops: tuple[Hop, ...] = ()
    field: str = ""  # the Kafka field this test reads, for `explain`
    note: str = ""

    def expression(self) -> str:
        """The xt_u32 text of this one test (tests are joined with ' && '); the match that
        holds it must also hold IHL_IS_5 (see TCP_DATA_OFFSET)."""
        path = TCP_DATA_OFFSET
        numbers = 3
        for hop in self.hops:
            path += f"@{IP_HEADER + hop.offset}>>{hop.shift}"
            numbers += 2
            if hop.mask != _MASK_AFTER_SHIFT.get(hop.shift):
                path += f"&0x{hop.mask:X}"
                numbers += 1
        path += f"@{IP_HEADER + self.offset}"
        numbers += 1
        if self.mask != 0xFFFFFFFF:
            path += f"&0x{self.mask:X}"
            numbers += 1
        if self.shift:
            path += f">>{self.shift}"
            numbers += 1
        if numbers > U32_MAX_NUMBERS:
            raise ValueError(f"u32 location for {self.field or 'a test'} needs {numbers} numbers "
                             f"(the kernel allows {U32_MAX_NUMBERS})")
        values = ",".join(f"0x{lo:X}" if lo == hi else f"0x{lo:X}:0x{hi:X}" for lo, hi in self.ranges)
        return f"{path}={values}"


# A right shift already clears the high bits: no mask needed after it.
_MASK_AFTER_SHIFT = {16: 0xFFFF, 24: 0xFF}


@dataclass(frozen=True, slots=True)
class StringWindow:
    """`-m string --algo kmp --hex-string PATTERN --from FROM --to TO`: the pattern must lie
    wholly inside bytes [from_offset, to_offset) counted from the start of the IP header."""

    pattern: bytes
    from_offset: int
    to_offset: int
    field: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class KernelRule:
    """One iptables rule. Matches are ANDed; `target` is DROP, REJECT, RETURN, a chain name,
    or CONNMARK/MARK with `target_args`."""

    target: str
    target_args: tuple[str, ...] = ()
    protocol: str = "tcp"
    source: str | None = None
    destination: str | None = None
    source_port: int | None = None
    destination_port: int | None = None
    in_interface: str | None = None
    out_interface: str | None = None
    payload_required: bool = False  # u32 read at payload offset 0: fails on an empty segment
    tcp_flags: tuple[str, str] | None = None  # (mask, compare), e.g. ("SYN,RST,ACK,FIN", "SYN")
    u32: tuple[tuple[U32Test, ...], ...] = ()  # each inner tuple is one `-m u32` (<= 10 tests)
    strings: tuple[StringWindow, ...] = ()
    connmark: tuple[int, int] | None = None  # (value, mask): `-m connmark --mark value/mask`
    statistic: tuple[str, ...] = ()  # ("random", "0.3") or ("nth", "5", "0")
    datestop: str | None = None  # UTC, "2026-11-24T05:00:00"
    comment: str = ""


def u32_matches(rule: KernelRule) -> int:
    """How many `-m u32` matches the rule renders to (the payload-present test is one)."""
    return len(rule.u32) + (1 if rule.payload_required else 0)


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    rules: tuple[KernelRule, ...]


@dataclass(frozen=True, slots=True)
class Jump:
    """The one rule kshock adds to a built-in chain: send matching traffic to its own chain."""

    builtin: str  # INPUT | OUTPUT | FORWARD
    rule: KernelRule


@dataclass(frozen=True, slots=True)
class TrafficControl:
    """A traffic-control fault, as a plan: packets the rule set's mangle-table rules send to
    `-j CLASSIFY --set-class <classid>` get this netem/tbf treatment when they leave by
    `interface` (resolved at apply time when None). CLASSIFY sets skb->priority, which htb reads
    as a class id directly, so the apply backend needs only an htb root, a class `classid` and
    the qdisc inside it: no tc filter. tc shapes a device's egress, so the classified packets
    are always ones that leave this host (OUTPUT) or pass through it (FORWARD)."""

    rule: str
    classid: int  # major << 16 | minor, the htb class (kshock's root htb is 4b53:)
    kind: str  # rate | delay | duplicate | corrupt | reorder
    hook: str  # the built-in chain the marks are set from: OUTPUT | FORWARD
    interface: str | None = None
    percent: float | None = None
    rate_bit_s: int | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Marks:
    """What a rule set claims in its namespace that no other rule set there may share: conntrack
    mark bits (CONNMARK set and tested; a bit in 0x00FFFF00) and htb class slots (the <slot> of
    the CLASSIFY classes 4b53:<slot><index> its tc rules pick, 1-254)."""

    connmark: int = 0
    tc_slots: frozenset[int] = frozenset()

    def __or__(self, other: Marks) -> Marks:
        return Marks(self.connmark | other.connmark, self.tc_slots | other.tc_slots)

    def __and__(self, other: Marks) -> Marks:
        return Marks(self.connmark & other.connmark, self.tc_slots & other.tc_slots)

    def __bool__(self) -> bool:
        return bool(self.connmark or self.tc_slots)


@dataclass(frozen=True, slots=True)
class RuleSet:
    name: str
    chains: tuple[Chain, ...]
    jumps: tuple[Jump, ...]
    table: str = "filter"
    family: str = "ipv4"
    expires_at: str | None = None  # UTC; every rule carries it as --datestop
    warnings: tuple[str, ...] = field(default=())
    traffic_control: tuple[TrafficControl, ...] = ()  # tc faults the mangle-table CLASSIFY rules select
    connmark_mask: int = 0  # the conntrack mark bits this rule set sets and tests

    @property
    def chain_names(self) -> tuple[str, ...]:
        return tuple(chain.name for chain in self.chains)

    @property
    def marks(self) -> Marks:
        return Marks(self.connmark_mask, frozenset((control.classid >> 8) & 0xFF for control in self.traffic_control))
