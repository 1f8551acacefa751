"""The `paxos` command: run a local cluster, break it, watch it, and use it.

Every command takes `--config PATH` (default `./cluster.toml`). Client commands exit 0 on
success, 1 on a definite failure (the command was refused or never sent), 2 when the
outcome is unknown (it may or may not have been applied) and 4 when `get` finds no such key.
`status` exits 3 when the cluster is not running. Usage errors exit 64.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, NoReturn

from runtime import crashpoints, keys
from runtime.config import ClusterConfig, ConfigError
from runtime.control import (
    ControlError,
    NotRunning,
    kill_message,
    pid_alive,
    read_state,
    request,
    restart_message,
)
from runtime.members import load
from runtime.program import quiet_on_broken_pipe

EXIT_FAILED = 1
EXIT_UNKNOWN = 2
EXIT_NOT_RUNNING = 3
EXIT_NOT_FOUND = 4
EXIT_BAD_CRASH_POINT = 5  # `kill --at`: no such crash point, or not one the actor's role has
EXIT_USAGE = 64
SECONDS_MAX = 86_400.0  # a day: longer is a typo, and too large for the event loop's timers
PROBE_S = 1.0  # no supervisor: how long a learner has to answer before we say the cluster is down
UP_SETTLE_S = 3.0  # `up --detach`: once a leader serves, how long actors still starting may take
WEB_WAIT_S = 5.0  # `up --web`: how long the page's server has to listen before we say it did not
HARNESS_COMMANDS = {
    "bench": ("runtime.harness.bench", "the benchmark against PySyncObj (see runtime/harness/bench.py)"),
    "nemesis": ("runtime.harness.nemesis", "a Jepsen-style run on a fresh throw-away cluster"),
    "faults": ("runtime.harness.faults", "test mode: set link faults (JSON rules, see runtime/harness/faults.py)"),
    "powerloss": ("runtime.harness.faults", "test mode: kill -9 actors and cut their files back to the last fsync"),
    "scenario": ("runtime.harness.scenario_live",
                 "run a scenario script on real processes in step mode, then draw its chart (--list)"),
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A command line argparse accepted that still makes no sense (an unknown actor, a value
    given twice): exit 64, like argparse's own errors."""


def _fail(message: str, code: int = 1) -> int:
    print(f"paxos: {message}", file=sys.stderr)
    return code


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    if value > SECONDS_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {SECONDS_MAX:g} seconds, not {text!r}")
    return value


def resolve_actor(config: ClusterConfig, name: str, leader_ok: bool = False) -> str:
    """The actor NAME names. With `leader_ok`, `leader` (unless an actor has that name) is the
    proposer leading now, as `paxos status` shows it."""
    if name in config.actors:
        return name
    if leader_ok and name == "leader":
        status = request(config, {"cmd": "status"}, timeout_s=5.0)
        if not status.get("leader"):
            raise ControlError("no leader is serving right now (see `paxos status`)")
        return str(status["leader"])
    known = ", ".join(config.actors) + (", or leader" if leader_ok else "")
    raise UsageError(f"no actor named {name!r} in {config.path} (known: {known})")


# --- cluster commands -----------------------------------------------------------------------


def cmd_up(config: ClusterConfig, args: argparse.Namespace) -> int:
    state = read_state(config)
    if state is not None:
        return _fail(f"the cluster in {config.data_dir} is already running (supervisor pid {state['pid']})")
    from runtime import step, stepview

    if args.step:  # step mode (runtime/step.py): every actor starts holding what it sends to peers
        if args.detach:
            code = stepview.up_detached(config, args.wait_s, args.step_ticks, web=args.web)
            if code == 0 and args.web:  # the page's step panel drives the held cluster by click
                _say_web(config, WEB_WAIT_S)
            return code
        step.set_mode(config.run_dir, args.step_ticks)
        import threading

        threading.Thread(target=stepview.settle_when_up, args=(config, args.step_ticks), daemon=True).start()
    else:
        step.set_mode(config.run_dir, None)  # a step mode left on by an earlier `up --step`
    if args.detach:
        return _up_detached(config, args.wait_s, args.web)
    return _up_foreground(config, args)


def _up_detached(config: ClusterConfig, wait_s: float, web: bool = False) -> int:
    logs_dir = config.data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    with open(logs_dir / "supervisor.stderr", "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.supervisor", "--config", str(config.path), *(["--web"] if web else [])],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] = {}
    settle_by: float | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(logs_dir / "supervisor.stderr")
            return _fail(f"the supervisor exited with code {proc.returncode}: {tail}")
        try:
            last = request(config, {"cmd": "status"}, timeout_s=2.0)
        except NotRunning:
            time.sleep(0.05)
            continue
        except ControlError:
            continue
        actors: list[dict[str, Any]] = last.get("actors", [])
        failed = [a for a in actors if a["state"] == "failed"]
        why = _cannot_serve(config, {a["name"] for a in failed})
        if why:
            return _fail(f"the cluster cannot serve: {why}; failed to start: {_describe(failed)}. The "
                         f"supervisor (pid {proc.pid}) keeps the rest running: see `paxos status`, "
                         f"`paxos logs`; `paxos down` stops it")
        if last.get("leader") and any(a["role"] == "learner" and a["state"] == "running" for a in actors):
            # It serves. Give actors still starting (or failing to) a moment to say which.
            settle_by = settle_by or time.monotonic() + UP_SETTLE_S
            starting = [a for a in actors if a["state"] == "restarting" or (a["state"] == "running"
                                                                            and not a.get("info"))]
            if not starting or time.monotonic() >= min(settle_by, deadline - 0.2):
                print(f"cluster up: {len(actors)} actors, leader {last['leader']}, "
                      f"supervisor pid {proc.pid}, data in {config.data_dir}")
                _say_metrics(last)
                if web:
                    _say_web(config, WEB_WAIT_S)
                degraded = [a for a in actors if a["state"] != "running" or not a.get("info")]
                if degraded:
                    print(f"paxos: warning: the cluster serves, degraded: {_describe(degraded)}. "
                          f"See `paxos status` and `paxos logs NAME`; `paxos start NAME` once mended",
                          file=sys.stderr)
                return 0
        time.sleep(0.1)
    states = ", ".join(f"{a['name']}={a['state']}" for a in last.get("actors", []))
    return _fail(f"no leader was serving within {wait_s:g}s ({states or 'supervisor not answering'}); "
                 f"the cluster keeps running: see `paxos logs` and `paxos status`")


