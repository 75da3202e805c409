"""u32: byte strings as word tests that never read past the field, and their complements."""

from __future__ import annotations

from kshock.rules.u32 import MAX_FRAME, api_tests, bytes_tests, client_differs, client_equal, differs, match_groups


def test_the_last_word_overlaps_so_no_read_passes_the_field():
    tests = bytes_tests(b"abcdef", 14, (), "client_id")
    assert [(t.offset, t.ranges) for t in tests] == [(14, ((0x61626364, 0x61626364),)),
                                                    (16, ((0x63646566, 0x63646566),))]


def test_a_short_field_is_one_masked_word_ending_at_its_last_byte():
    (test,) = bytes_tests(b"ab", 14, (), "x")
    assert (test.offset, test.mask, test.ranges) == (12, 0xFFFF, ((0x6162, 0x6162),))
    (test,) = bytes_tests(b"ab", 0, (), "x")  # at the start of a hop: begin at the first byte
    assert (test.offset, test.mask, test.ranges) == (0, 0xFFFF0000, ((0x61620000, 0x61620000),))


def test_differs_gives_disjoint_alternatives():
    tests = bytes_tests(b"abcdefgh", 0, (), "x")
    first, second = differs(tests)
    assert len(first) == 1 and first[0].ranges == ((0, 0x61626363), (0x61626365, 0xFFFFFFFF))
    assert second[0] == tests[0] and len(second) == 2


def test_client_ids_other_than_one_exclude_the_null_id():
    assert [(t.offset, t.ranges) for t in client_equal("ab")] == [(12, ((0x00026162, 0x00026162),))]
    (other,) = client_differs("ab")  # neither "ab" nor the null id (length 0xFFFF)
    assert other[0].ranges == ((0, 0x00026161), (0x00026163, 0xFFFEFFFF))
    (other,) = client_differs("")  # a masked short word: the null length sits lower in it
    assert (other[0].offset, other[0].mask, other[0].ranges) == (10, 0xFFFF, ((1, 0xFFFE), (0x10000, 0xFFFFFFFF)))


def test_api_word_tests_and_the_frame_start_guard():
    (both,) = api_tests(((0, 0),), ((3, 8),))
    assert both.offset == 4 and both.ranges == ((3, 8),)
    key, version = api_tests(None, None)
    assert (key.shift, key.note, version.mask, version.note) == (16, "frame-start guard", 0xFFFF, "frame-start guard")
    assert MAX_FRAME == 100 * 1024 * 1024


def test_match_groups_leave_room_for_the_ihl_guard():
    tests = bytes_tests(bytes(40), 0, (), "x")
    assert [len(g) for g in match_groups(tests)] == [9, 1]
