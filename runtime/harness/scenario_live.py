"""The scenario scripts (`tests/scenarios/*.scn`) on real processes: the second executor of the
one script language (the first, runtime/harness/sim/scenario.py, runs them on the simulated world).

Each `cluster` line starts a throw-away cluster of real actor processes in a directory of its own
(scenario timings: `[reads] lease = false`, snapshots off, fsync off, as the simulated world) in
step mode with paused timers (runtime/step.py): every message between actors is held by its
sender, and the script decides what is delivered and dropped, through the same requests `paxos
step` makes. The commands mean what they mean in the simulator:

    timeout P            P's election timer fires now (a step `campaign` request)
    tick [A ...] n=K     K ticks of those actors (default every actor), run at once
    submit P C/S OP ...  one Submit frame of client C's session straight to P (not held)
    deliver [FILTER]     deliver what matches, and what that causes and matches, until none does
    deliver-once, drop   deliver only what is held now; discard what matches
    dup, hold, release   two copies go when it is delivered; kept out of reach of deliver and
                         drop until released (every message is held by its sender anyway)
    crash A, restart A   kill -9 without restart (what A held dies with it: a difference from
                         the simulator, whose network keeps what was sent); start it again
    record A ...         crafted durable records, written to A's wal with A stopped
    run [n=K]            step mode off for K ticks of wall time (at least half a second), then on
    expect A F=V ...     A's core status, as its step index shows it (polled, bounded)
    expect-kv L K=V ...  a stale read straight to learner L
    expect-chosen S B V  a majority of acceptors' wals hold V for slot S under ballot B
    expect-replies C S=R what client C was told for seq S (`none`: nothing)

After every delivery the driver waits until each destination has taken in what it was sent
(the `recv` counts of the step indexes), so the next line sees its consequences held. The
commands a real cluster cannot do (corrupt, wipe, members, fast-submit, ...) and the cluster
options it does not take (snapshots, spare actors, fast mode) are refused before anything starts:
"not supported on real processes".

After the run, passed or failed, it draws each cluster's message sequence chart from the
cluster's trace files, with `paxos trace`'s code (runtime/tracechart/command.py: whole_chart,
print_chart, write_svg): one column per actor (and per client of the script, by its name in the
script), one arrow per message, and every message the script dropped an arrow ending in `✗`,
"(dropped)": a held message that step mode drops is traced as a send marked `dropped` (see
runtime/trace.py). A script with several `cluster` lines draws one chart per cluster, titled with
its line. Into a pipe or a file the chart is plain text (no color), 160 columns wide unless
`--width`; the verdict is the last line, under the charts.

    paxos scenario --list
    paxos scenario seed002_lost_messages                 # the transcript, the chart, the verdict
    paxos scenario seed002_lost_messages --svg run.svg   # the chart as SVG too
    paxos scenario dueling_proposers --no-chart --keep   # no chart; keep the run's directory
    paxos scenario --file my.scn --width 200 --limit 300

Exit codes: 0 every expectation held (and the charts were drawn); 1 one did not (the line, what
was expected and what was found); 6 no scenario of that name; 8 the script uses a command not
supported on real processes; 64 usage, or a script line that is not a valid command; 65 a trace
file is corrupt, 66 a cluster left no trace file to draw from (only when the scenario passed:
its verdict comes first); 73 the `--svg` file cannot be written (checked before the run
starts, so a typo costs no run; a script with several clusters writes FILE, FILE-cluster2.svg,
...). `--no-chart` draws none on stdout (`--svg` still writes its file). With `--keep` the run's
directory stays (the line `data: DIR` names it; `paxos --config DIR/cluster1/cluster.toml
trace` draws from it again, with its selections). `--file PATH` runs a script of one's own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import zmq

from actors.ballot import Ballot
from actors.messages import Hello, Read, Redirect, Reply, Submit
from actors.records import AcceptRecord, Record
from runtime import codec, keys, step, stepview
from runtime.config import ClusterConfig, load, render
from runtime.control import ControlError, request
from runtime.harness.local import free_ports
from runtime.harness.sim.scenario import (
    ScenarioError,
    ballot,
    describe_value,
    make_filter,
    parse_command,
    parse_record,
    script_lines,
)
from runtime.program import quiet_on_broken_pipe
from runtime.wal import SCANNER, Wal

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "tests" / "scenarios"
# The design brief's scenarios (seeds 000-002), in its order.
SEED_SCENARIOS = ("seed002_lost_messages", "seed002_pick_a_value", "dueling_proposers", "ghost_reappearance",
                  "minority_slot_recovery", "seed000_ballot_numbers")
SUPPORTED = {"cluster", "record", "timeout", "tick", "submit", "deliver", "deliver-once", "drop", "dup", "hold",
             "release", "crash", "restart", "run", "expect", "expect-kv", "expect-chosen", "expect-replies"}
CLUSTER_OPTIONS = {"proposers", "acceptors", "learners", "seed"}  # the others (snapshots, spares, fast mode): sim only
EXIT_FAILED = 1
EXIT_UNKNOWN_SCENARIO = 6
EXIT_UNSUPPORTED = 8
EXIT_USAGE = 64
EXIT_BAD_TRACES = 65  # as `paxos trace`: a trace file that is corrupt or not this cluster's
EXIT_NO_TRACES = 66
EXIT_CANT_CREATE = 73
EXPECT_S = 5.0  # how long an expectation may take to hold (status is written after each turn)
DELIVERED_S = 10.0  # how long a destination may take to take in what it was sent
CASCADE_ROUNDS_MAX = 500
READS_SESSION = "__scenario_reads__"  # expect-kv's own session (the script's clients are c, ca, ...)
READS_NAME = "reads"  # its column in the chart
CHART_ROWS = 1000  # --limit's default: a scenario's whole story fits (seed 002 draws about 150)
RUN_S_MIN = 0.5
# The simulated world's knobs (runtime/harness/sim/world.py WorldConfig), for real processes.
SCENARIO_CONFIG = """fsync = false
tick_ms = 10