def _up_foreground(config: ClusterConfig, args: argparse.Namespace) -> int:
    import threading

    from runtime.logview import show
    from runtime.supervisor import Supervisor

    done = threading.Event()
    started = time.time()

    def tail_logs() -> None:
        # Only this run's events: earlier runs' lines stay in the files (see `paxos logs`).
        show(config.data_dir / "logs", None, as_json=False, follow=True, stop=done.is_set, since=started)

    print(f"starting the cluster of {config.path} (data in {config.data_dir}); Ctrl-C stops it",
          file=sys.stderr)
    m = config.metrics
    if m.enabled:  # the supervisor's metrics_serving (or metrics_unavailable) line follows in the log
        where = f"http://{m.host}:{m.port}/metrics" if m.port else f"a free port on {m.host}"
        print(f"metrics (Prometheus): {where}", file=sys.stderr)
    (config.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    viewer = threading.Thread(target=tail_logs, daemon=True)
    viewer.start()
    if args.web:  # the URL, once the supervisor's web child listens (the log lines never hold the token)
        threading.Thread(target=_say_web, args=(config, UP_SETTLE_S + WEB_WAIT_S), daemon=True).start()
    import uvloop

    try:
        code = uvloop.run(Supervisor(config, web=args.web).run())
    except RuntimeError as exc:
        return _fail(str(exc))
    finally:
        time.sleep(0.3)
        done.set()
        viewer.join(timeout=2)
    return code


def _say_web(config: ClusterConfig, wait_s: float) -> bool:
    """`up --web`: the page's URL with its token once the web server listens, or why not."""
    from runtime.web.auth import TokenFileError, load_or_create_token
    from runtime.web.info import page_url, read_info

    deadline = time.monotonic() + wait_s
    while (info := read_info(config)) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a file the web server writes once it listens
    if info is None:
        print(f"paxos: warning: the page's web server did not start within {wait_s:g}s: "
              f"{_tail(config.data_dir / 'logs' / 'web.stderr')} (see `paxos logs web`; the cluster serves without it)",
              file=sys.stderr)
        return False
    try:
        print(f"page: {page_url(str(info['url']), load_or_create_token(config.data_dir))}", flush=True)
    except TokenFileError as exc:
        print(f"paxos: warning: {exc}", file=sys.stderr)
        return False
    return True


def _say_metrics(status: dict[str, Any]) -> None:
    """Where the Prometheus endpoint serves (issue 14), or why it does not."""
    if status.get("metrics"):
        print(f"metrics: {status['metrics']}")
    elif status.get("metrics_error"):
        print(f"paxos: warning: no metrics endpoint: {status['metrics_error']} (the cluster serves without it; "
              f"see [metrics] in the config)", file=sys.stderr)


def _cannot_serve(config: ClusterConfig, failed: set[str]) -> str:
    """Why the cluster cannot serve with these actors failed (they stay down until `paxos
    start`), or "" if it still can."""
    current = config.current()  # the log's membership, as this machine knows it
    acceptors = current.acceptor_names
    left = len([a for a in acceptors if a not in failed])
    if left <= len(acceptors) // 2:
        return f"{left} of {len(acceptors)} acceptors left, and a majority is {len(acceptors) // 2 + 1}"
    if all(p in failed for p in current.proposer_ids):
        return "no proposer left to lead"
    if all(lr in failed for lr in current.learner_names):
        return "no learner left to answer clients"
    return ""


def _describe(actors: list[dict[str, Any]]) -> str:
    def one(a: dict[str, Any]) -> str:
        if a["state"] == "running":
            return f"{a['name']} (running, not answering yet)"
        return f"{a['name']} ({a['state']}" + (f": {a['reason']})" if a.get("reason") else ")")

    return "; ".join(one(a) for a in actors)


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "(no output)"
    return lines[-1] if lines else "(no output)"


def cmd_down(config: ClusterConfig, args: argparse.Namespace) -> int:
    state = read_state(config)
    if state is None:
        print("the cluster is not running")
        return 0
    try:
        request(config, {"cmd": "down"}, timeout_s=config.supervisor.stop_grace_s + 10)
    except NotRunning:
        pass
    except ControlError as exc:
        return _fail(str(exc))
    deadline = time.monotonic() + 10
    while pid_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(state["pid"]):
        return _fail(f"the supervisor (pid {state['pid']}) is still running")
    print("cluster down; files kept in", config.data_dir)
    return 0


def cmd_web(config: ClusterConfig, args: argparse.Namespace) -> int:
    """`paxos web`: serve the live page in the foreground until Ctrl-C."""
    import uvloop

    from runtime.web.server import serve

    return uvloop.run(serve(config))


def cmd_status(config: ClusterConfig, args: argparse.Namespace) -> int:
    if getattr(args, "watch", False):
        from runtime.watch import watch

        if args.json:
            raise UsageError("--watch and --json do not go together (--json prints one object)")
        return watch(config, args.interval_s)
    try:
        status = request(config, {"cmd": "status"}, timeout_s=5.0)
        running = True
    except NotRunning:
        running = False
        status = {"actors": [{"name": s.name, "role": s.role, "pid": None, "state": "down",
                              "restarts": 0, "reason": "", "info": {}} for s in config.actors.values()],
                  "leader": None}
    except ControlError as exc:
        return _fail(str(exc))
    if args.json:
        out = {
            "running": running,
            "leader": status.get("leader"),
            "membership_slot": status.get("membership_slot", 0),
            "membership_differs": status.get("membership_differs", ""),
            "metrics": status.get("metrics", ""),
            "actors": [{k: a.get(k) for k in ("name", "role", "pid", "state", "restarts", "reason", "disk_full",
                                              "member", "last_exit", "crash_point")}
                       | {"info": a.get("info", {})} for a in status["actors"]],
            "delivered": {a["name"]: a.get("info", {}).get("delivered") for a in status["actors"]
                          if a["role"] == "learner"},
        }
        print(json.dumps(out, indent=2, default=str))
        return 0 if running else 3
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cluster {config.path}" + ("" if running else " (not running)"))
    for col in ("name", "role", "pid", "state", "restarts", "detail"):
        table.add_column(col)
    for a in status["actors"]:
        info = a.get("info") or {}
        if a["role"] == "proposer" and info:
            detail = f"{info.get('state')} ballot={info.get('ballot')} chosen_through={info.get('chosen_through')}"
            if info.get("state") == "leader":
                detail += " serving" if info.get("serving") else " recovering"
                if info.get("mode") == "fast":
                    detail += (" fast-round" if info.get("fast_open") else " classic-round") + \
                        f" collisions={info.get('fast_collisions', 0)}"
        elif a["role"] == "acceptor" and info:
            detail = (f"{info.get('state')} promised={info.get('promised')} highest_slot={info.get('highest_slot')} "
                      f"snapshot={info.get('snapshot_slot')}")
        elif a["role"] == "learner" and info:
            detail = (f"{info.get('state')} delivered={info.get('delivered')} snapshot={info.get('snapshot_slot')} "
                      f"keys={info.get('keys')} digest={info.get('digest')}")
        if info and info.get("file_bytes") is not None:
            detail += f" files={info['file_bytes'] / 1e6:.1f}MB in_memory={info.get('records_in_memory', 0)}"
        else:
            detail = a.get("reason") or ""
        style = {"running": "green", "paused": "yellow", "failed": "bold red",
                 "restarting": "yellow"}.get(a["state"], "dim")
        member = f" [cyan]({a['member']})[/]" if a.get("member") else ""
        table.add_row(a["name"], a["role"], str(a["pid"] or "-"), f"[{style}]{a['state']}[/]{member}",
                      str(a["restarts"]), detail)
    console = Console()
    console.print(table)
    for a in status["actors"]:  # a full disk in full, whatever the terminal's width
        if a.get("disk_full"):
            d = a["disk_full"]
            console.print(f"[bold red]disk full[/] for {a['name']}: {d['path']} (file system {d['mount']}: "
                          f"{d['free_bytes']} of {d['total_bytes']} bytes free); free space there, then "
                          f"`paxos start {a['name']}`", soft_wrap=True, markup=True, highlight=False)
    for a in status["actors"]:  # `kill --at`: where each one last ended itself
        if a.get("crash_point"):
            console.print(f"{a['name']} last ended itself at crash point {a['crash_point']} (last exit: "
                          f"{a.get('last_exit')})", soft_wrap=True, highlight=False, markup=False)
    if status.get("membership_differs"):
        console.print(f"[yellow]membership:[/] {status['membership_differs']}", soft_wrap=True, highlight=False)
    console.print(f"leader: {status.get('leader') or 'none'}")
    if status.get("metrics"):
        console.print(f"metrics: {status['metrics']}", soft_wrap=True, highlight=False)
    return 0 if running else 3


def _control(config: ClusterConfig, message: dict[str, Any]) -> int:
    try:
        reply = request(config, message)
    except ControlError as exc:
        return _fail(str(exc))
    if not reply.get("ok"):
        return _fail(reply.get("error", "failed"))
    detail = {k: v for k, v in reply.items() if k != "ok"}
    print(f"{message['cmd']} {message.get('name', '')}: ok" + (f" {detail}" if detail else ""))
    return 0


def cmd_kill(config: ClusterConfig, args: argparse.Namespace) -> int:
    if args.at is not None:
        return kill_at(config, args)
    name = resolve_actor(config, args.name, leader_ok=True)
    return _control(config, kill_message(name, args.signal or "KILL", not args.no_restart))


def kill_at(config: ClusterConfig, args: argparse.Namespace) -> int:
    """`kill NAME --at POINT` (runtime/crashpoints.py): the actor ends itself at that point of its
    next turn that persists; the supervisor restarts it by policy."""
    if args.signal is not None:
        raise UsageError("--at and --signal do not go together: at a crash point the actor ends itself")
    if args.at not in crashpoints.POINTS:
        return _fail(f"unknown crash point {args.at!r}; the crash points are: {', '.join(crashpoints.POINTS)}",
                     EXIT_BAD_CRASH_POINT)
    name = resolve_actor(config, args.name, leader_ok=True)
    try:
        crashpoints.check(args.at, config.actor(name).role)
    except crashpoints.CrashPointError as exc:
        return _fail(f"{name}: {exc}", EXIT_BAD_CRASH_POINT)
    try:
        reply = request(config, {"cmd": "kill", "name": name, "at": args.at, "restart": not args.no_restart})
    except ControlError as exc:
        return _fail(str(exc))
    if not reply.get("ok"):
        return _fail(reply.get("error", "failed"), EXIT_BAD_CRASH_POINT if reply.get("bad_point") else EXIT_FAILED)
    then = "it stays down (--no-restart)" if args.no_restart else "the supervisor restarts it"
    print(f"kill {name} --at {args.at}: armed (pid {reply.get('pid')}); it ends itself at that point of its next "
          f"turn that persists, with exit code {crashpoints.EXIT_CRASH_POINT}, and {then}")
    return 0


def cmd_start(config: ClusterConfig, args: argparse.Namespace) -> int:
    return _control(config, {"cmd": "start", "name": resolve_actor(config, args.name)})


def cmd_restart(config: ClusterConfig, args: argparse.Namespace) -> int:
    return _control(config, restart_message(resolve_actor(config, args.name, leader_ok=True)))


def cmd_wipe(config: ClusterConfig, args: argparse.Namespace) -> int:
    resolve_actor(config, args.name)
    try:
        reply = request(config, {"cmd": "wipe", "name": args.name}, timeout_s=config.supervisor.stop_grace_s + 10)
    except ControlError as exc:
        return _fail(str(exc))
    if not reply.get("ok"):
        return _fail(reply.get("error", "failed"))
    print(f"wipe {args.name}: stopped, {len(reply.get('removed', []))} files deleted, started again "
          f"(pid {reply.get('pid')}); it catches up by snapshot" +
          ("" if config.actor(args.name).role == "learner" else " and rebuilds before it votes or proposes"))
    return 0


def members_view(members_json: str, slot: int, alpha: int) -> dict[str, Any]:
    """`paxos members --json`: the membership in force, the slot that chose it and alpha."""
    proposers, acceptors, learners = json.loads(members_json)
    return {"slot": slot, "alpha": alpha,
            "proposers": [{"name": n, "id": i, "endpoint": e} for n, i, e in proposers],
            "acceptors": [{"name": n, "endpoint": e} for n, e in acceptors],
            "learners": [{"name": n, "endpoint": e} for n, e in learners]}


def cmd_members(config: ClusterConfig, args: argparse.Namespace) -> int:
    """The membership in force, as the most advanced learner delivered it (read-only)."""
    from actors.membership import encode as encode_membership

    running = True
    try:
        status = request(config, {"cmd": "status"}, timeout_s=5.0)
        infos = [a.get("info", {}) for a in status.get("actors", []) if a.get("role") == "learner"]
        infos = [i for i in infos if isinstance(i.get("members"), str)]
        if not infos:
            return _fail("no learner answered: the membership in force is unknown right now")
        info = max(infos, key=lambda i: int(i.get("delivered") or 0))
        view = members_view(info["members"], int(info.get("members_slot") or 0), int(info.get("alpha") or 0))
    except NotRunning:
        running = False
        h = config.known_history()
        members, slot = h.latest(), h.latest_change_slot()
        view = members_view(encode_membership(members).decode(), slot, h.alpha)
    except ControlError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(view))
    else:
        origin = "chosen at slot " + str(view["slot"]) if view["slot"] else "the bootstrap membership of cluster.toml"
        print(f"membership in force: {origin}; alpha {view['alpha']} slots"
              + ("" if running else " (the cluster is not running)"))
        for p in view["proposers"]:
            print(f"  proposer {p['name']:<12} id {p['id']:<4} {p['endpoint']}")
        for role in ("acceptors", "learners"):
            for m in view[role]:
                print(f"  {role[:-1]:<8} {m['name']:<12}         {m['endpoint']}")
    return 0 if running else EXIT_NOT_RUNNING


