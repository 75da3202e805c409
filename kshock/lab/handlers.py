"""EDGE: `kshock lab ...` — the command handlers; each returns an exit status."""

from __future__ import annotations

import argparse
import json
import os
import time

from kshock.host import netns
from kshock.errors import ExitStatus, OperationFailed, UserError
from kshock.lab import broker, network, state
from kshock.lab.plan import free_index, plan_lab, validate_name


def _require_lab_tools() -> None:
    netns.require_root("kshock lab")
    netns.require_tool("ip", "iproute2")
    netns.require_tool("ethtool", "ethtool")


def up(args: argparse.Namespace) -> int:
    _require_lab_tools()
    name = validate_name(args.name)
    if state.load(name) is not None or network.lab_namespaces(name):
        raise UserError(f"lab {name} already exists", f"use it, or remove it first: kshock lab down --name {name}")
    binary = broker.tansu_binary()
    version = broker.tansu_version(binary)
    plan = plan_lab(name, free_index(state.used_indexes()), args.clients, args.port)
    lab = state.LabState(plan=plan, creator_pid=os.getpid(), created_at=time.time(), broker_version=version)
    state.save(lab)  # before anything exists, so a crash from here on can be cleaned up
    started = time.monotonic()
    try:
        network.build(plan)
        process = broker.start(netns.exec_argv(plan.broker.netns, broker.broker_argv(binary, plan.broker.ip, plan.port)),
                               lab.broker_log)
        lab.broker_pid = process.pid
        state.save(lab)
        try:
            answer = broker.wait_ready(plan.broker.ip, plan.port, args.timeout, process, netns=plan.broker.netns)
        except OperationFailed as error:
            raise OperationFailed(str(error), f"broker log: {_log_tail(lab)}") from None
        lab.phase = "ready"
        state.save(lab)
    except BaseException:
        _teardown(name)
        raise
    print(f"lab {name} is up in {time.monotonic() - started:.1f} s: broker {plan.bootstrap} "
          f"({version}, {answer.api_count} APIs), clients "
          + ", ".join(f"{c.name}={c.ip}" for c in plan.clients))
    print(f"  try: kshock lab traffic --name {name}    remove: kshock lab down --name {name}")
    return ExitStatus.OK


def down(args: argparse.Namespace) -> int:
    netns.require_root("kshock lab down")
    name = validate_name(args.name)
    removed = _teardown(name)
    if removed:
        print(f"lab {name} removed: " + ", ".join(removed))
    else:
        print(f"lab {name}: nothing to remove")
    return ExitStatus.OK


def _teardown(name: str) -> list[str]:
    lab = state.load(name)
    removed = network.destroy(name)
    # The broker lives in the broker namespace and was stopped with it; this catches one that
    # somehow escaped (e.g. the namespace was deleted by hand while it ran).
    if lab is not None and lab.broker_pid is not None and _is_our_broker(lab.broker_pid):
        broker.stop(lab.broker_pid)
        removed.append(f"broker pid {lab.broker_pid}")
    if lab is not None or state.state_path(name).exists():
        state.forget(name)
        removed.append("state")
    return removed


def _is_our_broker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"tansu" in cmdline.read()
    except OSError:
        return False


def status(args: argparse.Namespace) -> int:
    names = [validate_name(args.name)] if args.name != "lab" or state.load("lab") else state.all_names()
    labs = [lab for name in names if (lab := state.load(name)) is not None]
    if args.json:
        print(json.dumps([_status_json(lab) for lab in labs], indent=2))
        return ExitStatus.OK
    if not labs:
        print("no lab is up — create one with: kshock lab up")
        return ExitStatus.OK
    for lab in labs:
        info = _status_json(lab)
        plan = lab.plan
        answer = info["broker"]["answers"]
        print(f"lab {plan.name}  subnet {plan.subnet}  phase {lab.phase}  created by pid {lab.creator_pid}")
        print(f"  broker  {plan.broker.netns:<22} {plan.broker.ifname:<5} {plan.bootstrap:<20} "
              f"pid {lab.broker_pid} ({'running' if info['broker']['running'] else 'NOT running'}, "
              f"{'answers ApiVersions' if answer else 'does not answer'})  {lab.broker_version or ''}")
        for client in plan.clients:
            procs = len(netns.pids(client.netns))
            present = "" if netns.exists(client.netns) else "  MISSING"
            print(f"  {client.name:<7} {client.netns:<22} {client.ifname:<5} {client.ip:<20} {procs} process(es){present}")
        print(f"  broker log: {lab.broker_log}")
    return ExitStatus.OK


def _status_json(lab: state.LabState) -> dict:
    data = lab.to_json()
    running = lab.broker_pid is not None and _is_our_broker(lab.broker_pid)
    answers = False
    if running:
        try:
            answers = broker.probe_api_versions(lab.plan.broker.ip, lab.plan.port, 1.0, lab.plan.broker.netns).error_code == 0
        except (OSError, ValueError):
            answers = False
    data["broker"].update(running=running, answers=answers)
    data["namespaces_present"] = {name: netns.exists(name) for name in lab.plan.namespaces}
    return data


def exec_(args: argparse.Namespace) -> int:
    netns.require_root("kshock lab exec")
    lab = _require_lab(args.name)
    host = lab.plan.host(args.client)
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UserError("no command given", f"usage: kshock lab exec {args.client} -- COMMAND [ARG ...]")
    os.execvp("ip", netns.exec_argv(host.netns, argv))
    return ExitStatus.FAILED  # not reached: exec replaces this process


def traffic(args: argparse.Namespace) -> int:
    from kshock.lab import traffic as runner

    netns.require_root("kshock lab traffic")
    lab = _require_lab(args.name)
    result = runner.run_scenario(lab, args.scenario, args.duration)
    if args.json:
        print(json.dumps(result.ground_truth(), indent=2))
    else:
        print(runner.render_summary(result))
    return ExitStatus.OK if result.ok else ExitStatus.FAILED


def record(args: argparse.Namespace) -> int:
    from kshock.lab import record as recorder

    netns.require_root("kshock lab record")
    netns.require_tool("tcpdump", "tcpdump")
    lab = _require_lab(args.name)
    outcome = recorder.record(lab, args.scenario, args.out, args.duration)
    print(outcome.describe())
    return ExitStatus.OK if outcome.ok else ExitStatus.FAILED


def _require_lab(name: str) -> state.LabState:
    lab = state.load(validate_name(name))
    if lab is None or lab.phase != "ready":
        raise UserError(f"lab {name} is not up", f"start it with: kshock lab up --name {name}")
    return lab


def _log_tail(lab: state.LabState, lines: int = 3) -> str:
    try:
        tail = lab.broker_log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return f"{lab.broker_log} (unreadable)"
    return " | ".join(tail) if tail else f"{lab.broker_log} is empty"
