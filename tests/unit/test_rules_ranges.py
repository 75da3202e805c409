"""ranges: integer conditions as unsigned (low, high) ranges of the word the kernel reads."""

from __future__ import annotations

from kshock.rules.ranges import complement, domain, intersect, listed, normalize, op_ranges, signed, versions_text


def test_normalize_sorts_merges_touching_ranges_and_drops_empty_ones():
    assert normalize([(5, 9), (0, 2), (3, 4), (12, 11)]) == ((0, 9),)
    assert normalize([(10, 20), (0, 1)]) == ((0, 1), (10, 20))


def test_complement_and_intersect_stay_inside_the_width():
    assert complement(((0, 0),), 16) == ((1, 0xFFFF),)
    assert complement(domain(16), 16) == ()
    assert intersect(((0, 10),), ((5, 20), (30, 40))) == ((5, 10),)


def test_signed_values_become_their_twos_complement_words():
    assert signed(-1, -1, 16) == ((0xFFFF, 0xFFFF),)  # acks == all
    assert signed(-1, 1, 16) == ((0, 1), (0xFFFF, 0xFFFF))
    assert signed(40000, 50000, 16) == ()  # beyond an int16


def test_operators():
    assert op_ranges(">=", 3, 16) == ((3, 0x7FFF),)
    assert op_ranges("<", 0, 16) == ((0x8000, 0xFFFF),)
    assert op_ranges("!=", 0, 16) == ((1, 0xFFFF),)


def test_listed_and_versions_text():
    assert listed(((0, 1), (3, 3))) == [0, 1, 3]
    assert listed(domain(16)) is None
    assert versions_text(((0, 2), (9, 9))) == "v0-2,v9"