def cmd_members_change(config: ClusterConfig, args: argparse.Namespace) -> int:
    """`paxos members add|remove`: exit 0 once the change is chosen (and a new local actor runs),
    1 with the reason when it cannot be made, 2 when no leader said in time, 3 when not running."""
    from runtime import admin

    try:
        config = admin.in_force(config)
    except NotRunning:
        return _fail(f"the cluster of {config.path} is not running (`paxos up` first)", EXIT_NOT_RUNNING)
    current = config.current()
    what = f"members {args.change} {args.old + ' ' if args.change == 'replace' else ''}{args.name}"
    try:
        if args.change == "add":
            new = admin.added(current, args.role, args.name, args.endpoint, args.id)
        elif args.change == "replace":
            new = admin.replaced(current, args.old, args.name, args.endpoint, args.id)
        else:
            new = admin.removed(current, args.name)
        outcome = admin.change(config, new, args.timeout_s)
    except admin.ChangeRefused as exc:
        return _fail(f"{what}: refused: {exc}")
    except admin.ChangeUnknown as exc:
        return _fail(f"{what}: {exc}", EXIT_UNKNOWN)
    except keys.KeyFileError as exc:
        return _fail(f"{what}: {exc}")
    print(f"{what}: {'was chosen before' if outcome.already else 'chosen'} at slot "
          f"{outcome.slot}; it decides the slots from {outcome.effective_from} on: {outcome.members.describe()}")
    for name, pid in outcome.started.items():
        if name in outcome.answering:
            print(f"started {name} (pid {pid}); it answers and catches up from the others")
        else:
            print(f"started {name} (pid {pid}), but it did not answer within --timeout-s: see `paxos status` "
                  f"and `paxos logs {name}` before you remove another member")
    if args.change in ("add", "replace") and args.name not in outcome.started:
        from runtime.supervisor import is_local

        if not is_local(args.endpoint):
            print(f"{args.endpoint} is not on this machine: run {args.name} there "
                  f"(its keys are in {keys.keys_dir(config)})")
    if args.change in ("remove", "replace"):
        print(f"{args.old if args.change == 'replace' else args.name} stops once no slot it serves is open; "
              "its files stay")
    return 0


