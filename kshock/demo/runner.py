"""EDGE: `kshock demo` — bring the stage up, play the acts, print the summary, clean up.

Exit status: 0 when every act showed what it claims (its checks passed: against the clients' own
logs as it ran, and against their reports once cleanup stopped them) and cleanup left nothing
behind; 1 otherwise; 130 when interrupted (cleanup still runs).

With `--json FILE` the summary goes to FILE, and the clients' own records — each workload's
report (`<client-id>.json`) and its client library's log (`<client-id>.client.log`) — are kept in
the folder `FILE` minus its suffix plus `.clients` (named in the summary as `clients_dir`), so a
reader can check the acts' claims against them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

from kshock.demo.acts import GROUP_MEMBERS, GROUP_PARTITIONS, OTHER_PRODUCER, TITLES, VICTIM_PRODUCER, ActResult, \
    Show, act_modules
from kshock.demo.narrator import Narrator
from kshock.demo.observe import client_of
from kshock.demo.stage import Stage
from kshock.errors import ExitStatus

CLAIMS = {
    1: "live decoded traffic and per-client stats, straight off the lab bridge",
    2: f"block {VICTIM_PRODUCER}'s Produce requests: no acks for it, while {OTHER_PRODUCER} keeps producing",
    3: "reset one consumer-group member's connections: the group rebalances, the other member takes over",
    4: "connected (TCP handshake done), but nothing answers",
    5: "a 5 s fault that nothing reverts: the kernel's -m time --datestop ends it",
    6: "did the acts' rules hit exactly what they meant? replayed on the demo's own capture",
}
READY_WAIT_S = 30.0
WORKLOAD_S = 240.0  # they are stopped at the end; this only bounds an orphan
WORKLOAD_INTERACTIVE_S = 3600.0


def run(args: argparse.Namespace) -> int:
    say = Narrator()
    acts = [args.act] if args.act else sorted(act_modules())
    started = time.monotonic()
    results: list[ActResult] = []
    interrupted = False
    truth: dict = {}
    leftovers: list[str] = []
    clients_dir = None
    owner = os.getpid()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _interrupt(owner))
    work_dir = Path(tempfile.mkdtemp(prefix="kshock-demo-"))
    stage = None
    try:
        say.banner(f"kshock demo — {'act ' + str(args.act) if args.act else 'six acts'} on lab {args.lab}")
        stage = Stage.open(args.lab, work_dir)
        say.say(stage.up_message)
        stage.start_tap()
        stage.start_workloads(WORKLOAD_INTERACTIVE_S if args.interactive else WORKLOAD_S)
        say.say("clients: " + ", ".join(f"{w.workload.client_id} ({w.workload.kind}, {w.host.name})"
                                        for w in stage.workloads) + f"; probes from {stage.probe_host.name}")
        waited = say.wait(READY_WAIT_S, "waiting for the producers' first acks and the ledger group to form",
                          until=lambda: ready(stage))
        if ready(stage):
            say.say(f"ready after {waited:.1f} s")
        else:
            say.warn(f"not everything is ready after {READY_WAIT_S:g} s; the acts go on and will say what they miss")
        for number in acts:
            if args.interactive:
                say.pause(f"Enter for act {number} ({TITLES[number]})")
            results.append(play(number, stage, say))
    except KeyboardInterrupt:
        interrupted = True
        say.line()
        say.warn("interrupted — cleaning up")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if stage is not None:
            with _no_interrupts():
                stage.close()
                truth = ground_truth(stage)
                leftovers = left_behind(stage)
            say.say("cleanup: " + "; ".join(stage.notes) + (f"; LEFT BEHIND: {', '.join(leftovers)}" if leftovers
                                                             else "; nothing left behind"))
            if results and not interrupted:
                grade_reports(stage, results, say)
            if args.json:
                clients_dir = keep_client_records(stage, Path(args.json))
        shutil.rmtree(work_dir, ignore_errors=True)
    seconds = time.monotonic() - started
    ok = bool(results) and all(r.ok for r in results) and not leftovers and not interrupted \
        and len(results) == len(acts)
    print_summary(say, results, truth, seconds, ok, interrupted)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "ok": ok, "seconds": round(seconds, 2), "lab": args.lab, "interrupted": interrupted,
            "work_dir": str(work_dir), "acts_asked": acts,
            "acts": [r.as_json() for r in results], "ground_truth": truth, "left_behind": leftovers,
            "clients_dir": None if clients_dir is None else str(clients_dir),
        }, indent=2, default=str) + "\n")
    if interrupted:
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if ok else ExitStatus.FAILED


def play(number: int, stage: Stage, say: Narrator) -> ActResult:
    say.act(number, TITLES[number], CLAIMS[number])
    result = ActResult(number, TITLES[number])
    started = time.monotonic()
    try:
        module = importlib.import_module(f"kshock.demo.acts.{act_modules()[number]}")
        module.run(Show(stage, say), result)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 — an act that breaks fails; the demo goes on and cleans up
        result.error = f"{type(error).__name__}: {error}"
        say.warn(f"act {number} failed: {result.error}")
        say.frame(traceback.format_exc(limit=3).strip().splitlines()[-3])
    finally:
        result.seconds = time.monotonic() - started
    for check in result.checks:
        say.check(check.ok, f"{check.claim}" + (f" — {check.detail}" if check.detail else ""))
    if stage.tap is not None and stage.tap.error is not None:
        result.error = result.error or f"live capture stopped: {stage.tap.error}"
    return result


def grade_reports(stage: Stage, results: list[ActResult], say: Narrator) -> None:
    """The acts' last checks, against the reports the clients wrote when cleanup stopped them."""
    graders = [(result, getattr(importlib.import_module(f"kshock.demo.acts.{act_modules()[result.number]}"),
                                "grade_reports", None)) for result in results if result.error is None]
    graders = [(result, grade) for result, grade in graders if grade is not None]
    if not graders:
        return
    reports = stage.reports()
    say.line()
    say.say(say.paint(f"the clients' own reports ({len(reports)} of {len(stage.workloads)} written):", "bold"))
    for result, grade in graders:
        before = len(result.checks)
        try:
            grade(reports, result)
        except Exception as error:  # noqa: BLE001 — a grading that breaks fails its act
            result.error = f"grading against the reports: {type(error).__name__}: {error}"
            say.warn(f"act {result.number}: {result.error}")
        for check in result.checks[before:]:
            say.check(check.ok, f"act {result.number}: {check.claim}" + (f" — {check.detail}" if check.detail else ""))


