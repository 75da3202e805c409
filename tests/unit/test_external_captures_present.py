"""The public captures the wire tests read are where the project expects them: ../shared beside
the repository (not a path of one machine). Without them test_wire_captures.py and
test_wire_capture_file.py would collect nothing and pass; this test fails instead, saying where
it looked."""

from __future__ import annotations

from wire_helpers import EXTERNAL, external_captures

# the 15 files SOURCES.md lists (section 1)
LISTED = {
    "arkime/kafka.pcap", "go-sniffer/kafka.pcap", "ndpi/kafka.pcapng",
    "deepflow/00-produce-v2.pcap", "deepflow/00-produce-v7-sw8.pcap", "deepflow/00-produce-v9.pcap",
    "deepflow/01-fetch-v12-ok.pcap", "deepflow/01-fetch-v12-perf.pcap", "deepflow/01-fetch-v12-unknown.pcap",
    "deepflow/11-join-group-v7.pcap", "deepflow/13-leave-group-v4.pcap", "deepflow/14-sync-group-v5.pcap",
    "deepflow/18-api-versions-v3.pcap", "deepflow/mixed-with-unsupported.pcap",
    "deepflow/history/produce-v9.2023-b3b9b60.pcap",
}


def test_every_listed_public_capture_is_present():
    found = {p.relative_to(EXTERNAL).as_posix() for p in external_captures()}
    assert found == LISTED, f"in {EXTERNAL.resolve()}: missing {sorted(LISTED - found)}, unlisted {sorted(found - LISTED)}"


def test_the_location_is_relative_to_the_repository():
    here = EXTERNAL.resolve()
    assert here.parts[-3:] == ("shared", "captures", "external")
    assert EXTERNAL.parts[-4] == ".."  # beside the repository, whichever machine it is on