def cmd_keys(config: ClusterConfig, args: argparse.Namespace) -> int:
    """Create missing keys, add a client key, or rotate one; list what there is."""
    try:
        if args.rotate:
            path = keys.rotate(config, args.rotate)
            print(f"rotated {args.rotate}: {path}")
            if not args.rotate.startswith("clients/"):
                print("peers read public keys at start: restart the cluster (paxos down; paxos up)")
        elif args.client:
            print(f"created client key {keys.create_client(config, args.client)}")
        created = keys.ensure(config)
    except keys.KeyFileError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write keys under {keys.keys_dir(config)}: {exc}")
    if created:
        print(f"created {', '.join(created)}")
    root = keys.keys_dir(config)
    for path in sorted([*root.glob("*.key"), *root.glob("clients/*.key")]):
        print(f"{path.relative_to(root).with_suffix('')!s:<24} {keys.load_public(path).decode()}")
    if not config.security.curve:
        print("warning: security.curve = false: the cluster does not use these keys", file=sys.stderr)
    return 0


def cmd_trace(config: ClusterConfig, args: argparse.Namespace) -> int:
    from runtime.tracechart.command import run

    return run(config, args)


def cmd_logs(config: ClusterConfig, args: argparse.Namespace) -> int:
    from runtime.logview import show

    log_dir = config.data_dir / "logs"
    for name in args.names:
        if name not in ("supervisor", "web"):  # the two logs of no actor: web is the page's server
            resolve_actor(config, name)
    if not log_dir.exists():
        return _fail(f"no logs yet in {log_dir}")
    try:
        show(log_dir, args.names or None, as_json=args.json, follow=args.follow)
    except KeyboardInterrupt:
        pass
    return 0


# --- client commands ------------------------------------------------------------------------


class ValueSourceError(ValueError):
    """A value to read from stdin or a file that cannot be read, is too large or is not text."""