def keep_client_records(stage: Stage, summary: Path) -> Path | None:
    """Copy each client's report and log next to the summary, for whoever checks the claims."""
    folder = summary.with_suffix(".clients")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for running in stage.workloads:
            for path in (running.report_path, running.client_log):
                if path.exists():
                    shutil.copyfile(path, folder / path.name)
    except OSError:
        return None
    return folder


def ready(stage: Stage) -> bool:
    """Both producers acknowledged in the last 2 s, and each group member fetches its own partition."""
    now = time.time()
    frames = stage.tap.log.between(now - 2.0, now)
    acked = {client_of(f) for f in frames if f.kind == "response" and f.api == "Produce"}
    owned: dict[str, set[int]] = {m: set() for m in GROUP_MEMBERS}
    for f in frames:
        if f.kind == "request" and f.api == "Fetch" and client_of(f) in owned:
            owned[client_of(f)].update(f.partitions)
    parts = list(owned.values())
    return ({VICTIM_PRODUCER, OTHER_PRODUCER} <= acked and all(parts)
            and set().union(*parts) == GROUP_PARTITIONS and not set.intersection(*parts))


def ground_truth(stage: Stage) -> dict:
    """What each client says it did (its own report, written when it was stopped)."""
    out = {}
    for running in stage.workloads:
        report = running.report or {}
        out[running.workload.client_id] = {
            "produced": sum(report.get("produced", {}).values()),
            "produce_failed": sum(report.get("produce_failed", {}).values()),
            "consumed": sum(report.get("consumed", {}).values()),
            "requests": len(report.get("requests", [])),
            "errors": report.get("errors", [])[:3],
            "exit_code": running.process.returncode,
        }
    return out


def left_behind(stage: Stage) -> list[str]:
    from kshock.host import netns
    from kshock.apply import faults

    found = [f"namespace {n}" for n in netns.names() if n.startswith(f"ksl-{stage.lab_name}-")]
    found += [f"process {w.process.pid} ({w.workload.client_id})" for w in stage.workloads if w.process.poll() is None]
    lab_scopes = {f"ksl-{stage.lab_name}-"}
    found += [f"fault {r.name} in {r.scope.describe()}" for r in faults.records()
              if r.scope.name and any(r.scope.name.startswith(p) for p in lab_scopes)]
    return found


def print_summary(say: Narrator, results: list[ActResult], truth: dict, seconds: float, ok: bool,
                  interrupted: bool = False) -> None:
    say.line()
    say.banner("Summary")
    header = ("act", "applied", "what clients saw (measured)", "")
    widths = (24, 44, 58, 4)
    rows = [(f"{r.number} {r.title}", r.applied, r.clients_saw, "PASS" if r.ok else "FAIL") for r in results]
    say.line("  " + say.paint("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "bold"))
    for row in rows:
        cells = [textwrap.wrap(cell, width) or [""] for cell, width in zip(row, widths)]
        for i in range(max(len(c) for c in cells)):
            text = "  ".join((c[i] if i < len(c) else "").ljust(w) for c, w in zip(cells, widths)).rstrip()
            if row[3] == "FAIL":
                text = say.paint(text, "red")
            elif i == 0:
                text = text[:-4] + say.paint("PASS", "green", "bold")
            say.line("  " + text)
    if truth:
        say.say("the clients' own reports: " + ", ".join(
            f"{cid} {info['produced'] or info['consumed']} {'produced' if info['produced'] else 'consumed'}"
            for cid, info in truth.items()))
    if interrupted:
        verdict = say.paint("interrupted", "yellow", "bold")
    elif ok:
        verdict = say.paint("every act showed what it claims", "green", "bold")
    else:
        verdict = say.paint("some act did not show what it claims (see above)", "red", "bold")
    say.line(f"  {verdict} — {seconds:.0f} s in all")


def _interrupt(owner: int) -> None:
    if os.getpid() != owner:
        # A forked helper (pyroute2's NetNS runs one per namespace and stops it with SIGTERM)
        # inherited this handler: it must die as it would have without it.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def _no_interrupts():
    """Cleanup runs to its end: a second Ctrl-C (or SIGTERM) during it is ignored — by this
    process only; a forked helper still dies of SIGTERM as it should."""
    owner = os.getpid()

    def ignore(signum, frame) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    old_int = signal.signal(signal.SIGINT, ignore)
    old_term = signal.signal(signal.SIGTERM, ignore)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
