"""The `paxos` command: run a local cluster, break it, watch it, and use it.

Every command takes `--config PATH` (default `./cluster.toml`). Client commands exit 0 on
success, 1 on a definite failure (the command was refused or never sent) and 2 when the
outcome is unknown (it may or may not have been applied). Usage errors exit 64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from runtime.config import ClusterConfig, ConfigError, load
from runtime.control import ControlError, NotRunning, pid_alive, read_state, request

EXIT_USAGE = 64
HARNESS_COMMANDS = {
    "bench": ("runtime.harness.bench", "the benchmark against PySyncObj (see runtime/harness/bench.py)"),
    "nemesis": ("runtime.harness.nemesis", "a Jepsen-style run on a fresh throw-away cluster"),
    "faults": ("runtime.harness.faults", "test mode: set link faults (JSON rules, see runtime/harness/faults.py)"),
    "powerloss": ("runtime.harness.faults", "test mode: kill -9 actors and cut their files back to the last fsync"),
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _fail(message: str, code: int = 1) -> int:
    print(f"paxos: {message}", file=sys.stderr)
    return code


# --- cluster commands -----------------------------------------------------------------------


def cmd_up(config: ClusterConfig, args: argparse.Namespace) -> int:
    state = read_state(config)
    if state is not None:
        return _fail(f"the cluster in {config.data_dir} is already running (supervisor pid {state['pid']})")
    if args.detach:
        return _up_detached(config, args.wait_s)
    return _up_foreground(config, args)


def _up_detached(config: ClusterConfig, wait_s: float) -> int:
    logs_dir = config.data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    with open(logs_dir / "supervisor.stderr", "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.supervisor", "--config", str(config.path)],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] = {}
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
        if last.get("leader"):
            print(f"cluster up: {len(last['actors'])} actors, leader {last['leader']}, "
                  f"supervisor pid {proc.pid}, data in {config.data_dir}")
            return 0
        failed = [a for a in last.get("actors", []) if a["state"] == "failed"]
        if failed:
            return _fail("actors failed to start: " + "; ".join(f"{a['name']}: {a['reason']}" for a in failed))
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
    (config.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    viewer = threading.Thread(target=tail_logs, daemon=True)
    viewer.start()
    import uvloop

    try:
        code = uvloop.run(Supervisor(config).run())
    except RuntimeError as exc:
        return _fail(str(exc))
    finally:
        time.sleep(0.3)
        done.set()
        viewer.join(timeout=2)
    return code


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


def cmd_status(config: ClusterConfig, args: argparse.Namespace) -> int:
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
            "actors": [{k: a.get(k) for k in ("name", "role", "pid", "state", "restarts", "reason", "disk_full")}
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
        table.add_row(a["name"], a["role"], str(a["pid"] or "-"), f"[{style}]{a['state']}[/]",
                      str(a["restarts"]), detail)
    console = Console()
    console.print(table)
    for a in status["actors"]:  # a full disk in full, whatever the terminal's width
        if a.get("disk_full"):
            d = a["disk_full"]
            console.print(f"[bold red]disk full[/] for {a['name']}: {d['path']} (file system {d['mount']}: "
                          f"{d['free_bytes']} of {d['total_bytes']} bytes free); free space there, then "
                          f"`paxos start {a['name']}`", soft_wrap=True, markup=True, highlight=False)
    console.print(f"leader: {status.get('leader') or 'none'}")
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
    config.actor(args.name)
    return _control(config, {"cmd": "kill", "name": args.name, "signal": args.signal,
                             "restart": not args.no_restart})


def cmd_start(config: ClusterConfig, args: argparse.Namespace) -> int:
    config.actor(args.name)
    return _control(config, {"cmd": "start", "name": args.name})


def cmd_restart(config: ClusterConfig, args: argparse.Namespace) -> int:
    config.actor(args.name)
    return _control(config, {"cmd": "restart", "name": args.name})


def cmd_wipe(config: ClusterConfig, args: argparse.Namespace) -> int:
    config.actor(args.name)
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


def cmd_logs(config: ClusterConfig, args: argparse.Namespace) -> int:
    from runtime.logview import show

    log_dir = config.data_dir / "logs"
    for name in args.names:
        if name != "supervisor":
            config.actor(name)
    if not log_dir.exists():
        return _fail(f"no logs yet in {log_dir}")
    try:
        show(log_dir, args.names or None, as_json=args.json, follow=args.follow)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# --- client commands ------------------------------------------------------------------------


def cmd_client(config: ClusterConfig, args: argparse.Namespace) -> int:
    from runtime.client import Client, ClusterUnavailable, CommandFailed, OutcomeUnknown

    async def run() -> Any:
        async with Client(config, timeout_s=args.timeout_s) as kv:
            if args.op == "put":
                return await kv.put(args.key, args.value)
            if args.op == "get":
                return await kv.get(args.key)
            if args.op == "cas":
                return await kv.cas(args.key, None if args.absent else args.old, args.new)
            if args.op == "append":
                return await kv.append(args.key, args.value)
            return await kv.delete(args.key)

    import uvloop

    try:
        result = uvloop.run(run())
    except OutcomeUnknown as exc:
        return _fail(f"outcome unknown: {exc}", 2)
    except (CommandFailed, ValueError, ClusterUnavailable) as exc:
        return _fail(f"{args.op} failed: {exc}", 1)
    if args.op == "get":
        if result is None:
            print("(not found)", file=sys.stderr)
        else:
            print(result)
    elif args.op == "cas":
        print("true" if result else "false")
        return 0 if result else 1
    elif args.op == "append":
        print(result)
    else:
        print("ok")
    return 0


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help="cluster config (default: ./cluster.toml)")
    parser = Parser(prog="paxos", description="Run, break and watch a local Multi-Paxos cluster.",
                    parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("up", parents=[common], help="start the supervisor and all actors")
    p.add_argument("--detach", action="store_true", help="run in the background; return once a leader serves")
    p.add_argument("--wait-s", type=float, default=30.0, help="with --detach: how long to wait for a leader")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", parents=[common], help="stop everything (files stay)").set_defaults(func=cmd_down)
    p = sub.add_parser("status", parents=[common], help="each actor's state and the leader")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("kill", parents=[common], help="signal one actor (default KILL)")
    p.add_argument("name")
    p.add_argument("--signal", default="KILL", type=str.upper, choices=["KILL", "TERM", "STOP", "CONT"])
    p.add_argument("--no-restart", action="store_true", help="do not let the supervisor restart it")
    p.set_defaults(func=cmd_kill)
    for name, func, text in (("start", cmd_start, "start a stopped actor"),
                             ("restart", cmd_restart, "stop and start one actor"),
                             ("wipe", cmd_wipe, "stop one actor, delete its files, start it: it catches up")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("name")
        p.set_defaults(func=func)
    # The harness's commands (runtime/harness/): handed over before parsing when they come
    # first, since they take their own options; here only so that help lists them and a
    # misplaced one gets a clear error.
    for name, (_, text) in HARNESS_COMMANDS.items():
        p = sub.add_parser(name, help=text, add_help=False)
        p.set_defaults(func=lambda config, args, name=name: _fail(
            f"'{name}' takes its own options and must come first: paxos {name} [--help]", 2))
    p = sub.add_parser("logs", parents=[common], help="all actors' logs, merged in time order")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--json", action="store_true", help="raw JSON lines")
    p.set_defaults(func=cmd_logs)

    def client(name: str, fields: list[str], text: str) -> Parser:
        p = sub.add_parser(name, parents=[common], help=text)
        for f in fields:
            p.add_argument(f)
        p.add_argument("--timeout-s", type=float, default=None, help="give up after this long (outcome unknown)")
        p.set_defaults(func=cmd_client, op=name)
        return p

    client("put", ["key", "value"], "set a key")
    client("get", ["key"], "read a key (through the log: linearizable)")
    p = client("cas", ["key", "old", "new"], "set key to NEW if it holds OLD; exit 1 if it did not")
    p.add_argument("--absent", action="store_true", help="expect the key to be absent (OLD is ignored)")
    client("append", ["key", "value"], "append to a key's value (absent counts as empty)")
    client("delete", ["key"], "remove a key")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