def read_value(config: ClusterConfig, source: str, what: str, stdin: IO[bytes] | None = None) -> str:
    """The value in file `source` (`-`: stdin), verbatim (a trailing newline included), as UTF-8
    text; at most `limits.value_bytes_max` bytes are read."""
    limit = config.limits.value_bytes_max
    where = "stdin" if source == "-" else source
    try:
        if source == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            if stream.isatty():
                print(f"paxos: reading the {what} from stdin; end it with Ctrl-D", file=sys.stderr)
            data = stream.read(limit + 1)
        else:
            with open(source, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise ValueSourceError(f"cannot read the {what} from {where}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueSourceError(f"{what} from {where} larger than {limit} bytes (limits.value_bytes_max)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueSourceError(f"{what} from {where} is not valid UTF-8 text: byte 0x{data[exc.start]:02x} "
                               f"at offset {exc.start}; values are Unicode text") from None


def _one_value(config: ClusterConfig, given: str | None, file: str | None, what: str) -> str:
    if given is not None and file is not None:
        raise UsageError(f"give the {what} as an argument or with --file, not both")
    if given is None and file is None:
        raise UsageError(f"the {what} is missing: give it as an argument, as - to read it from stdin, "
                         f"or with --file PATH")
    if file is not None:
        return read_value(config, file, what)
    assert given is not None
    return read_value(config, "-", what) if given == "-" else given


def client_values(config: ClusterConfig, args: argparse.Namespace) -> list[str | None]:
    """The values a client command's arguments give, read from stdin (`-`) or `--file` where
    asked: [VALUE] for put and append, [OLD, NEW] for cas (OLD None with --absent)."""
    if args.op in ("put", "append"):
        return [_one_value(config, args.value, args.file, "value")]
    if args.op != "cas":
        return []
    old_from_stdin = args.old == "-" and not args.absent
    if old_from_stdin and (args.new == "-" or args.file == "-"):
        raise UsageError("only one of the old and the new value can be read from stdin (use --file PATH)")
    new = _one_value(config, args.new, args.file, "new value")
    old = None if args.absent else read_value(config, "-", "old value") if old_from_stdin else args.old
    return [old, new]


def cmd_client(config: ClusterConfig, args: argparse.Namespace) -> int:
    from runtime.client import Client, ClusterUnavailable, CommandFailed, NoLearnerAnswered, OutcomeUnknown

    try:
        values = client_values(config, args)  # a UsageError goes up: exit 64
    except ValueSourceError as exc:
        return _fail(f"{args.op} failed: {exc}", EXIT_FAILED)

    async def run(kv: Client) -> Any:
        # No supervisor: the cluster is most likely down. Say so at once unless a learner
        # (actors run by hand or by systemd) answers quickly.
        supervised = read_state(config) is not None
        probe = None if supervised else min(PROBE_S, kv.timeout_s)
        try:
            await kv.connect(probe)
        except NoLearnerAnswered:
            if supervised:
                raise
            raise ClusterUnavailable(f"the cluster of {config.path} is not running: no supervisor "
                                     f"(`paxos up` starts it) and no learner answered within {probe:g}s") from None
        try:
            if args.op == "put":
                return await kv.put(args.key, str(values[0]))
            if args.op == "get":
                return await kv.get(args.key, stale_ok=getattr(args, "stale", False))
            if args.op == "cas":
                return await kv.cas(args.key, values[0], str(values[1]))
            if args.op == "append":
                return await kv.append(args.key, str(values[0]))
            return await kv.delete(args.key)
        finally:
            await kv.close()

    import uvloop

    try:
        try:
            kv = Client(config, timeout_s=args.timeout_s)
        except ClusterUnavailable:
            if read_state(config) is None:  # no keys yet, most likely because it never ran
                raise ClusterUnavailable(f"the cluster of {config.path} is not running: no supervisor "
                                         f"(`paxos up` starts it and creates its keys)") from None
            raise
        kv.check(args.key, *values)  # before connecting: a bad key or value fails at once
        result = uvloop.run(run(kv))
    except OutcomeUnknown as exc:
        return _fail(f"outcome unknown: {exc}", EXIT_UNKNOWN)
    except (CommandFailed, ValueError, ClusterUnavailable) as exc:
        return _fail(f"{args.op} failed: {exc}", EXIT_FAILED)
    if args.op == "get":
        if result is None:
            print("(not found)", file=sys.stderr)
            return EXIT_NOT_FOUND
        print(result)
    elif args.op == "cas":
        print("true" if result else "false")
        return 0 if result else EXIT_FAILED
    elif args.op == "append":
        print(result)
    else:
        print("ok")
    return 0


# --- explain --------------------------------------------------------------------------------

SLOT_MAX = 1 << 62  # the cores' ceiling on slots (actors/bounds.py)


def slot_number(text: str) -> int:
    """An argparse type: a slot, 1 to 2^62."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a slot number") from None
    if not 1 <= value <= SLOT_MAX:
        raise argparse.ArgumentTypeError(f"a slot is 1 to {SLOT_MAX}, not {text}")
    return value


EXPLAIN_EXIT_CODES = """exit codes:
  0  explained, from every file
  3  a safety violation: two different values chosen for the slot, or learners that disagree
  5  the slot is not in the log: beyond every file, or below every file's compaction point
  6  a file is missing, corrupt or unreadable (named, with the offset); explained from the others
  7  a file is not this cluster's (another actor's header, an unknown name, the other mode, a
     ballot of no proposer of it); explained without it
  1  a configuration error; 64 a usage error (a slot that is not 1 to 2^62)
The first that applies, in this order: 3, 5, 6, 7."""


def cmd_explain(config: ClusterConfig, args: argparse.Namespace) -> int:
    from runtime.explain import EXIT_EXPLAINED, explain, render_text, to_json

    e = explain(config, args.slot)
    print(to_json(e) if args.json else render_text(e))
    if e.exit_code != EXIT_EXPLAINED:
        why = e.summary if e.exit_code in (3, 5) else "; ".join(f.describe() for f in e.files if not f.usable)
        print(f"paxos: explain {args.slot}: {why}", file=sys.stderr)
    return e.exit_code


# --- parser -------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep their line breaks."""


EXIT_CODES = """exit codes:
  0  done (`get`: the value is on stdout)
  1  a definite failure: refused by the state machine, a cas that did not swap, a bad key
     or value, or nothing sent because the cluster is not running
  2  outcome unknown: the deadline passed; the command may or may not have been applied
  3  `status`: the cluster is not running
  4  `get`: no such key
  5  `kill --at`: no such crash point, or not one that actor's role has
  3, 5, 6, 7 `explain`: a safety violation, a slot not in the log, a bad file, a foreign file
     (see `paxos explain --help`)
  64 a usage error (unknown command, option or actor, a bad number)"""


def version() -> str:
    """The installed package's version, else the one in pyproject.toml next to this code."""
    from importlib import metadata

    try:
        return metadata.version("paxos-cluster")
    except metadata.PackageNotFoundError:
        import tomllib

        try:
            pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help="the cluster's config (default: ./cluster.toml)")
    parser = Parser(prog="paxos", description="Run, break and watch a local Multi-Paxos cluster, and use its "
                    "key-value store.", parents=[common], formatter_class=HelpFormatter,
                    epilog="examples:\n  paxos up --detach\n  paxos put greeting hello\n  paxos get greeting\n"
                    "  paxos kill leader\n  paxos status\n  paxos down\n\n"
                    "`paxos COMMAND --help` describes each command.\n\n" + EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

    def command(name: str, text: str, description: str, examples: str = "", **kw: Any) -> Parser:
        epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples.splitlines()) if examples else None
        p: Parser = sub.add_parser(name, parents=[common], help=text, description=description, epilog=epilog,
                                   formatter_class=HelpFormatter, **kw)
        return p

    p = command("up", "start the supervisor and all actors",
                "Start the supervisor, which spawns every actor of the config (acceptors, then learners,\n"
                "then proposers) and restarts those that die, by policy. In the foreground it shows the\n"
                "merged logs and Ctrl-C stops everything. With --detach it runs in the background and\n"
                "returns once a leader serves: exit 0, with a warning naming any actor that failed to\n"
                "start (the cluster serves, degraded); exit 1 if it cannot serve (no majority of\n"
                "acceptors, no proposer or no learner left) or no leader served within --wait-s.",
                "paxos up\npaxos up --detach\npaxos up --detach --wait-s 60 --config other.toml")
    p.add_argument("--detach", action="store_true", help="run in the background; return once a leader serves")
    p.add_argument("--wait-s", type=seconds, default=30.0, metavar="S",
                   help="with --detach: how long to wait for a leader, in seconds (default: %(default)g)")
    p.add_argument("--step", action="store_true",
                   help="step mode: hold every message between actors until `paxos step` delivers it "
                        "(with --detach: return once every actor holds; see `paxos step --help`)")
    p.add_argument("--step-ticks", choices=["paused", "run"], default="paused",
                   help="with --step: whether the actors' timers pause (default) or run")
    p.add_argument("--web", action="store_true",
                   help="also serve the live page (see `paxos web --help`); the supervisor runs it and stops it "
                        "on `paxos down`, and the page's URL is printed (with --step: the page's step panel "
                        "delivers, drops and duplicates the held messages by click)")
    p.set_defaults(func=cmd_up)
    p = command("web", "serve the live page of the cluster in a browser",
                "Serve one page on [web] bind:port of the config (127.0.0.1:7180 by default) and print its\n"
                "URL: every actor as a card (proposers, acceptors, learners) with its state, pid, uptime,\n"
                "restarts, ballot or promise, chosen watermark and lag; the leader; the fault-tolerance\n"
                "gauge; kill -9, pause, resume and restart buttons (what `paxos kill`, `paxos kill --signal\n"
                "STOP|CONT` and `paxos restart` do); a put/get box. It updates live, a few times a second.\n\n"
                "Every request needs the token of <data_dir>/web.token (mode 0600, made on first use): the\n"
                "printed URL carries it. Requests from another origin are refused. It runs until Ctrl-C,\n"
                "with the cluster up or down; `paxos up --web` has the supervisor run it instead.\n"
                "Exit 1 when it cannot serve (the port is taken, the token file is unusable).",
                "paxos web\npaxos up --detach --web")
    p.set_defaults(func=cmd_web)
    from runtime.stepview import add_parser as add_step_parser

    add_step_parser(command)
    command("down", "stop everything (files stay)",
            "Stop every actor, proposers first and acceptors last (SIGTERM, then SIGKILL after\n"
            "[supervisor] stop_grace_s), then the supervisor. The files stay: `paxos up` resumes.",
            "paxos down").set_defaults(func=cmd_down)
    p = command("status", "each actor's state and the leader",
                "Each actor's name, role, pid, state (running, paused, restarting, stopped, failed),\n"
                "restarts and details, and the leader. Exit 0 when the cluster is running, 3 when not.\n"
                "--watch: a live view (role, state, pid, uptime, restarts; the leader and its ballot; the\n"
                "chosen watermark and each learner's lag; slots and commands per second; how many more\n"
                "acceptor failures writes survive), until Ctrl-C.",
                "paxos status\npaxos status --json | jq .leader\npaxos status --watch")
    p.add_argument("--json", action="store_true",
                   help='one JSON object: {"running", "leader", "actors": [...], "delivered"}')
    p.add_argument("--watch", action="store_true",
                   help="a live view, refreshed a few times a second, until Ctrl-C (exit 0); with stdout not "
                        "a terminal, one frame")
    p.add_argument("--interval-s", type=seconds, default=0.3, metavar="S",
                   help="with --watch: seconds between refreshes (default: %(default)g)")
    p.set_defaults(func=cmd_status)
    p = command("kill", "signal one actor (default KILL)",
                "Send a signal to one actor. The supervisor restarts an actor that dies, by policy,\n"
                "unless --no-restart.",
                "paxos kill leader              # kill -9 the proposer leading now\n"
                "paxos kill a2 --signal STOP    # freeze an acceptor ...\n"
                "paxos kill a2 --signal CONT    # ... and let it go on\n"
                "paxos kill l1 --no-restart     # stop a learner until `paxos start l1`\n"
                "paxos kill a1 --at torn-write  # a1 writes half of its next wal frame and ends itself")
    p.add_argument("name", metavar="NAME", help="an actor of the config (p1, a2, l1, ...), or `leader`")
    p.add_argument("--signal", default=None, type=str.upper, choices=["KILL", "TERM", "STOP", "CONT"],
                   help="KILL (kill -9), TERM, STOP (freeze) or CONT (resume) (default: KILL)")
    p.add_argument("--at", metavar="POINT", default=None,
                   help="instead of a signal: the actor ends itself (exit 72) at this point of its next turn "
                        f"that persists: {', '.join(crashpoints.POINTS)} (a learner has no "
                        f"{crashpoints.AFTER_FSYNC}: its replies do not wait for an fsync); exit "
                        f"{EXIT_BAD_CRASH_POINT} for a point that does not exist or does not apply")
    p.add_argument("--no-restart", action="store_true", help="do not let the supervisor restart it")
    p.set_defaults(func=cmd_kill)
    for name, func, text, description, example in (
            ("start", cmd_start, "start a stopped or failed actor",
             "Start an actor that is stopped or failed; its restart budget starts afresh.", "paxos start l1"),
            ("restart", cmd_restart, "stop and start one actor",
             "Stop one actor (SIGTERM) and start it again; its restart budget starts afresh.",
             "paxos restart a3\npaxos restart leader"),
            ("wipe", cmd_wipe, "stop one actor, delete its files, start it: it catches up",
             "Stop one actor, delete its wal and snapshots (never its voted marker) and start it:\n"
             "a learner catches up by snapshot, an acceptor or a proposer rebuilds first.", "paxos wipe l2")):
        p = command(name, text, description, example)
        p.add_argument("name", metavar="NAME", help="an actor of the config" + (", or `leader`" if name == "restart"
                                                                               else ""))
        p.set_defaults(func=func)
    # The harness's commands (runtime/harness/): handed over before parsing when they come
    # first, since they take their own options; here only so that help lists them and a
    # misplaced one gets a clear error.
    for name, (_, text) in HARNESS_COMMANDS.items():
        p = sub.add_parser(name, help=text, add_help=False)
        p.set_defaults(func=lambda config, args, name=name: _fail(
            f"'{name}' takes its own options and must come first: paxos {name} [--help]", EXIT_USAGE))
    p = command("members", "the membership in force; add or remove a member",
                "Without a change: the proposers, acceptors and learners in force, as the most\n"
                "advanced learner delivered them, with the slot whose value chose them (0: cluster.toml's\n"
                "bootstrap membership) and alpha. Exit 3 when the cluster is not running (then it shows\n"
                "the last membership this machine knows).\n\n"
                "`add` and `remove` change it through the log: the serving leader proposes the new\n"
                "membership in its next slot, and it decides the slots from that one plus alpha on.\n"
                "Exit 0 once it is chosen (an added actor whose endpoint is on this machine is then\n"
                "started by the supervisor and catches up); 1 with the reason when it is refused (fewer\n"
                "than 3 acceptors, a duplicate name or endpoint, an unknown name, another change still\n"
                "inside its alpha window: ask again in a moment); 2 when no leader answered in time.\n"
                "A removed actor is stopped once no slot it serves is open; its files stay.",
                "paxos members\npaxos members --json | jq '.acceptors[].name'\n"
                "paxos members add acceptor a4 --endpoint tcp://127.0.0.1:7204\n"
                "paxos members remove a1\n"
                "paxos members replace a3 a6 --endpoint tcp://127.0.0.1:7116\n"
                "paxos members add proposer p3 --endpoint tcp://127.0.0.1:7003 --id 3")
    p.add_argument("--json", action="store_true",
                   help='{"slot", "alpha", "proposers": [{name, id, endpoint}], "acceptors": [{name, endpoint}], '
                        '"learners": [{name, endpoint}]}')
    p.set_defaults(func=cmd_members)
    changes = p.add_subparsers(dest="change", parser_class=Parser, metavar="add|remove|replace")
    q = changes.add_parser("add", parents=[common], help="add a proposer, acceptor or learner",
                           description="Add one member through the log (see `paxos members --help`).")
    q.add_argument("role", choices=["proposer", "acceptor", "learner"], help="its role")
    q.add_argument("name", metavar="NAME", help="a new name (1-32 of a-z, 0-9, _ and -, starting with a letter)")
    q.add_argument("--endpoint", required=True, metavar="tcp://HOST:PORT", help="where it listens")
    q.add_argument("--id", type=int, default=None, metavar="N",
                   help="a proposer's ballot id (default: one above the highest in use)")
    q.add_argument("--timeout-s", type=seconds, default=30.0, metavar="S",
                   help="how long to wait for the change to be chosen (default: %(default)g)")
    q.set_defaults(func=cmd_members_change)
    q = changes.add_parser("replace", parents=[common], help="replace a member by a new one, in one entry",
                           description="Replace OLD by a new member NAME of the same role, in one log entry\n"
                           "(see `paxos members --help`): a failed acceptor's replacement, say.",
                           formatter_class=HelpFormatter,
                           epilog="examples:\n  paxos members replace a3 a6 --endpoint tcp://127.0.0.1:7116")
    q.add_argument("old", metavar="OLD", help="the member to remove")
    q.add_argument("name", metavar="NAME", help="the new member's name")
    q.add_argument("--endpoint", required=True, metavar="tcp://HOST:PORT", help="where the new member listens")
    q.add_argument("--id", type=int, default=None, metavar="N", help="a new proposer's ballot id")
    q.add_argument("--timeout-s", type=seconds, default=30.0, metavar="S",
                   help="how long to wait for the change to be chosen (default: %(default)g)")
    q.set_defaults(func=cmd_members_change)
    q = changes.add_parser("remove", parents=[common], help="remove a member",
                           description="Remove one member through the log (see `paxos members --help`).")
    q.add_argument("name", metavar="NAME", help="a member's name")
    q.add_argument("--timeout-s", type=seconds, default=30.0, metavar="S",
                   help="how long to wait for the change to be chosen (default: %(default)g)")
    q.set_defaults(func=cmd_members_change)
    p = command("keys", "create missing CurveZMQ keys, add a client key, rotate one",
                "Every connection is CurveZMQ: each actor and each client proves a key kept under\n"
                "<data_dir>/keys (0700; secret files 0600). `paxos up` creates the missing ones; this\n"
                "does too, lists every key with its public half, adds a client key to hand to one\n"
                "program (Client(cfg, key_file=...)), or replaces one. Actors read their peers' public\n"
                "keys at start: after rotating an actor's key, restart the cluster.",
                "paxos keys\npaxos keys --client reporting\n"
                "paxos down; paxos keys --rotate a2; paxos up\npaxos keys --rotate clients/reporting")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--client", metavar="NAME", help="create the client key clients/NAME (to hand out)")
    group.add_argument("--rotate", metavar="NAME", help="replace the key of an actor, or of clients/NAME")
    p.set_defaults(func=cmd_keys)
    p = command("logs", "all actors' logs, merged in time order",
                "Every actor's structured log (and the supervisor's), merged in time order, one color\n"
                "per actor; with NAMEs only those.",
                "paxos logs -f\npaxos logs a2 --json\npaxos logs supervisor")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="actors to show, supervisor, or web (the page's server) (default: all)")
    p.add_argument("-f", "--follow", action="store_true", help="keep showing new lines until Ctrl-C")
    p.add_argument("--json", action="store_true", help="raw JSON lines")
    p.set_defaults(func=cmd_logs)
    from runtime.tracechart.command import DESCRIPTION as TRACE_TEXT
    from runtime.tracechart.command import EXAMPLES as TRACE_EXAMPLES
    from runtime.tracechart.command import add_arguments as trace_arguments

    p = command("trace", "a message sequence chart from the trace files", TRACE_TEXT, TRACE_EXAMPLES)
    trace_arguments(p)
    p.set_defaults(func=cmd_trace)

    p = command("explain", "what every file says about one slot (read-only, cluster up or down)",
                "Read every acceptor's and learner's file (never writing, never locking: the cluster may be\n"
                "up or down) and explain SLOT: each acceptor's promise and its votes (ballot, value) for\n"
                "the slot; whether a quorum of the slot's membership chose a value, under which ballot (a\n"
                "majority; in fast mode a fast round's client command needs a fast quorum); which learners\n"
                "delivered it, and whether the epoch rule skipped it (a command of an epoch below the\n"
                "highest StartWorking before it, seed 001), with the numbers. A partial last frame of a\n"
                "file is reported as still being written (or torn by a crash), not as corruption.\n\n"
                + EXPLAIN_EXIT_CODES,
                "paxos explain 3\npaxos explain 3 --json | jq .verdict\npaxos explain 120 --config other.toml")
    p.add_argument("slot", type=slot_number, metavar="SLOT", help="a slot of the log (1, 2, ...)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object: {"slot", "verdict", "summary", "chosen", "acceptors", "learners", '
                        '"violations", "files", "exit_code", ...}')
    p.set_defaults(func=cmd_explain)

    values_from = ("VALUE may be - to read it from stdin, or omitted with --file PATH: either is read\n"
                   "verbatim (a trailing newline included), as UTF-8 text, and is how to pass values\n"
                   "larger than the ~128 KiB one command-line argument can hold.")

    def client(name: str, text: str, description: str, examples: str) -> Parser:
        p = command(name, text, f"{description}\n\n{EXIT_CODES}", examples)
        p.add_argument("key", metavar="KEY", help="a non-empty UTF-8 string")
        p.add_argument("--timeout-s", type=seconds, default=None, metavar="S",
                       help="give up after this many seconds: the outcome is then unknown, exit 2 "
                            "(default: [client] timeout_s of the config, 10)")
        p.set_defaults(func=cmd_client, op=name)
        return p

    def value_args(p: Parser, name: str = "value", what: str = "value") -> None:
        p.add_argument(name, metavar=name.upper(), nargs="?",
                       help=f"the {what}: UTF-8 text, or - to read it from stdin")
        p.add_argument("--file", metavar="PATH", help=f"read the {what} from this file (- for stdin)")

    p = client("put", "set a key", f"Set KEY to VALUE.\n{values_from}",
               "paxos put greeting hello\npaxos put config --file settings.json\n"
               "generate-report | paxos put report -")
    value_args(p)
    p = client("get", "read a key (linearizable, without a log write; --stale: any learner's state)",
               "Print KEY's value. The leader answers through a learner once it has delivered every\n"
               "slot chosen before the read arrived, under its lease (or after a heartbeat round):\n"
               "linearizable, with no log write and no fsync. --stale asks a learner directly and\n"
               "takes its state as it stands: cheaper, and possibly older than a write that was\n"
               "acknowledged. A key that does not exist prints (not found) on stderr and exits 4.",
               "paxos get greeting\npaxos get greeting --stale\npaxos get report > report.txt")
    p.add_argument("--stale", action="store_true",
                   help="read a learner's state as it stands (may be stale; no leader involved)")
    p = client("cas", "set key to NEW if it holds OLD; exit 1 if it did not",
               "Compare and swap: set KEY to NEW if it holds OLD (with --absent: if it does not\n"
               "exist); print true, or false and exit 1. OLD or NEW may be - to read it from\n"
               "stdin (one of them), and NEW may be omitted with --file PATH.",
               "paxos cas greeting hello bye\npaxos cas lock - me --absent\n"
               "paxos cas config old-value --file new-settings.json")
    p.add_argument("old", metavar="OLD", help="the value KEY must hold (ignored with --absent)")
    value_args(p, "new", "new value")
    p.add_argument("--absent", action="store_true", help="expect the key to be absent (OLD is ignored)")
    p = client("append", "append to a key's value (absent counts as empty)",
               f"Append VALUE to KEY's value (a missing key counts as empty) and print the result.\n"
               f"{values_from}", "paxos append log a\ntail -c 1000 app.log | paxos append log -")
    value_args(p)
    client("delete", "remove a key", "Remove KEY (a missing key is fine: exit 0).", "paxos delete greeting")
    return parser


def main(argv: list[str] | None = None) -> int:
    return quiet_on_broken_pipe(lambda: _main(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    lead = argv[:2] if argv[:1] == ["--config"] else []  # `paxos --config X faults ...` too
    if len(argv) > len(lead) and argv[len(lead)] in HARNESS_COMMANDS:
        # The product never imports the harness: the command runs as its own program.
        command = argv[len(lead)]
        module, _ = HARNESS_COMMANDS[command]
        rest = [*(argv[len(lead):] if module.endswith(".faults") else argv[len(lead) + 1:]), *lead]
        os.execv(sys.executable, [sys.executable, "-m", module, *rest])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load(getattr(args, "config", "cluster.toml"))
        return int(args.func(config, args))
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    except UsageError as exc:
        return _fail(f"{exc} (see `paxos {args.command} --help`)", EXIT_USAGE)
    except ControlError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
