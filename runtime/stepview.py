"""`paxos step`: the operator's side of step mode (runtime/step.py holds the actor's side).

It lists what every actor holds, per link, and hands deliver, drop, dup, tick and campaign
requests to the actors that must carry them out, then waits (bounded) for their answers. It
also starts a cluster in step mode in the background (`paxos up --step --detach`) and puts a
running one into step mode or out of it.

Exit codes beyond the CLI's own: 5 a step id that does not exist (any longer, or never did),
7 the cluster is not in step mode; 3 the cluster is not running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from runtime import step
from runtime.config import ClusterConfig
from runtime.control import ControlError, NotRunning, pid_alive, read_state, request

EXIT_NOT_RUNNING = 3
EXIT_NO_SUCH_STEP = 5
EXIT_NOT_STEPPING = 7
ANSWER_S = 10.0  # how long an actor has to answer a request (it reads them every tick; a loaded host is slow)


def _fail(message: str, code: int = 1) -> int:
    print(f"paxos: {message}", file=sys.stderr)
    return code


def running_actors(config: ClusterConfig) -> dict[str, int]:
    """name -> pid of every actor the supervisor runs now; NotRunning when it does not run."""
    status = request(config, {"cmd": "status"}, timeout_s=5.0)
    return {a["name"]: int(a["pid"]) for a in status.get("actors", [])
            if a.get("pid") and a.get("state") in ("running", "paused")}


def indexes(config: ClusterConfig, actors: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The step index of each running actor that wrote one in this run of it."""
    out = {}
    for name, pid in actors.items():
        index = step.read_index(config.run_dir, name)
        if index is not None and index.get("pid") == pid:
            out[name] = index
    return out


