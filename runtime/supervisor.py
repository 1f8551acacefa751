"""The supervisor: spawns every actor of a cluster as its own process, restarts the ones that
die by their policy, stops them all on `down`, and takes commands on a local control socket.
Its children, their states and their restart policy are data (`runtime/supervision.py`).

`python -m runtime.supervisor --config cluster.toml` runs it in the foreground; `paxos up`
runs it in-process or detached. It holds `<data_dir>/run/supervisor.lock` while it runs, so
two supervisors never manage one data directory.

A full disk does not stop it: its log drops what it cannot write (runtime/logs.py), a child's
stderr file that cannot be opened or written goes to /dev/null for that run, and a child that
exits for a full disk (exit 75) is failed, not restarted in a loop, with the path and free space
of that disk in its reason and in `status` (`disk_full`, runtime/diskspace.py) until an
operator frees space and starts it. A write it cannot do at startup (its lock or state file)
stops it with that reason.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hmac
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from actors.messages import StatusQuery, StatusReply
from runtime import codec, crashpoints, keys, logs, members, metrics
from runtime.config import ClusterConfig, ConfigError, is_loopback
from runtime.control import state_file, write_state
from runtime.diskspace import DiskFull, full_disk
from runtime.members import load
from runtime.supervision import (
    NO_SPACE,
    NO_SPACE_EXIT,
    ChildRecord,
    ChildSpec,
    ChildState,
    Fail,
    Restart,
    RestartPolicy,
    Stop,
    describe_exit,
    start_order,
)

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP,
           "CONT": signal.SIGCONT, "INT": signal.SIGINT}
STDERR_BANNER = "--- "
METRICS_SCRAPE_S = 3.0  # a scrape waits this long for the loop's answer (actors get 0.5 s of it)
MEMBERS_POLL_S = 0.5  # the line the supervisor writes into a child's stderr file at each start
ARM_TIMEOUT_S = 3.0  # `kill --at`: how long a running actor has to take the request (it looks every 10 ticks)
ARM_POLL_S = 0.02

RUNNING, PAUSED, RESTARTING, STOPPED, FAILED = (ChildState.RUNNING, ChildState.PAUSED, ChildState.RESTARTING,
                                                ChildState.STOPPED, ChildState.FAILED)


def child_spec(config: ClusterConfig, name: str) -> ChildSpec:
    """How to run one actor. A test-mode cluster runs the harness's actor module, which is the
    product's process with test hooks passed in (runtime/harness/actor.py)."""
    sup = config.supervisor
    return ChildSpec(id=name, role=config.actor(name).role, restart=sup.restart, shutdown_s=sup.stop_grace_s,
                     argv=(sys.executable, "-m", config.testing.actor_module, "--config", str(config.path),
                           "--name", name, "--no-console"))


def child_specs(config: ClusterConfig) -> list[ChildSpec]:
    """One spec per actor this machine runs, in start order: every local member of the newest
    membership, and every local member of an older one that has not retired yet (its slots may
    still be open). Members elsewhere are run there."""
    keep = set(local_members(config))
    return start_order([child_spec(config, name) for name in config.actors if name in keep])


def is_local(endpoint: str) -> bool:
    return is_loopback(endpoint.split("//", 1)[-1].rsplit(":", 1)[0])


def local_members(config: ClusterConfig) -> list[str]:
    """The actors this machine's supervisor runs (see child_specs), in config order: cluster.toml's
    and the local ones a change added, less the retired."""
    current = set(config.current().names())
    retired = set(members.retired(config))
    boot = set(config.membership().names())
    return [name for name, spec in config.actors.items()
            if (name in current or name not in retired) and (name in boot or is_local(spec.endpoint))]


@dataclass
class Child:
    record: ChildRecord
    endpoint: str
    proc: asyncio.subprocess.Process | None = None
    hold: bool = False  # the next exit was asked for: do not restart
    last_exit: int | None = None
    started_at: float = 0.0
    restart_task: asyncio.Task[None] | None = None
    waiter: asyncio.Task[None] | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    disk_full: DiskFull | None = None  # failed for a full disk: which one
    banner: bool = False  # this run's stderr starts with our banner (its tail is this run's)
    armed: str = ""  # the crash point this run took (`kill --at`)
    died_at: str = ""  # the crash point its last run ended itself at (exit 72), if it did

    @property
    def spec(self) -> ChildSpec:
        return self.record.spec

    @property
    def state(self) -> ChildState:
        return self.record.state

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.state in (RUNNING, PAUSED) else None


