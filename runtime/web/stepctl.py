"""The page's scenario runner and step mode by click (issue 15): the routes behind the "step mode"
and "scenarios" panels of runtime/web/static/stepctl.js. `add_routes` adds them to the server's
app, behind its guard (own origin, token, body size) like every other route.

What it owns:

- **the scenario runner**: at most one `paxos scenario NAME --svg FILE --data-dir DIR --no-chart`
  at a time, a child process of the web server (the harness's command, run as its own program:
  the product never imports the harness), in a throw-away directory of its own,
  `<data_dir>/web-scenarios/<run id>/` (its output, charts and clusters' files, kept until the
  next run starts, so `paxos trace` can draw from them as its `data:` line says). It
  is bounded by `SCENARIO_TIMEOUT_S`; stopped (SIGINT, so it kills the clusters it started; then
  SIGKILL, and any supervisor it left is killed by pid) on a timeout, on request, and when the web
  server stops; the kernel sends it SIGINT if the web server dies (PR_SET_PDEATHSIG). Its output
  lines are kept in a bounded buffer (`OUTPUT_LINES_MAX`, each cut at `OUTPUT_LINE_CHARS_MAX`)
  that the page polls with `?since=`; its verdict comes from its exit code (see `paxos scenario
  --help`), its charts (SVG, made by `paxos trace`'s code) are served as images.

  - `GET /api/scenarios` the seed scenarios (`paxos scenario --list`, asked once) and the run;
  - `POST /api/scenarios/<name>/run` start one (202; 404 unknown name, 409 one runs already or
    real processes cannot run it);
  - `GET /api/scenario-run?since=N` the run: state, output lines from number N, verdict, charts;
  - `POST /api/scenario-run/stop` stop it;
  - `GET /api/scenario-run/<id>/chart/<n>` its n-th chart (1: the first cluster's) as SVG.

- **step mode by click**: the requests `paxos step` makes, through runtime/stepview.py and
  runtime/step.py (the product's own code):

  - `GET /api/step` what is held per link (`paxos step --json`'s links) and each actor's core
    state as its step index says, or `{"active": false}` when the cluster is not in step mode;
  - `POST /api/step/<deliver|drop|dup>` `{"ids": [...]}` or `{"link": "FROM:TO"}` (all of a link);
  - `POST /api/step/tick` `{"actors": [...], "n": K}`, `POST /api/step/campaign` `{"actor": P}`;
  - `POST /api/step/release` leave step mode (everything held is sent, timers run).

  An id that is not held (any longer) is 404 with `paxos step`'s reason; not in step mode, or
  not running, 409; a malformed request 400 (or 404 for an unknown actor or operation), with its
  reason in the web log, and nothing is asked of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from runtime import logs, step, stepview
from runtime.config import ClusterConfig
from runtime.control import ControlError, NotRunning, die_with_parent

if TYPE_CHECKING:
    from runtime.web.server import WebServer

RUNS_DIR = "web-scenarios"  # under the data dir: every run's throw-away directory
SCENARIO_TIMEOUT_S = 180.0  # a run that takes longer is stopped (seed002_pick_a_value, three clusters: 11 s here)
SCENARIO_LIST_TIMEOUT_S = 30.0
SCENARIO_STOP_GRACE_S = 3.0  # after SIGINT, how long the run has to kill its clusters before SIGKILL (the
# supervisor gives the web server [supervisor] stop_grace_s, 5 s by default, to stop)
OUTPUT_LINES_MAX = 2000  # the newest lines of a run's output kept for the page (older ones are counted)
OUTPUT_LINE_CHARS_MAX = 400
OUTPUT_READ_BYTES = 64 * 1024
OUTPUT_FILE = "output.txt"  # in the run's directory: what it printed, followed by the server
OUTPUT_POLL_S = 0.1  # the page polls every 0.3 s
SINCE_MAX = 10**12
CHARTS_MAX = 16  # charts served per run (a script with more clusters: the first 16)
CHART_BYTES_MAX = 16 * 1024 * 1024
NAME_RE = re.compile(r"[a-z0-9_]{1,64}")
LIST_RE = re.compile(r"^([* ]) ([a-z0-9_]{1,64})\s+(real processes and simulator|simulator only \(([^)]*)\)): ?(.*)$")
STEP_OPS = ("deliver", "drop", "dup", "tick", "campaign", "release")
STEP_IDS_MAX = 500  # ids in one request (deliver all of a link included)
STEP_TICKS_MAX = 10_000  # ticks in one click (the CLI allows step.TICKS_PER_REQUEST_MAX)
STEP_ID_RE = re.compile(r"([A-Za-z0-9_-]{1,64})\.([0-9]{1,12})")
STEP_LIST_TTL_S = 0.15  # many tabs refreshing together share one listing
STEP_STATUS_KEYS = ("state", "ballot", "promised", "chosen_through", "delivered", "serving")
# The verdict of each exit code of `paxos scenario` (its --help).
EXIT_VERDICTS = {0: "passed", 1: "failed", 6: "no scenario of that name", 8: "not supported on real processes",
                 64: "usage, or a bad script line", 65: "a trace file is corrupt", 66: "no trace files to draw from",
                 73: "the SVG file cannot be written", 130: "interrupted (stopped)"}
# The chart is an image: it may carry presentation attributes, never a script or a load from anywhere.
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def scenario_argv(name: str, run_dir: Path) -> list[str]:
    """The run's command: `paxos scenario NAME`, its chart as SVG in the run's directory, its
    clusters under it, no chart on stdout (the page shows the SVG)."""
    return [sys.executable, "-m", "runtime.cli", "scenario", name, "--svg", str(run_dir / "chart.svg"),
            "--data-dir", str(run_dir / "data"), "--no-chart"]


def listing_argv() -> list[str]:
    """`paxos scenario --list`."""
    return [sys.executable, "-m", "runtime.cli", "scenario", "--list"]


class Busy(Exception):
    """A scenario runs already (one at a time)."""


@dataclass
class ScenarioRun:
    """One run of `paxos scenario` from the page: its output, then its verdict and charts."""

    id: int
    name: str
    dir: Path
    started_ms: int
    started: float = field(default_factory=time.monotonic)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES_MAX))
    line_count: int = 0  # lines seen so far, the dropped ones included: line i is number i
    state: str = "running"  # then "done"
    exit_code: int | None = None
    outcome: str = ""  # passed, failed, timed out, stopped, or what the exit code says
    verdict: str = ""  # the run's own last word (its verdict line), or why it ended
    charts: int = 0
    ended: float | None = None
    stop_reason: str = ""
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    read_offset: int = 0  # bytes of its output file read so far
    pending: bytes = b""  # a line read without its end yet

    def add(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) > OUTPUT_LINE_CHARS_MAX:
            line = line[:OUTPUT_LINE_CHARS_MAX] + " [...]"
        self.lines.append(line)
        self.line_count += 1

    def view(self, since: int = 0) -> dict[str, Any]:
        first = self.line_count - len(self.lines)  # the number of the oldest line kept
        start = min(max(since, first), self.line_count)
        return {
            "id": self.id, "name": self.name, "state": self.state, "started_ms": self.started_ms,
            "elapsed_s": round((self.ended or time.monotonic()) - self.started, 1),
            "lines": list(self.lines)[start - first:], "first": start, "next": self.line_count,
            "dropped": start - since if since < first else 0,
            "exit": self.exit_code, "outcome": self.outcome, "verdict": self.verdict,
            "charts": [f"/api/scenario-run/{self.id}/chart/{n}" for n in range(1, self.charts + 1)],
        }


def drain(run: ScenarioRun, final: bool = False) -> None:
    """Read what the run wrote to its output file since the last call into its line buffer (a
    partial last line waits for its end, unless `final` or it grew too long)."""
    try:
        with open(run.dir / OUTPUT_FILE, "rb") as f:
            f.seek(run.read_offset)
            while chunk := f.read(OUTPUT_READ_BYTES):
                run.read_offset += len(chunk)
                run.pending += chunk
                *whole, run.pending = run.pending.split(b"\n")
                for line in whole:
                    run.add(line)
                if len(run.pending) > OUTPUT_LINE_CHARS_MAX * 4:  # a line without end: cut, as a long one is
                    run.add(run.pending)
                    run.pending = b""
    except OSError:
        pass
    if final and run.pending:
        run.add(run.pending)
        run.pending = b""


def parse_listing(text: str) -> list[dict[str, Any]]:
    """`paxos scenario --list`'s lines as {name, real, seed, about, needs}: `real` when real
    processes run it (the others are the simulator's only, `needs` says for what)."""
    out = []
    for line in text.splitlines():
        m = LIST_RE.match(line)
        if m:
            out.append({"name": m[2], "seed": m[1] == "*", "real": m[3].startswith("real"),
                        "needs": m[4] or "", "about": m[5][:300]})
    return out


def verdict_of(code: int, lines: list[str], name: str) -> tuple[str, str]:
    """(outcome, verdict line) of a run that exited with `code`: the run's own verdict line
    (`scenario NAME: ...` or `paxos scenario: ...`, its last), else what the code means."""
    outcome = EXIT_VERDICTS.get(code, f"exit {code}")
    said = [ln for ln in lines if ln.startswith((f"scenario {name}:", "paxos scenario:"))]
    verdicts = [ln for ln in said if ln.startswith(f"scenario {name}:")]
    return outcome, (verdicts or said or [f"paxos scenario exited {code}: {outcome}"])[-1]


def chart_paths(run_dir: Path) -> list[Path]:
    """The charts a run wrote, in cluster order: chart.svg, chart-cluster2.svg, ... (as
    `paxos scenario --svg` names them), the first CHARTS_MAX."""
    out = []
    for n in range(1, CHARTS_MAX + 1):
        path = run_dir / ("chart.svg" if n == 1 else f"chart-cluster{n}.svg")
        if not path.is_file():
            break
        out.append(path)
    return out


def leftover_supervisors(root: Path) -> list[int]:
    """Pids of supervisors of the run's clusters still alive (`<root>/clusterN/data/run/
    supervisor.json`), each checked to be this run's by its command line."""
    pids = []
    for state in root.glob("cluster*/*/run/supervisor.json"):
        try:
            pid = int(json.loads(state.read_text())["pid"])
            if str(root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return pids


class ScenarioRunner:
    """At most one `paxos scenario` run at a time, its output, verdict and charts."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.run: ScenarioRun | None = None
        self._listing: list[dict[str, Any]] | None = None
        self._listing_lock = asyncio.Lock()
        self._next_id = int(time.time())  # ids differ across restarts of the server (charts' URLs)

    @property
    def config(self) -> ClusterConfig:
        return self.server.config

    @property
    def root(self) -> Path:
        return self.config.data_dir / RUNS_DIR

    async def scenarios(self) -> tuple[list[dict[str, Any]], str]:
        """The scenarios `paxos scenario --list` names (asked once, then kept), or why none."""
        async with self._listing_lock:
            if self._listing is not None:
                return self._listing, ""
            try:
                proc = await asyncio.create_subprocess_exec(
                    *listing_argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE)
                out, err = await asyncio.wait_for(proc.communicate(), SCENARIO_LIST_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                return [], f"`paxos scenario --list` did not answer within {SCENARIO_LIST_TIMEOUT_S:g}s"
            except OSError as exc:
                return [], f"cannot run `paxos scenario --list`: {exc.strerror or exc}"
            if proc.returncode != 0:
                return [], f"`paxos scenario --list` exited {proc.returncode}: {err.decode(errors='replace')[-300:]}"
            self._listing = parse_listing(out.decode(errors="replace"))
            return self._listing, ""

    def start(self, name: str) -> ScenarioRun:
        """Start `paxos scenario NAME` (Busy when one runs); the older runs' directories go."""
        if self.run is not None and self.run.state == "running":
            raise Busy(f"scenario {self.run.name} runs already (started {self.run.view()['elapsed_s']}s ago); "
                       f"one at a time")
        self._next_id += 1
        run = ScenarioRun(self._next_id, name, self.root / str(self._next_id), int(time.time() * 1000))
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        sweep(self.root)
        for old in self.root.iterdir():  # every earlier run: its charts are not served any more
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        run.dir.mkdir(mode=0o700)
        self.run = run
        run.task = asyncio.ensure_future(self._run(run))
        return run

    async def _run(self, run: ScenarioRun) -> None:
        logger = self.server.logger
        argv = scenario_argv(run.name, run.dir)
        logger.info("web_scenario_started", name=run.name, run=run.id, dir=str(run.dir))
        logs.flush()
        try:
            # Its output goes to a file the server follows, not a pipe: a web server that dies must
            # not leave the run writing into a broken pipe (it would break off mid-cleanup).
            with open(run.dir / OUTPUT_FILE, "wb") as out:
                run.proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    cwd=str(run.dir), env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    # The web server killed: the run ends too, its clusters with it (SIGINT runs its cleanup).
                    preexec_fn=lambda: die_with_parent(signal.SIGINT))
        except OSError as exc:
            self._finish(run, None, "failed", f"cannot start paxos scenario: {exc.strerror or exc}")
            return
        except asyncio.CancelledError:
            self._finish(run, None, "stopped", run.stop_reason or "stopped: the web server stops")
            raise
        try:
            await asyncio.wait_for(self._read(run, run.proc), SCENARIO_TIMEOUT_S)
            code = await run.proc.wait()
        except TimeoutError:
            run.stop_reason = run.stop_reason or f"timed out after {SCENARIO_TIMEOUT_S:g}s"
            code = await self._terminate(run, run.proc)
        except asyncio.CancelledError:  # stopped from the page, or the server stops: end it, then say so
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            run.stop_reason = run.stop_reason or "stopped: the web server stops"
            code = await self._terminate(run, run.proc)
        drain(run, final=True)  # what it said while it was stopped too
        if run.stop_reason:
            self._finish(run, code, "timed out" if run.stop_reason.startswith("timed out") else "stopped",
                         run.stop_reason)
        else:
            outcome, said = verdict_of(code, list(run.lines), run.name)
            self._finish(run, code, outcome, said)

    async def _read(self, run: ScenarioRun, proc: asyncio.subprocess.Process) -> None:
        """Follow the run's output file into its line buffer until the run ends."""
        while True:
            ended = proc.returncode is not None
            drain(run)
            if ended:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), OUTPUT_POLL_S)

    async def _terminate(self, run: ScenarioRun, proc: asyncio.subprocess.Process) -> int:
        """SIGINT (the run kills the clusters it started, in its cleanup), SIGKILL after the
        grace; then any supervisor of its clusters still alive, by pid."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(asyncio.shield(proc.wait()), SCENARIO_STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        sweep(self.root)
        return code

    def _finish(self, run: ScenarioRun, code: int | None, outcome: str, verdict: str) -> None:
        run.exit_code, run.outcome, run.verdict = code, outcome, verdict
        run.charts = len(chart_paths(run.dir))
        run.ended = time.monotonic()
        run.state = "done"
        self.server.logger.info("web_scenario_done", name=run.name, run=run.id, exit=code, outcome=outcome,
                                verdict=verdict[:300], charts=run.charts,
                                elapsed_s=round(run.ended - run.started, 2))
        logs.flush()

    async def stop(self, why: str) -> bool:
        """Stop the running scenario (False: none runs) and wait for it to end."""
        run = self.run
        if run is None or run.state != "running" or run.task is None:
            return False
        run.stop_reason = why
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task
        return True


# --- step mode ----------------------------------------------------------------------------------


def step_listing(config: ClusterConfig) -> dict[str, Any]:
    """What the step panel shows: `paxos step --json`'s links and each actor's core state, or
    `{"active": false}` (with why) when the cluster is not in step mode or not running."""
    ticks = step.read_mode(config.run_dir)
    if ticks is None:
        return {"active": False, "why": "the cluster is not in step mode (`paxos up --step`, or `paxos step hold`)"}
    try:
        actors = stepview.running_actors(config)
    except ControlError as exc:  # NotRunning among them
        return {"active": False, "why": str(exc)}
    idx = stepview.indexes(config, actors)
    links = [{"from": s, "to": d, "held": entries} for s, d, entries in stepview.links(config, idx)]
    states = {}
    for name, spec in config.actors.items():
        status = idx.get(name, {}).get("status", {})
        states[name] = {"role": spec.role, "running": name in actors, "holding": bool(idx.get(name, {}).get("active")),
                        **{k: str(status[k]) for k in STEP_STATUS_KEYS if k in status}}
    return {"active": True, "ticks": ticks, "links": links, "held": sum(len(ln["held"]) for ln in links),
            "actors": states}


class StepError(Exception):
    """A step request the page made that cannot be done: its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _no_such(missing: list[str]) -> str:
    # `paxos step`'s words for an id that is gone (exit 5).
    return (f"no held message {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}: it was delivered "
            f"or dropped already, lost with a crash of its sender, or never existed (`paxos step` lists what is held)")