def links(config: ClusterConfig, idx: dict[str, dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(from, to, held entries) per link that holds something, in the config's actor order."""
    order = {n: i for i, n in enumerate(config.actors)}
    by_link: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, index in idx.items():
        for entry in index.get("held", []):
            by_link.setdefault((name, entry["to"]), []).append(entry)
    return [(s, d, by_link[(s, d)]) for s, d in sorted(by_link, key=lambda k: (order.get(k[0], 99),
                                                                               order.get(k[1], 99)))]


def wait_mode(config: ClusterConfig, active: bool, timeout_s: float) -> list[str]:
    """Wait until every running actor says it is (or is not) in step mode; the ones that did not."""
    deadline = time.monotonic() + timeout_s
    late: list[str] = []
    while time.monotonic() < deadline:
        actors = running_actors(config)
        idx = indexes(config, actors)
        late = [n for n in actors if idx.get(n, {}).get("active") is not active]
        if not late:
            return []
        time.sleep(0.02)
    return late


def up_detached(config: ClusterConfig, wait_s: float, ticks: str, web: bool = False) -> int:
    """`paxos up --step --detach [--web]`: start the supervisor (with the page's server as its
    child for `--web`), return once every actor runs in step mode (no leader is waited for:
    nothing is elected until somebody delivers the messages)."""
    step.set_mode(config.run_dir, ticks)
    logs_dir = config.data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    with open(logs_dir / "supervisor.stderr", "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "runtime.supervisor", "--config", str(config.path),
                                 *(["--web"] if web else [])],
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    deadline = time.monotonic() + wait_s
    waiting: list[str] = sorted(config.actors)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return _fail(f"the supervisor exited with code {proc.returncode}; see {logs_dir / 'supervisor.stderr'}")
        try:
            actors = running_actors(config)
        except ControlError:
            time.sleep(0.05)
            continue
        idx = indexes(config, actors)
        waiting = [n for n in config.actors if not idx.get(n, {}).get("active")]
        if not waiting:
            settled = settle_start(config, actors, ticks)
            print(f"cluster up in step mode: {len(actors)} actors, every message between them held "
                  f"(timers {ticks}); supervisor pid {proc.pid}, data in {config.data_dir}. "
                  f"`paxos step` lists what is held" + settled)
            return 0
        time.sleep(0.05)
    return _fail(f"not every actor was in step mode within {wait_s:g}s (still waiting for "
                 f"{', '.join(waiting)}); the cluster keeps running: see `paxos status`, `paxos logs`")


def settle_start(config: ClusterConfig, actors: dict[str, int], ticks: str) -> str:
    """With leases on, a freshly started acceptor promises nobody for `lease_ticks` of its ticks
    (it may have forgotten a grant): with paused timers that wait would never end. Every actor is
    ticked that many times together (time passing for all alike, so no lease's arithmetic
    changes; a follower's election timeout is longer). Returns a note for the user."""
    n = config.acceptor_lease_ticks
    if ticks != step.TICKS_PAUSED or not n:
        return ""
    posted = [(name, step.post(config.run_dir, name, {"op": "tick", "n": n})) for name in actors]
    for name, req in posted:
        step.answer(config.run_dir, name, req, ANSWER_S, alive=_alive_check(actors[name]))
    return f" (leases on: every actor ran {n} ticks first, the wait of a fresh acceptor)"


def settle_when_up(config: ClusterConfig, ticks: str, wait_s: float = 60.0) -> None:
    """`paxos up --step` in the foreground: once every actor holds, `settle_start` (from a thread
    beside the supervisor; gives up quietly after `wait_s`)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            actors = running_actors(config)
        except ControlError:
            time.sleep(0.1)
            continue
        idx = indexes(config, actors)
        if actors and all(idx.get(n, {}).get("active") for n in config.actors):
            try:
                note = settle_start(config, actors, ticks)
            except step.StepError:
                return
            print(f"step mode: every message between actors is held; `paxos step` lists them{note}",
                  file=sys.stderr)
            return
        time.sleep(0.1)


def owner(step_id: str) -> str:
    """The actor that holds a step id (`p1.12` -> `p1`)."""
    return step_id.rpartition(".")[0]


def act(config: ClusterConfig, op: str, ids: list[str], actors: dict[str, int]) -> tuple[list[str], list[str]]:
    """deliver, drop or dup these ids: (done, missing). Raises StepError when an actor does not answer."""
    by_actor: dict[str, list[str]] = {}
    missing: list[str] = []
    for i in ids:
        name = owner(i)
        if name in actors:
            by_actor.setdefault(name, []).append(i)
        else:
            missing.append(i)
    done: list[str] = []
    posted = []
    for name, some in by_actor.items():
        for start in range(0, len(some), 100):  # a request line stays small (step.REQUEST_BYTES_MAX)
            posted.append((name, step.post(config.run_dir, name, {"op": op, "ids": some[start:start + 100]})))
    for name, req in posted:
        reply = step.answer(config.run_dir, name, req, ANSWER_S, alive=_alive_check(actors[name]))
        done += reply.get("done", [])
        missing += reply.get("missing", [])
    return done, missing


def _alive_check(pid: int) -> Callable[[], bool]:
    return lambda: _alive(pid)


def _alive(pid: int) -> bool:
    return pid_alive(pid)


def show(config: ClusterConfig, idx: dict[str, dict[str, Any]], ticks: str, as_json: bool) -> None:
    held = links(config, idx)
    if as_json:
        print(json.dumps({"ticks": ticks, "links": [{"from": s, "to": d, "held": e} for s, d, e in held]}))
        return
    from rich.console import Console
    from rich.table import Table

    now_ms = int(time.time() * 1000)
    table = Table(title=f"held messages (step mode, timers {ticks})")
    for col in ("link", "id", "message", "copies", "held for"):
        table.add_column(col)
    for s, d, entries in held:
        for k, e in enumerate(entries):
            table.add_row(f"{s} -> {d}" if k == 0 else "", e["id"], e["label"],
                          f"x{e['count']}" if e["count"] > 1 else "", f"{(now_ms - e['parked_ms']) / 1000:.1f}s")
    console = Console()
    console.print(table) if held else console.print("nothing held")
    console.print("paxos step deliver ID ... | drop ID ... | dup ID ... | deliver --link FROM:TO | "
                  "tick NAME | campaign NAME | release", highlight=False)


def cmd_step(config: ClusterConfig, args: argparse.Namespace) -> int:
    if args.release:
        args.action = "release"
    if args.action == "hold":
        if read_state(config) is None:
            return _fail(f"the cluster of {config.path} is not running (`paxos up --step` starts it in step mode)",
                         EXIT_NOT_RUNNING)
        step.set_mode(config.run_dir, args.ticks)
        late = wait_mode(config, True, ANSWER_S)
        if late:
            return _fail(f"not in step mode yet: {', '.join(late)}")
        print(f"step mode: every message between actors is held (timers {args.ticks})")
        return 0
    ticks = step.read_mode(config.run_dir)
    try:
        actors = running_actors(config)
    except NotRunning:
        return _fail(f"the cluster of {config.path} is not running", EXIT_NOT_RUNNING)
    except ControlError as exc:
        return _fail(str(exc))
    if ticks is None:
        return _fail("the cluster is not in step mode (`paxos step hold`, or `paxos up --step`)", EXIT_NOT_STEPPING)
    try:
        return _do(config, args, actors, ticks)
    except step.StepError as exc:
        return _fail(str(exc), exc.code)


def _do(config: ClusterConfig, args: argparse.Namespace, actors: dict[str, int], ticks: str) -> int:
    action = args.action
    if action == "release":
        held = sum(len(i.get("held", [])) for i in indexes(config, actors).values())
        step.set_mode(config.run_dir, None)
        late = wait_mode(config, False, ANSWER_S)
        if late:
            return _fail(f"left step mode, but {', '.join(late)} did not say so in time")
        print(f"step mode off: {held} held messages sent; timers run")
        return 0
    if action == "list":
        show(config, indexes(config, actors), ticks, args.json)
        return 0
    if action in ("tick", "campaign"):
        if not 1 <= args.n <= step.TICKS_PER_REQUEST_MAX:
            return _fail(f"--n must be 1..{step.TICKS_PER_REQUEST_MAX}, not {args.n}", 64)
        if not args.ids:
            return _fail(f"step {action}: name the actors (e.g. paxos step {action} p1)", 64)
        unknown = [n for n in args.ids if n not in config.actors]
        if unknown:
            return _fail(f"no actor named {', '.join(unknown)} in {config.path} (known: {', '.join(config.actors)})",
                         64)
        down = [n for n in args.ids if n not in actors]
        if down:
            return _fail(f"not running: {', '.join(down)}")
        posted = [(n, step.post(config.run_dir, n, {"op": action, "n": args.n})) for n in args.ids]
        bad = []
        for name, req in posted:
            reply = step.answer(config.run_dir, name, req, ANSWER_S, alive=_alive_check(actors[name]))
            if not reply.get("ok"):
                bad.append(f"{name}: {reply.get('error')}")
        if bad:
            return _fail(f"step {action}: " + "; ".join(bad))
        what = f"{args.n} tick{'s' if args.n != 1 else ''}" if action == "tick" else "campaign started"
        print(f"step {action}: {what} on {', '.join(args.ids)}")
        return 0
    ids = list(args.ids)
    if args.link:
        src, sep, dst = args.link.partition(":")
        if not sep or src not in config.actors or dst not in config.actors:
            return _fail(f"--link is FROM:TO with two actors of {config.path}, not {args.link!r}", 64)
        for s, d, entries in links(config, indexes(config, actors)):
            if (s, d) == (src, dst):
                ids += [e["id"] for e in entries]
        if not ids:
            print(f"step {action}: nothing held on {src} -> {dst}")
            return 0
    if not ids:
        return _fail(f"step {action}: give the ids to {action} (see `paxos step`) or --link FROM:TO", 64)
    done, missing = act(config, action, ids, actors)
    if done:
        print(f"step {action}: {' '.join(done)}")
    if missing:
        return _fail(f"no held message {', '.join(missing)}: it was delivered or dropped already, lost with "
                     f"a crash of its sender, or never existed (`paxos step` lists what is held)",
                     EXIT_NO_SUCH_STEP)
    return 0


def add_parser(command: Any) -> None:
    """The `step` subcommand's arguments (runtime/cli.py's `command` helper makes the parser)."""
    p = command("step", "step mode: list the held messages; deliver, drop or duplicate one",
                "In step mode (`paxos up --step`, or `paxos step hold` on a running cluster) every\n"
                "message between actors is held by its sender until you say what becomes of it:\n"
                "  paxos step                     list what is held, per link, with ids\n"
                "  paxos step deliver ID ...      send these (ids as listed: p1.3)\n"
                "  paxos step drop ID ...         discard them\n"
                "  paxos step dup ID ...          send two copies\n"
                "  paxos step deliver --link p1:a1   everything held on one link (drop, dup too)\n"
                "  paxos step tick NAME ... [--n K]  run K ticks of these actors (timers are paused)\n"
                "  paxos step campaign NAME       a proposer's election timer fires now\n"
                "  paxos step release             leave step mode: everything held is sent, timers run\n"
                "  paxos step hold [--ticks run]  enter step mode on a running cluster\n"
                "Messages to clients are never held. Exit 5: an id that is not held (any longer);\n"
                "7: the cluster is not in step mode; 3: it is not running.",
                "paxos up --step --detach\npaxos put k v --timeout-s 60 &\npaxos step\n"
                "paxos step campaign p1\npaxos step deliver --link p1:a1\npaxos step release")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "deliver", "drop", "dup", "tick", "campaign", "release", "hold"])
    p.add_argument("ids", nargs="*", metavar="ID", help="held message ids (p1.3), or actor names for tick/campaign")
    p.add_argument("--link", metavar="FROM:TO", help="every message held on this link")
    p.add_argument("--n", type=int, default=1, metavar="K", help="tick: how many ticks (default 1)")
    p.add_argument("--ticks", choices=[step.TICKS_PAUSED, step.TICKS_RUN], default=step.TICKS_PAUSED,
                   help="hold: whether timers pause (default) or run while messages are held")
    p.add_argument("--release", action="store_true", help="the same as `paxos step release`")
    p.add_argument("--json", action="store_true", help='list: {"ticks", "links": [{"from", "to", "held"}]}')
    p.set_defaults(func=cmd_step)
