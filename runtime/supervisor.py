"""The supervisor: spawns every actor of a cluster as its own process, restarts the ones that
die by their policy, stops them all on `down`, and takes commands on a local control socket.

`python -m runtime.supervisor --config cluster.toml` runs it in the foreground; `paxos up`
runs it in-process or detached. It holds `<data_dir>/run/supervisor.lock` while it runs, so
two supervisors never manage one data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from actors.messages import StatusQuery, StatusReply
from runtime import codec, logs
from runtime.config import ActorSpec, ClusterConfig, ConfigError, load
from runtime.control import state_file
from runtime.supervision import Fail, Restart, RestartPolicy, Stop, describe_exit

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP,
           "CONT": signal.SIGCONT, "INT": signal.SIGINT}


@dataclass
class Child:
    spec: ActorSpec
    policy: RestartPolicy
    proc: asyncio.subprocess.Process | None = None
    state: str = "stopped"  # running | paused | restarting | stopped | failed
    hold: bool = False  # the next exit was asked for: do not restart
    reason: str = ""
    last_exit: int | None = None
    started_at: float = 0.0
    restart_task: asyncio.Task[None] | None = None
    waiter: asyncio.Task[None] | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.state in ("running", "paused") else None


class Supervisor:
    def __init__(self, config: ClusterConfig, console: bool = False) -> None:
        self.config = config
        self.logger = logs.configure("supervisor", "supervisor", config.log_path("supervisor"),
                                     console, "info")
        sup = config.supervisor
        self.children: dict[str, Child] = {
            name: Child(spec, RestartPolicy(sup.restart, sup.restart_max, sup.restart_window_s,
                                            sup.restart_delay_s))
            for name, spec in config.actors.items()
        }
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self._lock_fd = -1
        self._ctx = zmq.Context.instance()
        self._control: zmq.Socket | None = None
        self._queries = 0
        self._down_requested = False
        self._down_replied = asyncio.Event()

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
        control = self._ctx.socket(zmq.ROUTER)
        control.setsockopt(zmq.LINGER, 0)
        port = control.bind_to_random_port("tcp://127.0.0.1")
        self._control = control
        endpoint = f"tcp://127.0.0.1:{port}"
        tmp = state_file(self.config).with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "control": endpoint,
                                   "config": str(self.config.path), "started": time.time()}))
        os.replace(tmp, state_file(self.config))
        self.logger.info("supervisor_started", pid=os.getpid(), control=endpoint,
                         data_dir=str(self.config.data_dir), actors=len(self.children))
        for child in self.children.values():
            await self._spawn(child)
        serve = asyncio.create_task(self._serve_control())
        await self.stopping.wait()
        await self._stop_all()
        if self._down_requested:
            await self._down_replied.wait()  # `paxos down` gets its answer before we go
        serve.cancel()
        try:
            state_file(self.config).unlink()
        except FileNotFoundError:
            pass
        self.logger.info("supervisor_stopped")
        logs.flush()
        self.stopped.set()
        control.close(0)
        return 0

    async def _spawn(self, child: Child) -> None:
        name = child.spec.name
        err_path = self.config.data_dir / "logs" / f"{name}.stderr"
        env = dict(os.environ, PAXOS_SUPERVISOR_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        with open(err_path, "ab") as err:
            err.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            err.flush()
            child.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "runtime.actor", "--config", str(self.config.path),
                "--name", name, "--no-console",
                stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                # Its own session: a Ctrl-C in the terminal reaches only the supervisor, which
                # then stops the actors in order (they die with it anyway: PR_SET_PDEATHSIG).
                start_new_session=True,
            )
        child.state = "running"
        child.hold = False
        child.reason = ""
        child.started_at = time.time()
        child.exited = asyncio.Event()
        child.waiter = asyncio.create_task(self._watch(child, child.proc))
        self.logger.info("child_started", child=name, pid=child.proc.pid, role=child.spec.role)
        logs.flush()

    async def _watch(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if child.proc is not proc:
            return
        child.last_exit = code
        child.exited.set()
        decision = child.policy.on_exit(time.monotonic(), code, child.hold or self.stopping.is_set())
        how = describe_exit(code)
        if isinstance(decision, Restart):
            child.state = "restarting"
            child.reason = how
            self.logger.warning("child_exited", child=child.spec.name, pid=proc.pid, exit=how,
                                action="restart", delay_s=decision.delay_s)
            child.restart_task = asyncio.create_task(self._restart_later(child, decision.delay_s))
        elif isinstance(decision, Fail):
            child.state = "failed"
            child.reason = f"{decision.reason}; last stderr: {self._stderr_tail(child)}"
            self.logger.error("child_failed", child=child.spec.name, pid=proc.pid, exit=how,
                              reason=child.reason)
        elif isinstance(decision, Stop):
            child.state = "stopped"
            child.reason = decision.reason
            self.logger.info("child_exited", child=child.spec.name, pid=proc.pid, exit=how,
                             action="none", reason=decision.reason)
        logs.flush()

    def _stderr_tail(self, child: Child) -> str:
        path = self.config.data_dir / "logs" / f"{child.spec.name}.stderr"
        try:
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except FileNotFoundError:
            return ""
        return lines[-1][:300] if lines else ""

    async def _restart_later(self, child: Child, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if child.state == "restarting" and not self.stopping.is_set():
            await self._spawn(child)
            self.logger.info("child_restarted", child=child.spec.name, pid=child.proc.pid if child.proc else None,
                             restarts=child.policy.total_restarts)
            logs.flush()

    async def _terminate(self, child: Child) -> None:
        """SIGTERM, then SIGKILL after the grace period; returns when the process is gone."""
        if child.restart_task is not None:
            child.restart_task.cancel()
        if child.state == "restarting":
            child.state = "stopped"
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        child.hold = True
        try:
            if child.state == "paused":
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(child.exited.wait(), self.config.supervisor.stop_grace_s)
        except TimeoutError:
            self.logger.warning("child_kill_after_grace", child=child.spec.name, pid=proc.pid,
                                grace_s=self.config.supervisor.stop_grace_s)
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await child.exited.wait()

    async def _stop_all(self) -> None:
        self.logger.info("stopping_all", actors=len(self.children))
        await asyncio.gather(*(self._terminate(c) for c in self.children.values()))

    # --- control ---------------------------------------------------------------------------

    async def _serve_control(self) -> None:
        control = self._control
        assert control is not None
        while not self.stopping.is_set():
            if not control.poll(0):
                await asyncio.sleep(0.01)
                continue
            identity, raw = control.recv_multipart()
            try:
                request = msgpack.unpackb(raw, raw=False)
                if not isinstance(request, dict):
                    raise ValueError("a request is a map")
                reply = await self._handle(request)
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            control.send_multipart([identity, msgpack.packb(reply, default=str)])
            if self._down_requested:
                self._down_replied.set()
                return

    async def _handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return {"ok": True, **(await self.status())}
        if cmd == "down":
            self._down_requested = True
            self.stopping.set()
            await self._stop_all()
            return {"ok": True}
        if cmd in ("faults", "powerloss") and not self.config.testing.enabled:
            return {"ok": False, "error": f"{cmd} needs `[testing] enabled = true` in {self.config.path.name}"}
        if cmd == "faults":
            from runtime.faults import write_rules

            rules = req.get("rules") or {}
            write_rules(self.config.run_dir / "faults.json", rules)
            self.logger.warning("fault_rules_set", rules=rules)
            return {"ok": True}
        if cmd == "powerloss":
            names = req.get("names") or list(self.children)
            unknown = [n for n in names if n not in self.children]
            if unknown:
                return {"ok": False, "error": f"no actor named {', '.join(map(repr, unknown))}"}
            return {"ok": True, "cut": await self._power_loss(names, bool(req.get("tear")))}
        name = req.get("name")
        child = self.children.get(name) if isinstance(name, str) else None
        if cmd in ("kill", "start", "restart") and child is None:
            return {"ok": False, "error": f"no actor named {name!r} (known: {', '.join(self.children)})"}
        assert child is not None or cmd not in ("kill", "start", "restart")
        if cmd == "kill":
            sig = SIGNALS.get(str(req.get("signal", "KILL")).upper())
            if sig is None:
                return {"ok": False, "error": f"unknown signal {req.get('signal')!r} "
                                              f"(use one of {', '.join(SIGNALS)})"}
            return self._kill(child, sig, bool(req.get("restart", True)))
        if cmd == "start":
            if child.state in ("running", "paused", "restarting"):
                return {"ok": False, "error": f"{name} is already {child.state}"}
            child.policy.reset()
            await self._spawn(child)
            return {"ok": True, "pid": child.proc.pid if child.proc else None}
        if cmd == "restart":
            await self._terminate(child)
            child.policy.reset()
            await self._spawn(child)
            return {"ok": True, "pid": child.proc.pid if child.proc else None}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def _power_loss(self, names: list[str], tear: bool) -> dict[str, int]:
        """Test mode: kill -9 these actors at once, cut each wal back to the durable length the
        actor published (what a power failure would leave), optionally tear the tail with
        garbage, and start them again."""
        import random

        from runtime.faults import read_synced, synced_path

        victims = [self.children[n] for n in names if self.children[n].state in ("running", "paused")]
        for child in victims:
            self._kill(child, signal.SIGKILL, restart=False)
        await asyncio.gather(*(c.exited.wait() for c in victims))
        cut: dict[str, int] = {}
        rng = random.Random()
        for child in victims:
            name = child.spec.name
            wal = self.config.wal_path(name)
            try:
                synced = read_synced(synced_path(self.config, name))
                size = wal.stat().st_size
            except (FileNotFoundError, ValueError):
                continue
            if synced < size or tear:
                with open(wal, "r+b") as f:
                    f.truncate(synced)
                    if tear:  # a write that was under way: some of its bytes made it, garbled
                        f.seek(synced)
                        f.write(rng.randbytes(rng.randint(1, 64)))
                    os.fsync(f.fileno())
            cut[name] = size - synced
            self.logger.warning("power_lost", child=name, wal_bytes=size, durable_bytes=synced, cut_bytes=size - synced,
                                torn=tear)
        for child in victims:
            await self._spawn(child)
        logs.flush()
        return cut

    def _kill(self, child: Child, sig: signal.Signals, restart: bool) -> dict[str, Any]:
        proc = child.proc
        if proc is None or child.state not in ("running", "paused"):
            return {"ok": False, "error": f"{child.spec.name} is not running ({child.state})"}
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT) and not restart:
            child.hold = True
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return {"ok": False, "error": f"{child.spec.name} (pid {proc.pid}) is already gone"}
        if sig == signal.SIGSTOP:
            child.state = "paused"
        elif sig == signal.SIGCONT and child.state == "paused":
            child.state = "running"
        self.logger.info("child_signalled", child=child.spec.name, pid=proc.pid, signal=sig.name,
                         restart=restart)
        logs.flush()
        return {"ok": True, "pid": proc.pid, "signal": sig.name}

    async def status(self) -> dict[str, Any]:
        infos = await self._query_actors([c for c in self.children.values() if c.state == "running"])
        actors = []
        leader = None
        leader_ballot = (-1, -1)
        for name, child in self.children.items():
            info = infos.get(name, {})
            entry: dict[str, Any] = {
                "name": name, "role": child.spec.role, "pid": child.pid, "state": child.state,
                "restarts": child.policy.total_restarts, "reason": child.reason,
                "endpoint": child.spec.endpoint, "info": info,
            }
            actors.append(entry)
            if child.spec.role == "proposer" and info.get("state") == "leader" and info.get("serving"):
                r, n = (int(x) for x in str(info.get("ballot", "0.0")).split("."))
                if (r, n) > leader_ballot:
                    leader, leader_ballot = name, (r, n)
        return {"actors": actors, "leader": leader, "data_dir": str(self.config.data_dir)}

    async def _query_actors(self, children: list[Child], timeout_s: float = 0.5) -> dict[str, dict[str, Any]]:
        self._queries += 1
        identity = f"supervisor-{os.getpid()}-{self._queries}"
        frame = codec.encode_frame(identity, [StatusQuery()])
        sockets = {}
        for child in children:
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.ROUTING_ID, identity.encode())
            s.connect(child.spec.endpoint)
            sockets[child.spec.name] = s
        results: dict[str, dict[str, Any]] = {}
        try:
            for s in sockets.values():
                try:
                    s.send(frame)
                except zmq.ZMQError:
                    pass
            deadline = time.monotonic() + timeout_s
            pending = dict(sockets)
            while pending and time.monotonic() < deadline:
                for name, s in list(pending.items()):
                    if s.poll(0):
                        try:
                            _, messages = codec.decode_frame(s.recv())
                        except codec.DecodeError:
                            continue
                        for m in messages:
                            if isinstance(m, StatusReply):
                                results[name] = dict(m.info)
                                pending.pop(name, None)
                if pending:
                    await asyncio.sleep(0.005)
        finally:
            for s in sockets.values():
                s.close(0)
        return results


def run_foreground(config: ClusterConfig, console: bool = False) -> int:
    import uvloop

    sup = Supervisor(config, console=console)
    return uvloop.run(sup.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.supervisor")
    parser.add_argument("--config", default="cluster.toml")
    parser.add_argument("--console", action="store_true", help="also print its own events")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 78
    try:
        return run_foreground(config, console=args.console)
    except RuntimeError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
