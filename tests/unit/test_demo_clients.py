"""kshock.demo.clients: the clients' own log lines (real librdkafka 2.16 lines from a demo run)
become the events the acts are graded by; nothing else does."""

from __future__ import annotations

from kshock.conditions import parse_condition
from kshock.demo.clients import ClientLog, ClientLogs, of_the_stop, report_totals
from kshock.workloads.rdkafka_log import ClientEvent
from kshock.workloads.rdkafka_log import parse_event as parse_line

SENT = ("%7|1796329765.550|SEND|shop-frontend#producer-2| [thrd:198.18.0.1:9092/111]: 198.18.0.1:9092/111: "
        "Sent ProduceRequest (v10, 279 bytes @ 0, CorrId 2)")
RECEIVED = ("%7|1796329765.551|RECV|shop-frontend#producer-2| [thrd:198.18.0.1:9092/111]: 198.18.0.1:9092/111: "
            "Received ProduceResponse (v10, 49 bytes, CorrId 2, rtt 0.48ms)")
API_VERSION = ("%7|1796329765.494|SEND|shop-frontend#producer-1| [thrd:198.18.0.1:9092/bootstrap]: "
               "198.18.0.1:9092/bootstrap: Sent ApiVersionRequest (v3, 74 bytes @ 0, CorrId 1)")
JOIN = ("%7|1796329765.604|RECV|ledger-2#consumer-2| [thrd:GroupCoordinator]: GroupCoordinator/111: "
        "Received JoinGroupResponse (v5, 65 bytes, CorrId 3, rtt 0.10ms)")
RESET_DEBUG = ("%7|1796329779.569|FAIL|ledger-1#consumer-2| [thrd:198.18.0.1:9092/111]: 198.18.0.1:9092/111: "
               "Disconnected: connection reset by peer (after 13949ms in state UP) (_TRANSPORT)")
RESET_INFO = ("%6|1796329779.569|FAIL|ledger-1#consumer-2| [thrd:198.18.0.1:9092/111]: 198.18.0.1:9092/111: "
              "Disconnected: connection reset by peer (after 13949ms in state UP)")
STATE = ("%7|1796329765.517|STATE|ledger-1#producer-1| [thrd:198.18.0.1:9092/bootstrap]: 198.18.0.1:9092/bootstrap: "
         "Broker changed state INIT -> TRY_CONNECT")


def test_requests_sent_and_answers_received():
    assert parse_line(SENT) == ClientEvent(1796329765.550, "sent", "Produce", 0, 2)
    assert parse_line(RECEIVED) == ClientEvent(1796329765.551, "received", "Produce", 0, 2, rtt_ms=0.48)
    assert parse_line(JOIN) == ClientEvent(1796329765.604, "received", "JoinGroup", 11, 3, rtt_ms=0.10)


def test_librdkafka_names_become_the_spec_names():
    assert parse_line(API_VERSION) == ClientEvent(1796329765.494, "sent", "ApiVersions", 18, 1)


def test_a_lost_connection_counts_once():
    assert parse_line(RESET_INFO) == ClientEvent(1796329779.569, "disconnected", why="connection reset by peer")
    assert parse_line(RESET_DEBUG) is None  # the same event, repeated at debug level with its code


def test_other_lines_are_no_events():
    for line in (STATE, "", "Traceback (most recent call last):", SENT[:60], SENT.replace("CorrId 2", "CorrId x")):
        assert parse_line(line) is None


def test_a_growing_log_is_read_by_complete_lines(tmp_path):
    path = tmp_path / "shop-frontend.client.log"
    log = ClientLog(path)
    assert log.refresh() == []  # not written yet
    path.write_text(SENT + "\n" + RECEIVED[:50])
    assert [e.what for e in log.refresh()] == ["sent"]
    with open(path, "a") as out:
        out.write(RECEIVED[50:] + "\n" + STATE + "\n")
    assert [e.what for e in log.refresh()] == ["sent", "received"]
    assert [e.what for e in log.refresh()] == ["sent", "received"]  # nothing new, nothing twice


def test_questions_by_client_kind_api_and_time(tmp_path):
    (tmp_path / "a.log").write_text("\n".join([API_VERSION, SENT, RECEIVED]) + "\n")
    (tmp_path / "b.log").write_text("\n".join([JOIN, RESET_INFO]) + "\n")
    logs = ClientLogs({"shop-frontend": tmp_path / "a.log", "ledger-2": tmp_path / "b.log"})
    assert logs.count("shop-frontend", "sent") == 2
    assert logs.count("shop-frontend", "sent", "Produce") == 1
    assert logs.count("shop-frontend", "received", "Produce", 1796329765.5505, 1796329765.552) == 1
    assert logs.count("shop-frontend", "received", "Produce", 0, 1796329765.5505) == 0
    assert logs.count("ledger-2", "disconnected") == 1
    assert logs.count("nobody", "sent") == 0
    produce = parse_condition('api == Produce and client_id == "shop-frontend"')
    assert logs.selected(produce) == [1796329765.550]
    assert logs.selected(produce, until=1796329765.5) == []
    assert logs.selected(parse_condition('client_id == "ledger-2"')) == []  # it logged no request sent


def test_report_totals_leave_out_the_stop_only():
    report = {"produced": {"orders": 752}, "produce_failed": {"orders": 2}, "consumed": {},
              "requests_per_api": {"Produce": 752},
              "errors": ["interrupted", "produce to orders failed: _PURGE_QUEUE: Local: Purged in queue",
                         "produce to orders failed: _MSG_TIMED_OUT: Local: Message timed out"],
              "warnings": ["_ALL_BROKERS_DOWN: 1/1 brokers are down"]}
    totals = report_totals(report)
    assert totals["produced"] == 752 and totals["produce_failed"] == 2 and totals["consumed"] == 0
    assert totals["errors"] == ["produce to orders failed: _MSG_TIMED_OUT: Local: Message timed out"]
    assert totals["warnings"] == ["_ALL_BROKERS_DOWN: 1/1 brokers are down"]
    assert report_totals(None)["produced"] == 0
    assert of_the_stop("interrupted") and not of_the_stop("OffsetCommit failed: Broker: Unknown member")