class Supervisor:
    def __init__(self, config: ClusterConfig, console: bool = False, web: bool = False) -> None:
        self.config = config
        self.web = web  # `paxos up --web`: run the page's server (runtime/web/) as a child too
        self._web_proc: asyncio.subprocess.Process | None = None
        self._web_watch: asyncio.Task[None] | None = None
        self.logger = logs.configure("supervisor", "supervisor", config.log_path("supervisor"),
                                     console, "info")
        self.children: dict[str, Child] = {spec.id: self._child(spec) for spec in child_specs(config)}
        self.retired: list[str] = members.retired(config)
        self.delivered_max = 0  # the most advanced learner's watermark, as last asked
        self._members_task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self._lock_fd = -1
        self._ctx = zmq.asyncio.Context()
        self._queries = 0
        self._status_idle: dict[tuple[str, str, bytes], list[tuple[zmq.asyncio.Socket, str]]] = {}  # _status_socket
        self._down_requested = False
        self._down_replied = asyncio.Event()
        self._stop_all_task: asyncio.Task[None] | None = None
        self._token = secrets.token_hex(16)
        self.metrics_url = ""  # where the Prometheus endpoint serves, once it does
        self.metrics_error = ""  # why it does not, when it was asked for
        self._metrics_server: Any = None

    def _child(self, spec: ChildSpec) -> Child:
        sup = self.config.supervisor
        return Child(ChildRecord(spec, RestartPolicy(spec.restart, sup.restart_max, sup.restart_window_s,
                                                     sup.restart_delay_s)), self.config.actor(spec.id).endpoint)

    # --- membership (issue 11: runtime/members.py) -----------------------------------------

    def _adopt_files(self) -> None:
        """At start: the changes the proposers' files hold, if the cache lags them."""
        blob = members.from_files(self.config)
        config, grew = members.merge(self.config, blob)
        if grew:
            self.config = config
            members.write(config, config.known_history(), self.retired)
            self.children = {spec.id: self.children.get(spec.id) or self._child(spec) for spec in child_specs(config)}
        differs = members.disagreement(self.config)
        if differs:
            self.logger.warning("membership_differs_from_config", reason=differs)

    async def adopt(self, blob: bytes) -> list[str]:
        """Changes the log chose (from an actor, or from `paxos members` once its change was
        chosen): cached durably first, then every local member that is new is started. Returns
        the names started."""
        config, grew = members.merge(self.config, blob)
        if not grew:
            return []
        self.config = config
        h = config.known_history()
        members.write(config, h, self.retired)
        self.logger.info("membership_adopted", slot=h.latest_change_slot(), effective_from=h.effective[-1],
                         members=h.latest().describe())
        started = []
        for spec in child_specs(config):
            if spec.id in self.children:
                continue
            child = self.children[spec.id] = self._child(spec)
            if self.config.security.curve:
                try:
                    keys.create_actor(self.config, spec.id)
                    self._server_keys[spec.id] = keys.server_public(self.config, spec.id)
                except (keys.KeyFileError, OSError) as exc:
                    child.record.to(FAILED, f"no key: {exc}")
                    continue
            if not self.stopping.is_set():
                await self._spawn(child)
                started.append(spec.id)
        logs.flush()
        return started

    async def _retire_check(self) -> None:
        """A removed member stops once every slot before the change took effect is delivered
        by a learner (no slot it serves is open); its files stay, and it is not started again."""
        h = self.config.known_history()
        if not h.changes or self.delivered_max < h.effective[-1] - 1:
            return
        current = set(h.latest().names())
        for name, child in list(self.children.items()):
            if name in current or name in self.retired:
                continue
            self.retired.append(name)
            members.write(self.config, h, self.retired)
            self.logger.info("member_retired", child=name, slot=h.latest_change_slot(),
                             delivered=self.delivered_max, reason="removed from the membership; no slot it "
                             "serves is open (its files stay)")
            child.hold = True
            await self._retire(child)

    async def _retire(self, child: Child) -> None:
        await self._terminate(child)
        if child.state is not FAILED:
            if child.state is not STOPPED:
                child.record.to(STOPPED, "")
            child.record.reason = "removed from the membership"
        logs.flush()

    async def _watch_members(self) -> None:
        """Ask the running learners and proposers, twice a second, which changes the log chose."""
        while not self.stopping.is_set():
            await asyncio.sleep(MEMBERS_POLL_S)
            try:
                asked = [c for c in self.children.values() if c.state is RUNNING and c.spec.role != "acceptor"]
                infos = await self._query_actors(asked, digest=False)
                for name, info in infos.items():
                    if self.children[name].spec.role == "learner":
                        self.delivered_max = max(self.delivered_max, int(info.get("delivered") or 0))
                    blob = info.get("history")
                    if isinstance(blob, str) and blob:
                        await self.adopt(blob.encode())
                await self._retire_check()
            except Exception as exc:  # a bad answer must not end the watch
                self.logger.error("membership_watch_error", error=f"{type(exc).__name__}: {exc}")

    # --- lifecycle -------------------------------------------------------------------------

    def _lock(self) -> None:
        run = self.config.run_dir
        run.mkdir(parents=True, exist_ok=True)
        (self.config.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(run / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another supervisor already runs the cluster in {self.config.data_dir}") from None

    async def run(self) -> int:
        self._lock()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self._adopt_files()
        self._keys()
        control = self._ctx.socket(zmq.ROUTER)
        control.setsockopt(zmq.LINGER, 0)
        port = control.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"
        self._start_metrics()
        # Only who can read this 0600 file (the user who started the cluster) may command it.
        write_state(self.config, {"pid": os.getpid(), "control": endpoint, "token": self._token,
                                  "config": str(self.config.path), "started": time.time(),
                                  "metrics": self.metrics_url})
        self.logger.info("supervisor_started", pid=os.getpid(), control=endpoint,
                         data_dir=str(self.config.data_dir), actors=len(self.children),
                         start_order=list(self.children))
        for child in self.children.values():  # acceptors, learners, proposers
            await self._spawn(child)
        serve = asyncio.create_task(self._serve_control(control))
        self._members_task = asyncio.create_task(self._watch_members())
        if self.web:
            await self._start_web()
        await self.stopping.wait()
        self._members_task.cancel()
        await self._stop_web()  # first: the page need not watch everything stop
        await self._stop_all()
        if self._down_requested:
            await self._down_replied.wait()  # `paxos down` gets its answer before we go
        serve.cancel()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()
        try:
            state_file(self.config).unlink()
        except FileNotFoundError:
            pass
        self.logger.info("supervisor_stopped")
        logs.flush()
        self.stopped.set()
        control.close(0)
        return 0

    # --- the page (issue 15: runtime/web/) -------------------------------------------------

    async def _start_web(self) -> None:
        """The page's server, a child of ours: it stops when we do (SIGTERM from `_stop_web`, its
        parent-death signal, and its own check of our pid). Not restarted: a server that cannot
        serve (its port taken) says why in its log and in logs/web.stderr; the cluster runs on."""
        err_path = self.config.data_dir / "logs" / "web.stderr"
        try:
            err = os.open(err_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            err = asyncio.subprocess.DEVNULL
        try:
            self._web_proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "runtime.web.server", "--config", str(self.config.path),
                "--supervisor-pid", str(os.getpid()), stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err,
                start_new_session=True)
        except OSError as exc:
            self.logger.error("web_failed", reason=f"could not start the web server: {exc.strerror or exc}")
            return
        finally:
            if err >= 0:
                os.close(err)
        self.logger.info("web_started", pid=self._web_proc.pid)
        self._web_watch = asyncio.create_task(self._watch_web(self._web_proc))

    async def _watch_web(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if not self.stopping.is_set():
            self.logger.error("web_exited", pid=proc.pid, exit=describe_exit(code),
                              reason="see logs/web.stderr and logs/web.jsonl; `paxos web` runs one by hand")
            logs.flush()

    async def _stop_web(self) -> None:
        proc = self._web_proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), self.config.supervisor.stop_grace_s)
        except ProcessLookupError:
            pass
        except TimeoutError:
            proc.kill()
            await proc.wait()

    # --- metrics (issue 14: runtime/metrics.py) --------------------------------------------

    def _start_metrics(self) -> None:
        """The cluster's Prometheus endpoint, when [metrics] enabled. Its HTTP server runs on a
        thread; a scrape asks the running actors through this loop. A port that cannot be bound is
        logged and said by `paxos up` and `status`: the cluster serves without it."""
        m = self.config.metrics
        if not m.enabled:
            return
        loop = asyncio.get_running_loop()

        def sample() -> list[dict[str, Any]]:
            try:
                return asyncio.run_coroutine_threadsafe(self._metrics_sample(), loop).result(METRICS_SCRAPE_S)
            except Exception as exc:  # the loop is stopping, or busy beyond the deadline: an empty scrape
                error = f"{type(exc).__name__}: {exc}"
                try:  # logged on the loop's thread: the log's buffer is not for two threads at once
                    loop.call_soon_threadsafe(self._scrape_failed, error)
                except RuntimeError:
                    pass  # the loop is closed
                return []

        try:
            self._metrics_server, self.metrics_url = metrics.serve(metrics.ClusterCollector(sample), m.host, m.port)
        except OSError as exc:
            self.metrics_error = f"cannot serve metrics on {m.host}:{m.port}: {exc.strerror or exc}"
            self.logger.error("metrics_unavailable", reason=self.metrics_error)
            return
        if not m.loopback:
            self.logger.warning("metrics_exposed", url=self.metrics_url,
                                reason=f"metrics.host = {m.host!r} in {self.config.path}: anyone who can reach "
                                       f"it may read the metrics (no authentication)")
        self.logger.info("metrics_serving", url=self.metrics_url)

    def _scrape_failed(self, error: str) -> None:
        self.logger.warning("metrics_scrape_failed", error=error)
        logs.flush()

    async def _metrics_sample(self) -> list[dict[str, Any]]:
        infos = await self._query_actors([c for c in self.children.values() if c.state is RUNNING], digest=False)
        return [{"name": name, "role": c.spec.role, "state": c.state.value,
                 "restarts": c.record.policy.total_restarts, "info": infos.get(name, {})}
                for name, c in self.children.items()]

    def _keys(self) -> None:
        """Every actor's and the default client's key, created if missing (`paxos up` on a fresh
        data_dir makes them all), or the insecure mode's warning."""
        self._client_key: keys.KeyPair | None = None
        self._server_keys: dict[str, bytes] = {}
        if not self.config.security.curve:
            self.logger.warning("insecure_transport", reason=f"security.curve = false in {self.config.path}: "
                                "anyone who can reach an actor's port may speak as any actor or client")
            return
        try:
            created = keys.ensure(self.config)
            self._client_key = keys.client_pair(self.config)
            self._server_keys = {name: keys.server_public(self.config, name) for name in self.config.actors}
        except (keys.KeyFileError, OSError) as exc:
            raise RuntimeError(f"cannot set up the cluster's keys: {exc}") from None
        if created:
            self.logger.info("keys_created", keys=created, dir=str(keys.keys_dir(self.config)))

    async def _spawn(self, child: Child) -> None:
        name = child.spec.id
        err_path = self.config.data_dir / "logs" / f"{name}.stderr"
        env = dict(os.environ, PAXOS_SUPERVISOR_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        err = self._open_stderr(child, err_path)
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *child.spec.argv, stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                # Its own session: a Ctrl-C in the terminal reaches only the supervisor, which
                # then stops the actors in order (they die with it anyway: PR_SET_PDEATHSIG).
                start_new_session=True,
            )
        except OSError as exc:
            child.record.to(FAILED, f"could not start: {exc.strerror or exc}")
            self.logger.error("child_failed", child=name, reason=child.record.reason)
            return
        finally:
            if err >= 0:
                os.close(err)
        child.disk_full = None
        child.armed = ""
        crashpoints.withdraw_request(self.config.run_dir, name)  # one the last run never took
        child.record.to(RUNNING)
        child.hold = False
        child.started_at = time.time()
        child.exited = asyncio.Event()
        child.waiter = asyncio.create_task(self._watch(child, child.proc))
        self.logger.info("child_started", child=name, pid=child.proc.pid, role=child.spec.role)
        logs.flush()

    def _open_stderr(self, child: Child, path: os.PathLike[str]) -> int:
        """The child's stderr file, opened for appending, with our banner written; on a full disk
        the banner may be missing (its tail is then not trusted) or, if the file cannot be
        opened at all, the child writes to /dev/null this run (its exit code still speaks)."""
        child.banner = False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            self.logger.warning("child_stderr_lost", child=child.spec.id, path=str(path), error=exc.strerror)
            return asyncio.subprocess.DEVNULL
        banner = f"{STDERR_BANNER}{time.strftime('%Y-%m-%d %H:%M:%S')} starting {child.spec.id}\n".encode()
        try:
            child.banner = os.write(fd, banner) == len(banner)
        except OSError as exc:
            self.logger.warning("child_stderr_banner_lost", child=child.spec.id, path=str(path), error=exc.strerror)
        return fd

    async def _watch(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if child.proc is not proc:
            return
        child.last_exit = code
        child.exited.set()
        try:
            self._decide(child, proc, code)
        except Exception as exc:  # never leave a child in a state nothing will move it out of
            self.logger.error("supervisor_error", child=child.spec.id, error=f"{type(exc).__name__}: {exc}")
            if child.state is not FAILED:
                child.record.to(FAILED, f"exited ({describe_exit(code)}); the supervisor failed to decide: {exc}")
        logs.flush()

    def _decide(self, child: Child, proc: asyncio.subprocess.Process, code: int) -> None:
        decision = child.record.policy.on_exit(time.monotonic(), code, child.hold or self.stopping.is_set())
        how = describe_exit(code)
        name = child.spec.id
        # Where its last run ended itself, if it did: a later exit of another kind clears it.
        child.died_at = (child.armed or "?") if code == crashpoints.EXIT_CRASH_POINT else ""
        at = {"crash_point": child.died_at} if child.died_at else {}
        if isinstance(decision, Fail) and code == NO_SPACE_EXIT:
            tail = self._stderr_tail(child) if child.banner else ""
            child.disk_full = full_disk(self.config, name, tail)
            where = child.disk_full.describe() if child.disk_full else "(its disks could not be examined)"
            child.record.to(FAILED, f"{NO_SPACE}: {where}; free space there, then `paxos start {name}`")
            self.logger.error("child_failed", child=name, pid=proc.pid, exit=how, reason=child.record.reason,
                              disk_full=child.disk_full.as_dict() if child.disk_full else None)
        elif isinstance(decision, Restart):
            child.record.to(RESTARTING, how)
            self.logger.warning("child_exited", child=name, pid=proc.pid, exit=how, action="restart",
                                delay_s=decision.delay_s, **at)
            child.restart_task = asyncio.create_task(self._restart_later(child, decision.delay_s))
        elif isinstance(decision, Fail):
            child.record.to(FAILED, f"{decision.reason}; last stderr: {self._stderr_tail(child)}")
            self.logger.error("child_failed", child=name, pid=proc.pid, exit=how, reason=child.record.reason)
        elif isinstance(decision, Stop):
            child.record.to(STOPPED, decision.reason)
            self.logger.info("child_exited", child=name, pid=proc.pid, exit=how, action="none",
                             reason=decision.reason, **at)

    def _stderr_tail(self, child: Child) -> str:
        """The last line the child itself printed in its latest run (not our start banner)."""
        path = self.config.data_dir / "logs" / f"{child.spec.id}.stderr"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            if line.startswith(STDERR_BANNER):
                return "(nothing)"
            if line.strip():
                return line[:300]
        return "(nothing)"

    async def _restart_later(self, child: Child, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if child.state is RESTARTING and not self.stopping.is_set():
            await self._spawn(child)
            self.logger.info("child_restarted", child=child.spec.id, pid=child.proc.pid if child.proc else None,
                             restarts=child.record.policy.total_restarts)
            logs.flush()

    async def _terminate(self, child: Child) -> None:
        """SIGTERM, then SIGKILL after the grace period; returns when the process is gone."""
        if child.restart_task is not None:
            child.restart_task.cancel()
        if child.state is RESTARTING:
            child.record.to(STOPPED, "stopped on request")
        proc = child.proc
        if proc is None or proc.returncode is not None or child.state not in (RUNNING, PAUSED):
            return
        child.hold = True
        try:
            if child.state is PAUSED:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(child.exited.wait(), child.spec.shutdown_s)
        except TimeoutError:
            self.logger.warning("child_kill_after_grace", child=child.spec.id, pid=proc.pid,
                                grace_s=child.spec.shutdown_s)
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await child.exited.wait()

    async def _stop_all(self) -> None:
        """In reverse start order, one at a time: proposers first, so no leader is left writing
        to acceptors that are already gone; acceptors last. `down` and `run` (woken by `down`
        setting `stopping`) both call it: the first call stops them, the other waits for it."""
        if self._stop_all_task is None:
            self._stop_all_task = asyncio.create_task(self._stop_in_order())
        await asyncio.shield(self._stop_all_task)

    async def _stop_in_order(self) -> None:
        self.logger.info("stopping_all", actors=len(self.children), stop_order=list(reversed(self.children)))
        for child in reversed(list(self.children.values())):
            await self._terminate(child)

    # --- control ---------------------------------------------------------------------------

    async def _serve_control(self, control: zmq.asyncio.Socket) -> None:
        while True:  # until cancelled at shutdown, or after answering `down`
            identity, raw = await control.recv_multipart()
            try:
                request = msgpack.unpackb(raw, raw=False)
                if not isinstance(request, dict):
                    raise ValueError("a request is a map")
                reply = await self._handle(request)
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            await control.send_multipart([identity, msgpack.packb(reply, default=str)])
            if self._down_requested:
                self._down_replied.set()
                return

    async def _handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        token = req.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token, self._token):
            self.logger.warning("control_refused", cmd=str(cmd)[:32],
                                reason="no valid token (it is in run/supervisor.json, mode 0600)")
            logs.flush()
            return {"ok": False, "error": "not authorized: the token of run/supervisor.json is needed"}
        if cmd == "status":
            # `"digest": false`: no learner hashes its store for this one (the page, the watch).
            return {"ok": True, **(await self.status(digest=req.get("digest") is not False))}
        if cmd == "members":
            blob = req.get("changes")
            started = await self.adopt(blob.encode()) if isinstance(blob, str) and blob else []
            # The membership watch (twice a second) may have adopted this change first and started
            # its new members already: they are still the ones this change started.
            h = self.config.known_history()
            if h.changes:
                before = h.changes[-2][1] if len(h.changes) > 1 else h.bootstrap
                brought = set(h.latest().names()) - set(before.names())
                started = sorted(set(started) | {n for n in brought if n in self.children
                                                 and self.children[n].pid is not None})
            return {"ok": True, "started": {n: self.children[n].pid for n in started},
                    "changes": self.config.changes.decode(), "retired": self.retired}
        if cmd == "down":
            self._down_requested = True
            self.stopping.set()
            await self._stop_all()
            return {"ok": True}
        if cmd not in ("kill", "start", "restart", "wipe"):
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        if cmd == "kill" and isinstance(req.get("names"), list):
            return await self._kill_many(req)
        name = req.get("name")
        child = self.children.get(name) if isinstance(name, str) else None
        if child is None:
            return {"ok": False, "error": f"no actor named {name!r} (known: {', '.join(self.children)})"}
        if cmd != "kill" and name in self.retired:
            return {"ok": False, "error": f"{name} was removed from the membership and stopped; it is not run "
                                          f"again (`paxos members add` it under a new name to have it back)"}
        if cmd == "kill" and req.get("at") is not None:
            return await self._arm(child, req["at"], bool(req.get("restart", True)))
        if cmd == "kill":
            sig = SIGNALS.get(str(req.get("signal", "KILL")).upper())
            if sig is None:
                return {"ok": False, "error": f"unknown signal {req.get('signal')!r} "
                                              f"(use one of {', '.join(SIGNALS)})"}
            reply = self._kill(child, sig, bool(req.get("restart", True)))
            if reply["ok"] and req.get("wait") and sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                await child.exited.wait()  # the caller wants it gone (a power-loss test)
            return reply
        if cmd == "start":
            if child.state in (RUNNING, PAUSED, RESTARTING):
                return {"ok": False, "error": f"{name} is already {child.state.value}"}
            child.record.policy.reset()
            await self._spawn(child)
            return {"ok": child.state is RUNNING, "pid": child.pid, "error": child.record.reason}
        await self._terminate(child)  # restart, or wipe
        removed = self._wipe_files(child.spec.id) if cmd == "wipe" else []
        child.record.policy.reset()
        await self._spawn(child)
        return {"ok": child.state is RUNNING, "pid": child.pid, "error": child.record.reason,
                **({"removed": removed} if cmd == "wipe" else {})}

    def _wipe_files(self, name: str) -> list[str]:
        """`paxos wipe`: the actor's wal and snapshots go; its marker stays, so an acceptor or a
        proposer comes back rebuilding (it may have voted or proposed), never as a fresh one."""
        removed = []
        wal = self.config.wal_path(name)
        doomed = [p for p in wal.parent.glob(f"{wal.name}*") if not p.name.endswith(".lock")]
        snap = self.config.snapshot_dir(name)
        doomed += sorted(snap.glob("*")) if snap.exists() else []
        for path in doomed:
            try:
                path.unlink()
                removed.append(str(path))
            except FileNotFoundError:
                pass
        self.logger.warning("child_wiped", child=name, files=len(removed))
        logs.flush()
        return removed

    async def _kill_many(self, req: dict[str, Any]) -> dict[str, Any]:
        """`kill` with `names`: signal them all at once (a power failure hits every machine in
        the same instant), then, with `wait`, answer once all are gone."""
        names = req["names"]
        unknown = [n for n in names if n not in self.children]
        sig = SIGNALS.get(str(req.get("signal", "KILL")).upper())
        if unknown or sig is None:
            return {"ok": False, "error": f"no actor named {', '.join(map(repr, unknown))}" if unknown
                    else f"unknown signal {req.get('signal')!r} (use one of {', '.join(SIGNALS)})"}
        replies = {n: self._kill(self.children[n], sig, bool(req.get("restart", True))) for n in names}
        killed = [self.children[n] for n, r in replies.items() if r["ok"]]
        if req.get("wait") and sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            await asyncio.gather(*(c.exited.wait() for c in killed))
        return {"ok": True, "killed": [c.spec.id for c in killed],
                "errors": {n: r["error"] for n, r in replies.items() if not r["ok"]}}

    async def _arm(self, child: Child, point: Any, restart: bool) -> dict[str, Any]:
        """`kill --at POINT`: hand the actor its crash point (runtime/crashpoints.py) and answer
        once it took it (it looks every ten ticks), within `ARM_TIMEOUT_S`."""
        name = child.spec.id
        try:
            crashpoints.check(str(point), child.spec.role)
        except crashpoints.CrashPointError as exc:
            return {"ok": False, "error": f"{name}: {exc}", "bad_point": True}
        proc = child.proc
        if proc is None or child.state is not RUNNING:
            return {"ok": False, "error": f"{name} is not running ({child.state.value}); it takes a crash point "
                                          f"only while it runs" + (" (`paxos kill NAME --signal CONT` first)"
                                                                   if child.state is PAUSED else "")}
        run_dir = self.config.run_dir
        # Noted before it is written: the actor may take it and reach its point before we look
        # again, and its exit must then be told (and, with --no-restart, held) as this one.
        held_before = child.hold
        child.armed = str(point)
        child.hold = held_before or not restart
        path = crashpoints.write_request(run_dir, name, str(point))
        deadline = time.monotonic() + ARM_TIMEOUT_S
        while path.exists() and not child.exited.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(ARM_POLL_S)
        if crashpoints.withdraw_request(run_dir, name):  # still there: it never took it
            if child.proc is proc:
                child.armed, child.hold = "", held_before
            why = "it exited meanwhile" if child.exited.is_set() else f"within {ARM_TIMEOUT_S:g}s"
            return {"ok": False, "error": f"{name} (pid {proc.pid}) did not take the crash point {point} ({why})"}
        self.logger.info("crash_point_requested", child=name, pid=proc.pid, point=str(point), restart=restart)
        logs.flush()
        return {"ok": True, "pid": proc.pid, "armed": str(point)}

    def _kill(self, child: Child, sig: signal.Signals, restart: bool) -> dict[str, Any]:
        proc = child.proc
        name = child.spec.id
        if proc is None or child.state not in (RUNNING, PAUSED):
            return {"ok": False, "error": f"{name} is not running ({child.state.value})"}
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT) and not restart:
            child.hold = True
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return {"ok": False, "error": f"{name} (pid {proc.pid}) is already gone"}
        if sig == signal.SIGSTOP and child.state is RUNNING:
            child.record.to(PAUSED, "SIGSTOP")
        elif sig == signal.SIGCONT and child.state is PAUSED:
            child.record.to(RUNNING)
        self.logger.info("child_signalled", child=name, pid=proc.pid, signal=sig.name, restart=restart)
        logs.flush()
        return {"ok": True, "pid": proc.pid, "signal": sig.name}

    async def status(self, digest: bool = True) -> dict[str, Any]:
        infos = await self._query_actors([c for c in self.children.values() if c.state is RUNNING], digest=digest)
        actors: list[dict[str, Any]] = []
        leader = None
        leader_ballot = (-1, -1)
        joining, leaving = members.joining_leaving(self.config)
        h = self.config.known_history()
        settled = not h.changes or self.delivered_max >= h.effective[-1] - 1
        for name in self.config.actors:  # config order, as people wrote it
            child = self.children.get(name)
            if child is None:
                if name in h.latest().names():  # a member that runs on another machine
                    actors.append({"name": name, "role": self.config.actor(name).role, "pid": None,
                                   "state": "elsewhere", "restarts": 0, "reason": "not run by this supervisor",
                                   "endpoint": self.config.actor(name).endpoint, "info": {}, "disk_full": None,
                                   "member": "joining" if name in joining and not settled else ""})
                continue  # or one retired before this supervisor started
            info = infos.get(name, {})
            member = ("removed" if name in self.retired else "leaving" if name in leaving
                      else "joining" if name in joining and not settled else "")
            actors.append({
                "name": name, "role": child.spec.role, "pid": child.pid, "state": child.state.value,
                "member": member,
                "restarts": child.record.policy.total_restarts, "reason": child.record.reason,
                "endpoint": child.endpoint, "info": info,
                "last_exit": describe_exit(child.last_exit) if child.last_exit is not None else None,
                "crash_point": child.died_at or None,
                "crash_armed": child.armed or None,  # `kill --at` taken by this run, not reached yet
                "disk_full": child.disk_full.as_dict() if child.disk_full and child.state is FAILED else None,
            })
            if child.spec.role == "proposer" and info.get("state") == "leader" and info.get("serving"):
                r, n = (int(x) for x in str(info.get("ballot", "0.0")).split("."))
                if (r, n) > leader_ballot:
                    leader, leader_ballot = name, (r, n)
        return {"actors": actors, "leader": leader, "data_dir": str(self.config.data_dir),
                "membership_slot": h.latest_change_slot(),
                "membership_differs": members.disagreement(self.config) or "",
                "metrics": self.metrics_url, "metrics_error": self.metrics_error}

    async def _query_actors(self, children: list[Child], timeout_s: float = 0.5,
                            digest: bool = True) -> dict[str, dict[str, Any]]:
        """Each child's StatusReply info; `digest`: learners include their store's hash (costly)."""
        self._queries += 1

        async def ask(child: Child) -> tuple[str, dict[str, Any] | None]:
            s, identity = pooled = self._status_socket(child)
            try:
                await s.send(codec.encode_frame(identity, [StatusQuery(digest=digest)]))
                while True:
                    try:
                        _, messages = codec.decode_frame(await s.recv())
                    except codec.DecodeError:
                        continue
                    for m in messages:
                        if isinstance(m, StatusReply):
                            self._status_idle.setdefault(self._status_key(child), []).append(pooled)
                            return child.spec.id, dict(m.info)
            except BaseException:
                s.close(0)  # unanswered or cancelled: its late reply must never answer a later query
                raise

        results: dict[str, dict[str, Any]] = {}
        tasks = [asyncio.create_task(ask(c)) for c in children]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is None:
                    name, info = task.result()
                    if info is not None:
                        results[name] = info
        return results

    def _status_key(self, child: Child) -> tuple[str, str, bytes]:
        return child.spec.id, child.endpoint, self._server_keys.get(child.spec.id, b"")

    def _status_socket(self, child: Child) -> tuple[zmq.asyncio.Socket, str]:
        """An idle socket that answered this actor before, or a new one. A status every 0.2 s
        (the live page) on a new socket each time cost a CurveZMQ handshake with every actor:
        the supervisor spent 10 ms of CPU per status, the actors more. A socket is kept only
        after it got its answer, one query at a time; a new endpoint or key starts afresh."""
        key = self._status_key(child)
        for stale in [k for k in self._status_idle if k[0] == key[0] and k != key]:
            for old, _ in self._status_idle.pop(stale):
                old.close(0)
        idle = self._status_idle.get(key)
        if idle:
            return idle.pop()
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        # The operator's default client key, a session of its own per socket (a ROUTER refuses a
        # second connection with an identity it still has).
        identity = keys.new_session_id(self._client_key)
        s.setsockopt(zmq.ROUTING_ID, identity.encode())
        if self._client_key is not None:
            keys.secure_client(s, self._client_key, self._server_keys[child.spec.id])
        s.connect(child.endpoint)
        return s, identity


def run_foreground(config: ClusterConfig, console: bool = False, web: bool = False) -> int:
    import uvloop

    sup = Supervisor(config, console=console, web=web)
    return uvloop.run(sup.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.supervisor")
    parser.add_argument("--config", default="cluster.toml")
    parser.add_argument("--console", action="store_true", help="also print its own events")
    parser.add_argument("--web", action="store_true", help="also serve the live page (runtime/web/)")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 78
    try:
        return run_foreground(config, console=args.console, web=args.web)
    except RuntimeError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # its lock or state file at startup (a full disk, say)
        print(f"supervisor: cannot start: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