[protocol]
heartbeat_ticks = 5
election_ticks = 30
retry_ticks = 20
window_slots = 16

[reads]
lease = false

[snapshot]
enabled = false

[supervisor]
restart = "permanent"
"""


class BadScript(ScenarioError):
    """A line that is not a command of the language (missing or malformed arguments)."""


class Unsupported(Exception):
    """A script uses commands this executor cannot run on real processes."""


def unsupported(text: str) -> list[str]:
    """The commands of a script that real processes cannot run, with their line numbers."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            try:
                tokens = shlex.split(line)
            except ValueError as exc:
                raise BadScript(f"line {number}: {line}: {exc}") from None
            op = tokens[0]
            if op not in SUPPORTED:
                out.append(f"line {number}: {op}")
            elif op == "cluster":
                out += [f"line {number}: cluster {t.partition('=')[0]}" for t in tokens[1:]
                        if t.partition("=")[0] not in CLUSTER_OPTIONS]
    return out


def available() -> dict[str, str]:
    """name -> the first line of its description, for every script in tests/scenarios."""
    out = {}
    for path in sorted(SCENARIOS_DIR.glob("*.scn")):
        first = next((ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        out[path.stem] = first
    return out


@dataclass
class ClusterRun:
    """One `cluster` line's cluster, as its chart needs it: where its config is, the line that
    made it, and the script's names for the client sessions that spoke to it."""

    config_path: Path
    line: str = ""
    clients: dict[str, str] = field(default_factory=dict)  # session id -> `c`, `ca`, ...


@dataclass
class Session:
    """A script's client (`c`, `ca`, ...): one session id and a DEALER per actor it speaks to."""

    id: str
    sockets: dict[str, zmq.Socket[bytes]] = field(default_factory=dict)
    replies: dict[int, str] = field(default_factory=dict)  # seq -> "ok:None", the first answer


EXIT_INTERRUPTED = 130  # as a shell reports a Ctrl-C
STARTING_WAIT_S = 5.0  # how long close() waits for the pid file of a supervisor `paxos up` was starting

class Live:
    """One script's run on real processes (a fresh cluster per `cluster` line)."""

    def __init__(self, root: Path, out: Callable[[str], None], expect_s: float = EXPECT_S,
                 runs: list[ClusterRun] | None = None) -> None:
        self.root = root
        self.runs = runs if runs is not None else []  # one per `cluster` line, for the charts
        self.expect_s = expect_s
        self.out = out
        self.config: ClusterConfig | None = None
        self.started = False
        self.starting = False  # `paxos up` under way: interrupted there, its supervisor may run on
        self.pids: set[int] = set()
        self.sessions: dict[str, Session] = {}
        self.clusters = 0
        self.supervisor_pid = 0
        self.down: set[str] = set()
        self._reads = 1_000_000  # the seqs of expect-kv's reads (apart from the script's)
        # `hold`: ids the script keeps back (held by their senders like every message, but out of
        # reach of deliver and drop until `release`); `dup`: ids that stand for two copies.
        self.withheld: set[str] = set()
        self.doubled: set[str] = set()
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()

    @property
    def c(self) -> ClusterConfig:
        if self.config is None:
            raise ScenarioError("the first command must be `cluster ...`")
        return self.config

    # --- running ---------------------------------------------------------------------------

    def run(self, text: str, source: str) -> None:
        for number, line in script_lines(text, self.out):
            tokens = shlex.split(line)
            try:
                if tokens[0] not in ("cluster", "record"):
                    self._start()
                getattr(self, "do_" + tokens[0].replace("-", "_"))(tokens[1:])
                if tokens[0] == "cluster":
                    self.runs[-1].line = f"line {number}: {line}"
            except BadScript as exc:
                raise BadScript(f"{source}:{number}: {line}: {exc}") from None
            except ScenarioError as exc:
                raise ScenarioError(f"{source}:{number}: {line}: {exc}") from None
            except (IndexError, KeyError, ValueError) as exc:  # the line's arguments, not the cluster
                raise BadScript(f"{source}:{number}: {line}: not a valid {tokens[0]} line "
                                f"({type(exc).__name__}: {exc}); see runtime/harness/sim/scenario.py") from None

    def close(self) -> None:
        if self.runs:  # the chart names the sessions as the script does
            self.runs[-1].clients.update({s.id: READS_NAME if name == READS_SESSION else name
                                          for name, s in self.sessions.items()})
        for s in self.sessions.values():
            for sock in s.sockets.values():
                sock.close(0)
        self.sessions.clear()
        if self.config is not None and (self.started or self.starting):
            # Interrupted inside `paxos up` (SIGINT from the page's stop, its server's death): the
            # detached supervisor may still be coming up; its pid file names it once it runs.
            self._pids(wait_s=STARTING_WAIT_S if self.starting else 0.0)
        # A throw-away cluster: kill -9 every process it ran, by pid (each still ours: its
        # command line names this cluster's config), the supervisor first so nothing restarts.
        mine = str(self.config.path).encode() if self.config is not None else b"\0"
        for pid in sorted(self.pids, key=lambda p: p != self.supervisor_pid):
            try:
                if mine in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() and _zombie_free(pid) for pid in self.pids) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        self.pids.clear()
        self.supervisor_pid = 0
        self.started = False

    def _pids(self, wait_s: float = 0.0) -> None:
        """The cluster's pids: its supervisor's (from its pid file, waited for up to `wait_s`),
        whose actors end with it (die_with_parent), and each actor's that the status names."""
        state_file = self.c.run_dir / "supervisor.json"
        deadline = time.monotonic() + wait_s
        while not state_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            self.supervisor_pid = int(json.loads(state_file.read_text())["pid"])
            self.pids.add(self.supervisor_pid)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            status = request(self.c, {"cmd": "status"}, timeout_s=5.0)
        except ControlError:
            return
        self.pids |= {int(a["pid"]) for a in status.get("actors", []) if a.get("pid")}

    def _start(self) -> None:
        if self.started:
            return
        c = self.c
        self.starting = True
        proc = subprocess.run([sys.executable, "-m", "runtime.cli", "up", "--step", "--detach", "--wait-s", "30",
                               "--config", str(c.path)], capture_output=True, text=True, timeout=90)
        self.started, self.starting = True, False
        self._pids()
        if proc.returncode != 0:
            raise ScenarioError(f"the cluster did not start in step mode: {proc.stderr.strip()}")

    # --- the step driver -------------------------------------------------------------------

    def actors(self) -> dict[str, int]:
        try:
            return stepview.running_actors(self.c)
        except ControlError as exc:
            raise ScenarioError(f"the supervisor does not answer: {exc}") from None

    def indexes(self) -> dict[str, dict[str, Any]]:
        return stepview.indexes(self.c, self.actors())

    def _all_held(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, e) for name, index in self.indexes().items() for e in index.get("held", [])]

    def held(self, pred: Callable[[Any], bool]) -> list[tuple[str, dict[str, Any]]]:
        """(sender, entry) of every held message the filter takes, in parking order per sender."""
        out = []
        for name, index in self.indexes().items():
            for e in index.get("held", []):
                envelope = SimpleNamespace(src=name, dst=e["to"], message=SimpleNamespace(TYPE=e["type"]))
                if e["id"] not in self.withheld and pred(envelope):
                    out.append((name, e))
        return out

    def _request(self, name: str, req: dict[str, Any], pid: int) -> dict[str, Any]:
        token = step.post(self.c.run_dir, name, req)
        try:
            return step.answer(self.c.run_dir, name, token, stepview.ANSWER_S, alive=stepview._alive_check(pid))
        except step.StepError as exc:
            raise ScenarioError(str(exc)) from None

    def _settle(self, before: dict[str, dict[str, Any]], sent: dict[tuple[str, str], int]) -> None:
        """Wait until every destination took in what was sent to it ((from, to) -> frames) since
        `before` (the indexes then), unless it is down."""
        deadline = time.monotonic() + DELIVERED_S
        while True:
            actors = self.actors()
            idx = stepview.indexes(self.c, actors)
            late = []
            for (src, dst), n in sent.items():
                if dst not in actors or dst not in before or idx.get(dst, {}).get("pid") != before[dst].get("pid"):
                    continue  # down or restarted since: what was in flight is lost, as in a crash
                if idx[dst].get("recv", {}).get(src, 0) < before[dst].get("recv", {}).get(src, 0) + n:
                    late.append(f"{src} -> {dst}")
            if not late:
                return
            if time.monotonic() >= deadline:
                raise ScenarioError(f"not taken in within {DELIVERED_S:g}s: {', '.join(late)}")
            time.sleep(0.01)

    def release(self, op: str, entries: list[tuple[str, dict[str, Any]]], verb: str) -> None:
        actors = self.actors()
        before = stepview.indexes(self.c, actors)
        by_request: dict[tuple[str, str], list[str]] = {}
        for src, e in entries:
            twice = e["id"] in self.doubled
            self.doubled.discard(e["id"])
            kind = "dup" if op == "deliver" and twice else op  # a `dup`ed message: both copies go
            by_request.setdefault((src, kind), []).append(e["id"])
            for _ in range(2 if twice else 1):
                self.out(f"  {verb} {src} -> {e['to']}: {e['label']}")
        sent: dict[tuple[str, str], int] = {}
        for (src, kind), ids in by_request.items():
            for start in range(0, len(ids), 100):
                reply = self._request(src, {"op": kind, "ids": ids[start:start + 100]}, actors[src])
                for dst in reply.get("sent", {}).values():
                    sent[(src, dst)] = sent.get((src, dst), 0) + (2 if kind == "dup" else 1)
        self._settle(before, sent)

    # --- commands --------------------------------------------------------------------------

    def do_cluster(self, args: list[str]) -> None:
        self.close()
        sizes = dict(a.split("=") for a in args)
        extra = set(sizes) - {"proposers", "acceptors", "learners", "seed"}
        if extra:
            raise Unsupported(f"cluster {' '.join(sorted(extra))}: not supported on real processes")
        n = {k: int(sizes.get(k, d)) for k, d in (("proposers", 2), ("acceptors", 3), ("learners", 1))}
        self.clusters += 1
        root = self.root / f"cluster{self.clusters}"
        root.mkdir(parents=True)
        names = ([f"p{i}" for i in range(1, n["proposers"] + 1)] + [f"a{i}" for i in range(1, n["acceptors"] + 1)]
                 + [f"l{i}" for i in range(1, n["learners"] + 1)])
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        path = root / "cluster.toml"
        path.write_text(render(ports, proposers=n["proposers"], acceptors=n["acceptors"], learners=n["learners"],
                               extra=SCENARIO_CONFIG))
        self.config = load(path)
        self.runs.append(ClusterRun(path))
        self.down = set()
        keys.ensure(self.config)
        self.out(f"    data: {root}")

    def do_record(self, args: list[str]) -> None:
        name = args[0]
        record: Record = parse_record(args[1], args[2:])
        running = self.started and name not in self.down
        if running:
            self.do_crash([name])
        c = self.c
        wal, _ = Wal.open(c.wal_path(name), c.actor(name).role, name, fsync=True)
        try:
            wal.append([record], sync=True)
        finally:
            wal.close()
        if running:
            self.do_restart([name])

    def do_timeout(self, args: list[str]) -> None:
        actors = self.actors()
        if args[0] not in actors:
            raise ScenarioError(f"{args[0]} is not running")
        reply = self._request(args[0], {"op": "campaign"}, actors[args[0]])
        if not reply.get("ok"):
            raise ScenarioError(str(reply.get("error")))

    def do_tick(self, args: list[str]) -> None:
        names = [a for a in args if "=" not in a] or list(self.actors())
        n = int(next((a.split("=")[1] for a in args if a.startswith("n=")), 1))
        actors = self.actors()
        for name in names:
            if name in actors:
                self._request(name, {"op": "tick", "n": n}, actors[name])

    def _session(self, client: str) -> Session:
        s = self.sessions.get(client)
        if s is None:
            pair = keys.client_pair(self.c) if self.c.security.curve else None
            s = self.sessions[client] = Session(keys.new_session_id(pair))
            for learner in self.c.learners:
                self._socket(s, learner.name)
            deadline = time.monotonic() + EXPECT_S
            waiting = {lr.name for lr in self.c.learners if lr.name not in self.down}
            while waiting and time.monotonic() < deadline:  # the reply path is open once each answered
                for name in list(waiting):
                    sock = s.sockets[name]
                    sock.send(codec.encode_frame(s.id, [Hello()]), zmq.NOBLOCK)
                    if sock.poll(100):
                        self._drain(s)
                        waiting.discard(name)
        return s

    def _socket(self, s: Session, name: str) -> zmq.Socket[bytes]:
        sock = s.sockets.get(name)
        if sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTING_ID, s.id.encode())
            c = self.c
            if c.security.curve:
                keys.secure_client(sock, keys.client_pair(c), keys.server_public(c, name))
            sock.connect(c.actor(name).endpoint)
            s.sockets[name] = sock
        return sock

    def _drain(self, s: Session) -> list[Any]:
        """Everything the cluster sent this session so far; replies are recorded (first wins)."""
        got = []
        for sock in s.sockets.values():
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    _, messages = codec.decode_frame(frame)
                except codec.DecodeError:
                    continue
                for m in messages:
                    got.append(m)
                    if isinstance(m, Reply):
                        for seq, ok, result in m.results:
                            s.replies.setdefault(seq, f"{'ok' if ok else 'err'}:{result}")
        return got

    def do_submit(self, args: list[str]) -> None:
        proposer = args[0]
        client, command = parse_command(args[1:])
        s = self._session(client)
        actors = self.actors()
        before = stepview.indexes(self.c, actors)
        sock = self._socket(s, proposer)
        sock.send(codec.encode_frame(s.id, [Submit(codec.encode_client_batch(s.id, 0, [command]))]), zmq.NOBLOCK)
        # One Submit, one turn (as the simulator steps it): wait until the proposer took it in
        # before anything else reaches it, so that two submits never share a slot by chance.
        self._settle(before, {(s.id, proposer): 1})
        for m in self._drain(s):
            if isinstance(m, Redirect):
                self.out(f"    {proposer}: redirect leader={m.leader or '-'} reason={m.reason}")

    def do_deliver(self, args: list[str]) -> None:
        pred = make_filter(args)
        for _ in range(CASCADE_ROUNDS_MAX):
            entries = self.held(pred)
            if not entries:
                return
            self.release("deliver", entries, "deliver")
        raise ScenarioError("deliver: no end in sight (a livelock?)")

    def do_deliver_once(self, args: list[str]) -> None:
        entries = self.held(make_filter(args))
        if entries:
            self.release("deliver", entries, "deliver")

    def do_drop(self, args: list[str]) -> None:
        entries = self.held(make_filter(args))
        if entries:
            self.release("drop", entries, "drop")

    def do_dup(self, args: list[str]) -> None:
        for src, e in self.held(make_filter(args)):
            self.doubled.add(e["id"])
            self.out(f"  dup {src} -> {e['to']}: {e['label']}")

    def do_hold(self, args: list[str]) -> None:
        for src, e in self.held(make_filter(args)):
            self.withheld.add(e["id"])
            self.out(f"  hold {src} -> {e['to']}: {e['label']}")

    def do_release(self, args: list[str]) -> None:
        pred = make_filter(args)
        kept = set(self.withheld)
        self.withheld.clear()
        back = [(src, e) for src, e in self.held(pred) if e["id"] in kept]
        self.withheld = kept - {e["id"] for _, e in back}
        for src, e in back:
            self.out(f"  release {src} -> {e['to']}: {e['label']}")

    def do_crash(self, args: list[str]) -> None:
        name = args[0]
        lost = [e["id"] for e in (step.read_index(self.c.run_dir, name) or {}).get("held", [])
                if e["id"] in self.withheld]
        if lost:  # the simulator's network would keep them; here they live in the sender's memory
            self.out(f"    note: {len(lost)} held message(s) of {name} die with it on real processes")
        self._control({"cmd": "kill", "names": [name], "signal": "KILL", "restart": False, "wait": True})
        self.down.add(name)
        # As in the simulator, what was kept back for it is lost with it.
        to_it = [(src, e) for src, e in self._all_held() if e["to"] == name and e["id"] in self.withheld]
        if to_it:
            self.release("drop", to_it, "lost")
            self.withheld -= {e["id"] for _, e in to_it}

    def do_restart(self, args: list[str]) -> None:
        name = args[0]
        self._control({"cmd": "start", "name": name})
        self.down.discard(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            actors = self.actors()
            index = step.read_index(self.c.run_dir, name)
            if name in actors and index is not None and index.get("pid") == actors[name] and index.get("active"):
                self.pids.add(actors[name])
                status = index.get("status", {})
                shown = " ".join(f"{k}={status[k]}" for k in ("state", "promised", "highest_slot", "round",
                                                              "delivered", "epoch") if k in status)
                self.out(f"    {name}: recovered {shown}")
                return
            time.sleep(0.02)
        raise ScenarioError(f"{name} did not come back in step mode within 30s")

    def _control(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = request(self.c, message, timeout_s=30.0)
        except ControlError as exc:
            raise ScenarioError(str(exc)) from None
        if not reply.get("ok"):
            raise ScenarioError(f"{message['cmd']}: {reply.get('error')}")
        return reply

    def do_run(self, args: list[str]) -> None:
        n = int(args[0].split("=")[1]) if args else 100
        c = self.c
        step.set_mode(c.run_dir, None)
        late = stepview.wait_mode(c, False, stepview.ANSWER_S)
        if late:
            raise ScenarioError(f"did not leave step mode: {', '.join(late)}")
        # The cluster runs freely (timers, every message) for K ticks of wall time: `run`'s
        # meaning in the simulator, where K rounds of ticks and deliveries take no time.
        time.sleep(max(RUN_S_MIN, n * c.cluster.tick_ms / 1000))
        step.set_mode(c.run_dir, step.TICKS_PAUSED)
        late = stepview.wait_mode(c, True, stepview.ANSWER_S)
        if late:
            raise ScenarioError(f"did not enter step mode again: {', '.join(late)}")
        for s in self.sessions.values():
            self._drain(s)

    def _poll(self, check: Callable[[], str]) -> None:
        """Until `check` says nothing is wrong (""), bounded; then ScenarioError with what it said."""
        deadline = time.monotonic() + self.expect_s
        while True:
            wrong = check()
            if not wrong:
                self.out("  ok")
                return
            if time.monotonic() >= deadline:
                raise ScenarioError(wrong)
            time.sleep(0.02)

    def do_expect(self, args: list[str]) -> None:
        name = args[0]

        def check() -> str:
            index = step.read_index(self.c.run_dir, name)
            status = index.get("status", {}) if index else {}
            for item in args[1:]:
                key, _, want = item.partition("=")
                got = status.get(key, "None")
                if got != want:
                    return f"expected {name}.{key}={want}, got {got}"
            return ""

        self._poll(check)

    def do_expect_kv(self, args: list[str]) -> None:
        name = args[0]
        s = self._session(READS_SESSION)
        sock = self._socket(s, name)
        wants = [item.partition("=") for item in args[1:]]

        def check() -> str:
            seqs = {}
            commands = []
            for key, _, _ in wants:
                self._reads += 1
                seqs[key] = self._reads
                commands.append([self._reads, "get", key])
            sock.send(codec.encode_frame(s.id, [Read("", codec.encode_client_batch(s.id, 0, commands))]), zmq.NOBLOCK)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not all(q in s.replies for q in seqs.values()):
                sock.poll(50)
                self._drain(s)
            for key, _, want in wants:
                got = s.replies.get(seqs[key])
                if got is None:
                    return f"{name} did not answer a read of {key}"
                value = got.partition(":")[2]
                absent = value == "None"
                if (want == "" and not absent) or (want != "" and value != want):
                    return f"expected {key}={want or '(absent)'} on {name}, got {'None' if absent else repr(value)}"
            return ""

        self._poll(check)

    def do_expect_chosen(self, args: list[str]) -> None:
        slot, want_ballot, want = int(args[0]), ballot(args[1]), " ".join(args[2:])
        c = self.c

        def check() -> str:
            counts: dict[tuple[Ballot, str], int] = {}
            for a in c.acceptors:
                if a.name in self.down:
                    continue
                got = accepted(c.wal_path(a.name)).get(slot)
                if got is not None:
                    text = got[1]
                    for client, session in self.sessions.items():  # the script's names for them
                        text = text.replace(f"{session.id}/", f"{client}/")
                    counts[(got[0], text)] = counts.get((got[0], text), 0) + 1
            if counts.get((want_ballot, want), 0) <= len(c.acceptors) // 2:
                held = {f"{b}={d}": n for (b, d), n in counts.items()}
                return f"slot {slot}: expected {want} chosen under {want_ballot}, acceptors' wals hold {held}"
            return ""

        self._poll(check)

    def do_expect_replies(self, args: list[str]) -> None:
        s = self._session(args[0])

        def check() -> str:
            self._drain(s)
            for item in args[1:]:
                seq_text, _, want = item.partition("=")
                have = s.replies.get(int(seq_text), "none")
                if have != want:
                    return f"expected {args[0]}/{seq_text} to be answered {want}, got {have}"
            return ""

        self._poll(check)


def _zombie_free(pid: int) -> bool:
    """Whether `pid` is still a live process (not a zombie its parent has yet to reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def accepted(path: Path) -> dict[int, tuple[Ballot, str]]:
    """slot -> (ballot, value) an acceptor's wal holds last for it (read-only; the actor may run)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    payloads, _, _ = SCANNER.scan(path, data)
    out: dict[int, tuple[Ballot, str]] = {}
    for payload in payloads[1:]:
        for record in codec.decode_records(payload):
            if isinstance(record, AcceptRecord):
                for s, value in record.entries:
                    out[s] = (record.ballot, describe_value(value))
    return out


def run_scenario(path: Path, root: Path, out: Callable[[str], None], expect_s: float = EXPECT_S,
                 runs: list[ClusterRun] | None = None) -> None:
    """Run one script on real processes under `root`; ScenarioError when an expectation fails,
    Unsupported when it needs what real processes cannot do. `runs` is filled with the clusters
    it started (also when it fails), for their charts."""
    text = path.read_text()
    bad = unsupported(text)
    if bad:
        raise Unsupported(f"{path.stem}: not supported on real processes: {', '.join(bad)}")
    live = Live(root, out, expect_s, runs)
    try:
        live.run(text, str(path))
    finally:
        live.close()


def svg_paths(svg: Path, clusters: int) -> list[Path]:
    """Where each cluster's SVG goes: FILE for the first, FILE's stem with `-clusterN` for the
    N-th of a script with several `cluster` lines (run.svg, run-cluster2.svg, ...)."""
    return [svg if n == 1 else svg.with_name(f"{svg.stem}-cluster{n}{svg.suffix}") for n in range(1, clusters + 1)]


def unwritable(path: Path) -> str:
    """Why an output file cannot be written there ("" when it can), checked before the run
    starts so that a typo costs no run (nothing is created by the check)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return "it is a directory"
    if not parent.is_dir():
        return f"no directory {parent}"
    if path.exists() and not os.access(path, os.W_OK):
        return "permission denied"
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        return f"permission denied in {parent}"
    return ""


def draw_charts(name: str, runs: list[ClusterRun], terminal: bool, svg: Path | None, width: int | None,
                max_rows: int) -> int:
    """Each cluster's message sequence chart, drawn from its trace files with `paxos trace`'s
    code (runtime/tracechart/command.py): on stdout (`terminal`) and as SVG files. 0, or the exit
    code of what went wrong (EXIT_NO_TRACES, EXIT_BAD_TRACES, EXIT_CANT_CREATE), said on stderr."""
    from runtime.tracechart import command, files

    code = 0
    several = len(runs) > 1
    for n, (run, svg_path) in enumerate(zip(runs, svg_paths(svg, len(runs)) if svg else [None] * len(runs),
                                            strict=True), start=1):
        title = f"cluster{n}" + (f" ({run.line})" if run.line else "")
        try:
            config = load(run.config_path)
            roles = {actor: spec.role for actor, spec in config.actors.items()}
            chart, loaded = command.whole_chart(config.data_dir, roles, max_rows, run.clients)
        except files.NoTraces as exc:
            print(f"paxos scenario: no chart of {title}: {exc}", file=sys.stderr)
            code = code or EXIT_NO_TRACES
            continue
        except (files.TraceFileError, OSError, ValueError) as exc:  # ConfigError is a ValueError
            print(f"paxos scenario: no chart of {title}: {exc}", file=sys.stderr)
            code = code or EXIT_BAD_TRACES
            continue
        for warning in loaded.warnings:
            print(f"paxos scenario: note: {warning}", file=sys.stderr)
        if terminal:
            print(f"\nchart of {title}{f' [{n} of {len(runs)}]' if several else ''}: {len(chart.rows)} rows, "
                  f"{len(chart.columns)} columns")
            command.print_chart(chart, times=True, page=False, width=width, color=False)
        if svg_path is not None:
            try:
                command.write_svg(chart, svg_path, f"paxos scenario {name}: {title}")
            except OSError as exc:
                print(f"paxos scenario: cannot write {svg_path}: {exc.strerror or exc}", file=sys.stderr)
                code = code or EXIT_CANT_CREATE
                continue
            print(f"wrote {svg_path}: the chart of {title}, {len(chart.rows)} rows")
    return code


def main(argv: list[str] | None = None) -> int:
    from runtime.tracechart import command

    parser = argparse.ArgumentParser(prog="paxos scenario", description=(
        "Run a scenario script of tests/scenarios on real processes in step mode: every message "
        "between actors is held and the script delivers or drops it; its expectations are checked "
        "on the actors' status, files and replies. Then, passed or failed, draw the message sequence "
        "chart of each cluster it ran from their trace files (as `paxos trace` does): one column per "
        "actor, one arrow per message, a dropped message an arrow ending in a cross, \"(dropped)\"."),
        epilog=("exit codes: 0 every expectation held (and the charts were drawn); 1 one did not; 6 no "
                "scenario of that name; 8 a command not supported on real processes; 64 usage or a bad "
                "script line; 65 a corrupt trace file; 66 no trace files to draw from; 73 the SVG file "
                "cannot be written (checked before the run too); 130 interrupted (its clusters stopped)"))
    parser.add_argument("name", nargs="?", metavar="NAME", help="a scenario (see --list)")
    parser.add_argument("--list", action="store_true", help="the scenarios, and whether real processes run them")
    parser.add_argument("--file", type=Path, metavar="PATH", help="run this script instead of a named one")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the run's clusters live (default: a "
                        "new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (for `paxos trace`)")
    parser.add_argument("--expect-s", type=float, default=EXPECT_S, metavar="S",
                        help="how long an expectation may take to hold (default: %(default)g)")
    parser.add_argument("--no-chart", action="store_true", help="draw no chart on stdout (--svg still writes one)")
    parser.add_argument("--svg", type=Path, metavar="FILE", help="also write the chart as SVG to FILE (a script "
                        "with several clusters: FILE, then FILE-cluster2.svg, ...)")
    parser.add_argument("--width", type=command._typed(command._width), default=None, metavar="COLUMNS",
                        help="fit the chart to this many columns (default: the terminal's, "
                        f"{command.WIDTH_PIPE} when not a terminal)")
    parser.add_argument("--limit", type=command._limit, default=CHART_ROWS, metavar="N",
                        help="draw at most the first N rows of each chart (default: %(default)s)")
    parser.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # `paxos --config X ...`
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own errors exit 2: this command says 64 for usage
        return EXIT_USAGE if exc.code not in (0, None) else 0
    scenarios = available()
    if args.list:
        for name, text in scenarios.items():
            bad = unsupported((SCENARIOS_DIR / f"{name}.scn").read_text())
            where = "real processes and simulator" if not bad else "simulator only (" + ", ".join(
                sorted({b.split(": ")[1] for b in bad})) + ")"
            mark = "*" if name in SEED_SCENARIOS else " "
            print(f"{mark} {name:<40} {where}: {text}")
        print("* the design brief's scenarios (seeds 000-002)")
        return 0
    if args.file is not None:
        if args.name:
            print("paxos scenario: give a NAME or --file PATH, not both", file=sys.stderr)
            return EXIT_USAGE
        try:
            args.file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"paxos scenario: cannot read {args.file}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        args.name = args.file.stem
    elif not args.name:
        parser.print_usage(sys.stderr)
        print("paxos scenario: error: name a scenario (see `paxos scenario --list`)", file=sys.stderr)
        return EXIT_USAGE
    elif args.name not in scenarios:
        print(f"paxos scenario: no scenario named {args.name!r} (known: {', '.join(scenarios)}; "
              f"`paxos scenario --list`)", file=sys.stderr)
        return EXIT_UNKNOWN_SCENARIO
    if not 0 < args.expect_s <= 600:
        print(f"paxos scenario: --expect-s must be in (0, 600], not {args.expect_s:g}", file=sys.stderr)
        return EXIT_USAGE
    if args.svg is not None:
        why = unwritable(args.svg)
        if why:
            print(f"paxos scenario: cannot write {args.svg}: {why}", file=sys.stderr)
            return EXIT_CANT_CREATE
    if args.data_dir is not None and args.data_dir.exists() and (
            not args.data_dir.is_dir() or any(args.data_dir.iterdir())):
        print(f"paxos scenario: {args.data_dir} is not empty (give a new or empty directory)", file=sys.stderr)
        return EXIT_USAGE
    root = args.data_dir or Path(tempfile.mkdtemp(prefix=f"scenario-{args.name}-"))
    root.mkdir(parents=True, exist_ok=True)
    code = 0
    verdict, to = "", sys.stdout
    started = time.monotonic()
    runs: list[ClusterRun] = []
    try:
        run_scenario(args.file or SCENARIOS_DIR / f"{args.name}.scn", root, lambda line: print(line, flush=True),
                     args.expect_s, runs)
        verdict = f"scenario {args.name}: ok on real processes ({time.monotonic() - started:.1f}s)"
    except Unsupported as exc:
        verdict, to, code = f"paxos scenario: {exc}", sys.stderr, EXIT_UNSUPPORTED
    except BadScript as exc:
        verdict, to, code = f"paxos scenario: bad script: {exc}", sys.stderr, EXIT_USAGE
    except ScenarioError as exc:
        verdict, to, code = f"scenario {args.name}: FAILED: {exc}", sys.stderr, EXIT_FAILED
    except (OSError, subprocess.SubprocessError, zmq.ZMQError, step.StepError) as exc:
        verdict, to = f"scenario {args.name}: the run broke off: {type(exc).__name__}: {exc}", sys.stderr
        code = EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C, or the page's stop: its clusters are stopped all the same
        verdict, to, code = f"scenario {args.name}: interrupted", sys.stderr, EXIT_INTERRUPTED
    finally:
        # Passed or failed, the chart shows what the run did (the clusters are stopped by now:
        # their trace files are complete). Nothing ran (a refused script): nothing to draw.
        drawn = 0
        if runs and (not args.no_chart or args.svg is not None):
            sys.stdout.flush()
            drawn = draw_charts(args.name, runs, not args.no_chart, args.svg, args.width, args.limit)
        code = code or drawn  # the scenario's own verdict comes first
        if args.keep or args.data_dir is not None:
            print(f"data: {root} (each cluster's cluster.toml and logs; `paxos trace` draws from them)")
        else:
            shutil.rmtree(root, ignore_errors=True)
        if verdict:  # last, so that it is the line a reader sees under the chart
            sys.stdout.flush()
            print(verdict, file=to)
    return code


if __name__ == "__main__":
    sys.exit(quiet_on_broken_pipe(main))
