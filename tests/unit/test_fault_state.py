"""Fault state under /run/kshock/faults (here a temporary KSHOCK_RUN_DIR): nothing stays behind."""

from __future__ import annotations

import time

from kshock.apply import faults
from kshock.apply.scope import Scope
from kshock.lab.state import RUN_DIR_ENV


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
