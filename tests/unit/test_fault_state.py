"""Fault state under /run/kshock/faults (here a temporary KSHOCK_RUN_DIR): nothing stays behind."""

from __future__ import annotations

import time

from kshock.apply import faults
from kshock.apply.scope import Scope
from kshock.host.run_dir import RUN_DIR_ENV


def test_a_fault_whose_namespace_is_gone_leaves_no_state_behind(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    scope = Scope(name="ksl-gone-broker")  # no such namespace: its tables went with it
    records = [faults.FaultRecord(name, scope, {"filter": [f"KSHOCK-{name}"]}, time.time(), time.time() + 60)
               for name in ("x", "y")]
    for record in records:
        faults.save(record)
    faults._note_created(scope, "filter")  # kshock's rules had brought the filter table
    assert faults.remove_many(records[:1]) == []
    assert [r.name for r in faults.records()] == ["y"]  # the other fault's state stays
    assert faults.remove_many(records[1:]) == []
    assert faults.records() == [] and not (tmp_path / "faults" / scope.key).exists()


# -- reading state: every field checked (issue 10) -------------------------------------------

import json  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402

from kshock.errors import UserError  # noqa: E402

GOOD = {"name": "f1", "scope": {"name": "ksl-x-broker", "pid": None}, "tables": {"filter": ["KSHOCK-f1"]},
        "created_at": 4.0e9 - 300, "expires_at": 4.0e9, "summary": {"match": "any"}, "tc": [], "restore": "",
        "connmark_mask": 0x100}


def _write(tmp_path, data, folder="netns-ksl-x-broker", name="f1"):
    path = tmp_path / "faults" / folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def test_a_good_record_reads_back_with_its_marks(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    _write(tmp_path, GOOD)
    (record,) = faults.records()
    assert record.connmark_mask == 0x100 and record.marks.connmark == 0x100 and faults.damaged() == []


@pytest.mark.parametrize("field,value", [
    ("expires_at", "soon"), ("expires_at", None), ("expires_at", True), ("expires_at", float("inf")),
    ("expires_at", 1e300), ("created_at", [1]), ("scope", ["ksl-x-broker"]), ("scope", "host"),
    ("scope", {"name": "..", "pid": None}), ("scope", {"name": "", "pid": None}), ("scope", {"name": None, "pid": -3}),
    ("scope", {"name": None, "pid": True}), ("scope", {"name": "a", "pid": 5}), ("scope", {"inode": "x"}),
    ("scope", {"name": "ksl-x-broker", "extra": 1}), ("tables", "KSHOCK-f1"), ("tables", {"filter": "KSHOCK-f1"}),
    ("tables", {"filter": ["INPUT"]}), ("tables", {"nat": ["KSHOCK-f1"]}), ("tables", {"filter": [1]}),
    ("summary", []), ("tc", {}), ("tc", [{"interface": "eth0"}]),
    ("tc", [{"interface": "eth0", "what": "class", "classid": 0x10001, "kind": "tbf"}]), ("restore", 5),
    ("connmark_mask", "0x100"), ("connmark_mask", -1), ("connmark_mask", 1 << 40), ("name", 7), ("name", "a b"),
    ("name", "f\u00e41"),
])
def test_a_field_of_the_wrong_type_skips_the_file_with_a_reason(tmp_path, monkeypatch, field, value):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    path = _write(tmp_path, {**GOOD, field: value})
    assert faults.records() == []
    ((where, reason),) = faults.damaged()
    assert where == path and "\n" not in reason and (field in reason or "its place" in reason), reason


@pytest.mark.parametrize("content", [b"", b"{", json.dumps(GOOD).encode()[:40], b"\xff\xfe\x00{", b"[1, 2]",
                                     b"[" * 100_000 + b"]" * 100_000, b"null", json.dumps(GOOD).encode("utf-16")])
def test_cut_binary_and_deep_files_are_skipped(tmp_path, monkeypatch, content):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    _write(tmp_path, content)
    assert faults.records() == [] and len(faults.damaged()) == 1


def test_a_state_file_in_the_wrong_place_or_not_a_file_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    _write(tmp_path, GOOD, folder="host")  # forget() would look elsewhere
    link = tmp_path / "faults" / "netns-ksl-x-broker" / "f1.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.devnull)  # never read (a device could be endless)
    assert faults.records() == [] and len(faults.damaged()) == 2


def test_marks_in_rules_counts_every_use_of_conntrack_marks():
    from kshock.apply.faults import marks_in_rules

    text = "\n".join([
        "-A PREROUTING -j CONNMARK --set-xmark 0x1000/0x1000",
        "-A INPUT -m connmark --mark 0x20000/0x30000 -j ACCEPT",
        "-A INPUT -m connmark ! --mark 0x4/0x4 -j ACCEPT",
        "-A KSHOCK-x-0c -j CLASSIFY --set-class 4b53:3a01",
        "-A OUTPUT -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0x800",
        ":KSHOCK-y - [0:0]",
    ])
    marks = marks_in_rules(text)
    assert marks.connmark == 0x1000 | 0x30000 | 0x4 | 0x800 and marks.tc_slots == {0x3a}
    assert marks_in_rules("-A OUTPUT -j CONNMARK --save-mark").connmark == 0xFFFFFFFF
    assert marks_in_rules("-A OUTPUT -j CONNMARK --and-mark 0xffff00ff").connmark == 0xFF00


def test_namespace_names_have_one_validator():
    from kshock.host import netns
    from kshock.apply.scope import Scope

    for bad in ("", " ", ".", "..", "a/b", "-x", "x\n", "\u00e9", "a" * 65, None, 3):
        with pytest.raises(UserError):
            netns.check_name(bad)
        assert not netns.exists(bad) if isinstance(bad, str) else True
    for bad in ("", ".", ".."):
        with pytest.raises(UserError):
            Scope(name=bad)
    assert netns.check_name("ksl-lab-c1") == "ksl-lab-c1" and netns.check_name("_x.1") == "_x.1"


def test_a_namespace_nothing_holds_is_gone_and_one_still_held_is_found():
    from kshock.host import netns
    from kshock.apply.scope import Scope, locate

    ours = netns.inode("/proc/self/ns/net")
    assert locate(Scope(pid=4_194_302, inode=(0, 1))) is None  # no such namespace anywhere
    found = locate(Scope(pid=4_194_303, inode=ours))  # the pid is not ours, the namespace is
    assert found is not None and found.via and netns.inode(found.via) == ours


# -- adversarial review: state that lies about its lifetime, lock and entries that are not files --

def test_a_record_lasting_longer_than_a_fault_can_is_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    _write(tmp_path, {**GOOD, "created_at": time.time(), "expires_at": 4.1e9})  # year 2099, made today
    assert faults.records() == []
    ((_, reason),) = faults.damaged()
    assert "expires_at" in reason and "\n" not in reason


def test_a_fifo_lock_is_refused_not_waited_on(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    (tmp_path / "faults").mkdir()
    os.mkfifo(tmp_path / "faults" / ".lock")
    with pytest.raises(UserError) as refused:
        with faults._locked():
            pass
    assert "not a regular file" in refused.value.message and "\n" not in refused.value.message
    (tmp_path / "faults" / ".lock").unlink()
    (tmp_path / "faults" / ".lock").symlink_to(os.devnull)
    with pytest.raises(UserError):
        with faults._locked():
            pass


def test_damaged_entries_that_are_folders_or_fifos_are_discarded_safely(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    folder = tmp_path / "faults" / "host" / "evil.json"
    folder.mkdir(parents=True)
    os.mkfifo(tmp_path / "faults" / "host" / "pipe.json")
    full = tmp_path / "faults" / "host" / "full.json"
    full.mkdir()
    (full / "keep").write_text("x")
    broken = faults.damaged()
    assert len(broken) == 3 and faults.records() == []
    done = {path.name: faults.discard_damaged(path) for path, _ in broken}
    assert done == {"evil.json": True, "pipe.json": True, "full.json": False}
    assert (full / "keep").exists() and not folder.exists()


def test_the_created_tables_note_names_only_filter_and_mangle_and_is_read_safely(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    scope = Scope(name="ksl-x-broker")
    note = faults._created_path(scope)
    note.parent.mkdir(parents=True)
    note.write_text("filter\nnat\nraw\nsecurity\nmangle\n../x\n")
    assert faults._read_created(scope) == {"filter", "mangle"}
    note.unlink()
    note.symlink_to("/dev/zero")  # never read: an endless device behind a link
    assert faults._read_created(scope) == set()
    note.unlink()
    os.mkfifo(note)  # never waited on
    assert faults._read_created(scope) == set()
    faults._note_created(scope, "filter")  # the FIFO is replaced by a plain note
    assert note.is_file() and not note.is_symlink() and faults._read_created(scope) == {"filter"}
    faults._note_created(scope, "nat")
    assert faults._read_created(scope) == {"filter"}
    note.write_bytes(b"filter " * 2000)  # larger than any note
    assert faults._read_created(scope) == set()


def test_a_table_is_dropped_only_when_it_holds_nothing_but_empty_base_chains():
    from kshock.apply.netfilter import only_empty_base_chains

    empty = ("table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n"
             "\tchain OUTPUT {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n")
    assert only_empty_base_chains(empty, "filter") and only_empty_base_chains("table ip mangle {\n}\n", "mangle")
    assert not only_empty_base_chains(empty, "mangle")
    assert not only_empty_base_chains(empty.replace("policy accept", "policy drop"), "filter")
    assert not only_empty_base_chains(empty.replace("\t}\n}", "\t\tcounter accept\n\t}\n}"), "filter")
    assert not only_empty_base_chains(empty.replace("}\n}", "}\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}"), "filter")
    assert not only_empty_base_chains(empty.replace("chain OUTPUT", "chain mine"), "filter")
    assert not only_empty_base_chains("", "filter")


def test_saving_never_writes_through_a_fifo_or_fails_on_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    scope = Scope(name="ksl-x-broker")
    record = faults.FaultRecord("f1", scope, {"filter": ["KSHOCK-f1"]}, time.time(), time.time() + 60)
    folder = faults._path(scope, "f1")
    folder.mkdir(parents=True)
    os.mkfifo(folder.with_suffix(".tmp"))
    faults.save(record)
    assert [r.name for r in faults.records()] == ["f1"] and not folder.with_suffix(".tmp").exists()