def step_do(config: ClusterConfig, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Do one step request as `paxos step OP ...` does (runtime/stepview.py's functions, the
    actors' answers waited for); StepError with the status and reason when it cannot be done.
    `args` is already validated (`check_step`)."""
    if step.read_mode(config.run_dir) is None:
        raise StepError(409, "the cluster is not in step mode (`paxos up --step`, or `paxos step hold`)")
    try:
        actors = stepview.running_actors(config)
    except NotRunning as exc:
        raise StepError(409, str(exc)) from None
    except ControlError as exc:
        raise StepError(502, str(exc)) from None
    try:
        if op == "release":
            held = sum(len(i.get("held", [])) for i in stepview.indexes(config, actors).values())
            step.set_mode(config.run_dir, None)
            late = stepview.wait_mode(config, False, stepview.ANSWER_S)
            if late:
                raise StepError(504, f"left step mode, but {', '.join(late)} did not say so in time")
            return {"ok": True, "said": f"step mode off: {held} held messages sent; timers run"}
        if op in ("tick", "campaign"):
            names = args["actors"]
            down = [n for n in names if n not in actors]
            if down:
                raise StepError(409, f"not running: {', '.join(down)}")
            n = args.get("n", 1)
            posted = [(a, step.post(config.run_dir, a, {"op": op, "n": n})) for a in names]
            bad = []
            for a, req in posted:
                reply = step.answer(config.run_dir, a, req, stepview.ANSWER_S, alive=stepview._alive_check(actors[a]))
                if not reply.get("ok"):
                    bad.append(f"{a}: {reply.get('error')}")
            if bad:
                raise StepError(409, f"step {op}: " + "; ".join(bad))
            what = f"{n} tick{'s' if n != 1 else ''}" if op == "tick" else "campaign started"
            return {"ok": True, "said": f"step {op}: {what} on {', '.join(names)}"}
        ids = list(args.get("ids", []))
        if "link" in args:
            src, dst = args["link"]
            for s, d, entries in stepview.links(config, stepview.indexes(config, actors)):
                if (s, d) == (src, dst):
                    ids += [e["id"] for e in entries[:STEP_IDS_MAX]]
            if not ids:  # as `paxos step deliver --link`: not an error (it may just have been delivered)
                return {"ok": True, "done": [], "said": f"step {op}: nothing held on {src} -> {dst}"}
        done, missing = stepview.act(config, op, ids, actors)
    except step.StepError as exc:  # an actor did not answer in time
        raise StepError(504, str(exc)) from None
    if missing:
        raise StepError(404, _no_such(missing))
    return {"ok": True, "done": done, "said": f"step {op}: {' '.join(done)}"}


def check_step(config: ClusterConfig, op: str, body: Any) -> dict[str, Any]:
    """The arguments of one step request, validated against the config (names of its actors, ids
    `<actor>.<n>`, counts bounded); StepError(400 or 404) with the reason otherwise."""
    if not isinstance(body, dict):
        raise StepError(400, "expected a JSON object")
    if op in ("deliver", "drop", "dup"):
        if ("ids" in body) == ("link" in body):
            raise StepError(400, f'{op}: expected {{"ids": ["p1.3", ...]}} or {{"link": "FROM:TO"}}')
        if "link" in body:
            link = body["link"]
            src, sep, dst = link.partition(":") if isinstance(link, str) else ("", "", "")
            if not sep or src not in config.actors or dst not in config.actors:
                raise StepError(404, f"link is FROM:TO with two actors of {config.path}, not {str(link)[:80]!r}")
            return {"link": (src, dst)}
        ids = body["ids"]
        if not isinstance(ids, list) or not 1 <= len(ids) <= STEP_IDS_MAX:
            raise StepError(400, f"ids: a list of 1..{STEP_IDS_MAX} step ids (p1.3)")
        for i in ids:
            m = STEP_ID_RE.fullmatch(i) if isinstance(i, str) else None
            if m is None:
                raise StepError(400, f"{str(i)[:80]!r} is not a step id (<actor>.<number>, as listed: p1.3)")
            if m[1] not in config.actors:
                raise StepError(404, _no_such([i]) + f"; no actor named {m[1]!r}")
        return {"ids": list(dict.fromkeys(ids))}
    if op == "tick":
        names, n = body.get("actors"), body.get("n", 1)
        if not isinstance(names, list) or not names or not all(isinstance(a, str) for a in names):
            raise StepError(400, 'tick: expected {"actors": ["p1", ...], "n": K}')
        if type(n) is not int or not 1 <= n <= STEP_TICKS_MAX:
            raise StepError(400, f"tick: n must be a whole number 1..{STEP_TICKS_MAX}, not {str(n)[:40]!r}")
    elif op == "campaign":
        actor = body.get("actor")
        if not isinstance(actor, str):
            raise StepError(400, 'campaign: expected {"actor": "p1"}')
        names, n = [actor], 1
    else:  # release
        return {}
    unknown = [a for a in names if a not in config.actors]
    if unknown:
        raise StepError(404, f"no actor named {', '.join(repr(a[:40]) for a in unknown[:5])} in {config.path}")
    return {"actors": list(dict.fromkeys(names)), "n": n}


# --- the routes ---------------------------------------------------------------------------------


class StepControl:
    """The routes; one per web server."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.runner = ScenarioRunner(server)
        self._listing: tuple[float, dict[str, Any]] | None = None
        self._listing_task: asyncio.Future[dict[str, Any]] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/scenarios", self._scenarios)
        app.router.add_post("/api/scenarios/{name}/run", self._scenario_start)
        app.router.add_get("/api/scenario-run", self._scenario_run)
        app.router.add_post("/api/scenario-run/stop", self._scenario_stop)
        app.router.add_get("/api/scenario-run/{run}/chart/{n}", self._scenario_chart)
        app.router.add_get("/api/step", self._step_list)
        app.router.add_post("/api/step/{op}", self._step)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        await self.runner.stop("stopped: the web server stops")

    # --- scenarios -------------------------------------------------------------------------

    async def _scenarios(self, request: web.Request) -> web.Response:
        listing, error = await self.runner.scenarios()
        run = self.runner.run
        return web.json_response({"scenarios": listing, "error": error,
                                  "run": run.view(run.line_count) if run else None})

    async def _scenario_start(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await request.read()  # any body is ignored, but one over the limit is still refused
        listing, error = await self.runner.scenarios()
        known = {s["name"]: s for s in listing}
        if not NAME_RE.fullmatch(name) or name not in known:
            why = f"no scenario named {name[:64]!r}" + (f" ({error})" if error else " (`paxos scenario --list`)")
            return self.server._refuse(request, 404, why)
        if not known[name]["real"]:
            return self.server._refuse(request, 409, f"scenario {name}: simulator only, not supported on real "
                                                     f"processes ({known[name]['needs']})")
        try:
            run = self.runner.start(name)
        except Busy as exc:
            return self.server._refuse(request, 409, str(exc))
        except OSError as exc:
            return web.json_response({"ok": False, "error": f"cannot make the run's directory: {exc}"}, status=500)
        return web.json_response({"ok": True, "run": run.view()}, status=202)

    async def _scenario_run(self, request: web.Request) -> web.Response:
        raw = request.query.get("since", "0")
        if not raw.isdigit() or int(raw) > SINCE_MAX:
            return self.server._refuse(request, 400, f"since must be a line number 0..{SINCE_MAX}")
        run = self.runner.run
        return web.json_response({"run": run.view(int(raw)) if run else None})

    async def _scenario_stop(self, request: web.Request) -> web.Response:
        await request.read()
        run = self.runner.run
        if not await self.runner.stop("stopped from the page"):
            return self.server._refuse(request, 409, "no scenario runs")
        assert run is not None
        return web.json_response({"ok": True, "run": run.view(run.line_count)})

    async def _scenario_chart(self, request: web.Request) -> web.Response:
        run, raw_id, raw_n = self.runner.run, request.match_info["run"], request.match_info["n"]
        if run is None or raw_id != str(run.id):
            return self.server._refuse(request, 404, f"no scenario run {raw_id[:20]!r} (only the latest is kept)")
        if not raw_n.isdigit() or not 1 <= int(raw_n) <= run.charts:
            return self.server._refuse(request, 404, f"run {run.id} has no chart {raw_n[:20]!r} "
                                                     f"({run.charts} chart{'s' if run.charts != 1 else ''})")
        path = chart_paths(run.dir)[int(raw_n) - 1]
        try:
            if path.stat().st_size > CHART_BYTES_MAX:
                return web.json_response({"error": f"the chart is over {CHART_BYTES_MAX} bytes"}, status=413)
            body = path.read_bytes()
        except OSError as exc:
            return web.json_response({"error": f"the chart is gone: {exc.strerror or exc}"}, status=410)
        return web.Response(body=body, content_type="image/svg+xml", headers={"Content-Security-Policy": CHART_CSP})

    # --- step mode -------------------------------------------------------------------------

    async def _step_list(self, request: web.Request) -> web.Response:
        return web.json_response(await self._shared_listing())

    async def _shared_listing(self) -> dict[str, Any]:
        """One listing at a time, reused for STEP_LIST_TTL_S: 50 tabs cost one status request."""
        now = time.monotonic()
        if self._listing is not None and now - self._listing[0] < STEP_LIST_TTL_S:
            return self._listing[1]
        if self._listing_task is None or self._listing_task.done():
            config = self.server.config

            async def gather() -> dict[str, Any]:
                listing = await asyncio.to_thread(step_listing, config)
                self._listing = (time.monotonic(), listing)
                return listing

            self._listing_task = asyncio.ensure_future(gather())
        return await asyncio.shield(self._listing_task)

    async def _step(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        if op not in STEP_OPS:
            return self.server._refuse(request, 404, f"no step operation {op[:40]!r} (known: {', '.join(STEP_OPS)})")
        body = await request.read()
        try:
            data = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            return self.server._refuse(request, 400, f"malformed JSON: {str(exc)[:100]}")
        config = self.server.config
        try:
            args = check_step(config, op, data)
        except StepError as exc:
            return self.server._refuse(request, exc.status, str(exc))
        try:
            reply = await asyncio.to_thread(step_do, config, op, args)
        except StepError as exc:
            reply = {"ok": False, "error": str(exc)}
            status = exc.status
        else:
            status = 200
        self._listing = None  # the next listing shows what this changed
        self.server.logger.info("web_step", op=op, ok=reply["ok"], ids=" ".join(args.get("ids", []))[:300] or None,
                                link=":".join(args["link"]) if "link" in args else None,
                                actors=" ".join(args.get("actors", [])) or None, error=reply.get("error"),
                                peer=request.remote or "")
        logs.flush()
        self.server.hub.poke.set()
        return web.json_response(reply, status=status)


def sweep(root: Path) -> list[int]:
    """Kill (by pid, checked by command line) the supervisor of any cluster a run left under
    `root` (`<data_dir>/web-scenarios/`): a web server killed while its run was starting a cluster
    leaves it behind. The pids killed."""
    killed = []
    for run_dir in root.glob("*/data") if root.is_dir() else []:
        for pid in leftover_supervisors(run_dir):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # its actors die with it (PR_SET_PDEATHSIG)
                killed.append(pid)
    return killed


def add_routes(app: web.Application, server: WebServer) -> StepControl:
    """Add the scenario runner's and step mode's routes to the page's app (runtime/web/server.py);
    clusters an earlier server's run left behind are killed first."""
    swept = sweep(server.config.data_dir / RUNS_DIR)
    if swept:
        server.logger.warning("web_scenario_swept", pids=" ".join(map(str, swept)),
                              reason="a scenario run of an earlier web server left its cluster running")
    control = StepControl(server)
    control.add_routes(app)
    return control
