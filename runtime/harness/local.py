"""A local cluster in a directory of its own, driven only through the public interface (the
`paxos` command and `runtime.client.Client`), and always cleaned up by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from runtime import keys
from runtime.config import ClusterConfig, load, render


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalCluster:
    def __init__(self, root: Path, proposers: int = 2, acceptors: int = 3, learners: int = 2,
                 extra: str = "") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        names = ([f"p{i}" for i in range(1, proposers + 1)] + [f"a{i}" for i in range(1, acceptors + 1)]
                 + [f"l{i}" for i in range(1, learners + 1)])
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.config_path = self.root / "cluster.toml"
        self.config_path.write_text(render(self.ports, proposers=proposers, acceptors=acceptors,
                                           learners=learners, extra=extra))
        self.data_dir = self.root / "data"
        self.seen_pids: set[int] = set()

    @property
    def config(self) -> ClusterConfig:
        return load(self.config_path)

    def dealer(self, to: str, identity: str, key: str | None = None) -> zmq.Socket:
        """A DEALER to actor `to` that claims `identity`, with the key of actor `key` (an actor
        name), the default client key (`key="client"`), or none (`key=""`): how tests speak to
        an actor as a peer, as a client or as a stranger. The caller closes it."""
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, identity.encode())
        config = self.config
        if key and config.security.curve:
            pair = keys.client_pair(config) if key == "client" else keys.actor_pair(config, key)
            keys.secure_client(sock, pair, keys.server_public(config, to))
        elif key == "" and config.security.curve:
            # A stranger: a key pair of its own that the cluster has never seen.
            public, secret = zmq.curve_keypair()
            keys.secure_client(sock, keys.KeyPair(public, secret), keys.server_public(config, to))
        sock.connect(f"tcp://127.0.0.1:{self.ports[to]}")
        return sock

    def session_id(self, suffix: str) -> str:
        """A client session id the default client key may use."""
        config = self.config
        return f"{keys.client_pair(config).fingerprint}.{suffix}" if config.security.curve else f"{'0' * 12}.{suffix}"

    # --- the paxos command -----------------------------------------------------------------

    def paxos(self, *args: str, timeout_s: float = 60.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "runtime.cli", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, timeout=timeout_s, cwd=self.root)
        if check and proc.returncode != 0:
            raise AssertionError(f"paxos {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
        return proc

    def up(self, wait_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        proc = self.paxos("up", "--detach", "--wait-s", str(wait_s), timeout_s=wait_s + 30)
        self._remember_pids()
        return proc

    def status(self) -> dict[str, Any]:
        proc = self.paxos("status", "--json")
        status = json.loads(proc.stdout)
        for a in status["actors"]:
            if a.get("pid"):
                self.seen_pids.add(a["pid"])
        return status

    def remember_pids(self, status: dict[str, Any]) -> None:
        """Record the pids of a status reply (`paxos status --json`, or the supervisor's control
        `status`): actors a membership change started are stopped by `down` too."""
        for a in status.get("actors", []):
            if a.get("pid"):
                self.seen_pids.add(int(a["pid"]))

    def actor(self, name: str) -> dict[str, Any]:
        return next(a for a in self.status()["actors"] if a["name"] == name)

    def leader(self) -> str | None:
        return self.status()["leader"]

    def supervisor_pid(self) -> int | None:
        try:
            return int(json.loads((self.data_dir / "run" / "supervisor.json").read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _remember_pids(self) -> None:
        pid = self.supervisor_pid()
        if pid:
            self.seen_pids.add(pid)
        try:
            self.status()
        except (json.JSONDecodeError, subprocess.TimeoutExpired):
            pass

    def wait_for(self, what: str, cond: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.05) -> Any:
        """Poll `cond` until it returns something truthy; bounded in time."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            last = cond()
            if last:
                return last
            time.sleep(every_s)
        raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last: {last!r})")

    def down(self) -> None:
        """`paxos down`, then SIGKILL anything this cluster ever started that is still alive."""
        self._remember_pids() if self.supervisor_pid() else None
        try:
            self.paxos("down", timeout_s=60)
        except subprocess.TimeoutExpired:
            pass
        for pid in self.seen_pids:
            if not self.ours(pid):
                continue  # gone, and its number perhaps taken by another process since
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def ours(self, pid: int) -> bool:
        """Whether `pid` is still a process of this cluster (its command line names our config):
        pids are reused, and a stale one must never kill somebody else's process."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.config_path.resolve()).encode() in cmdline

    def wal(self, name: str) -> Path:
        return self.data_dir / "wal" / f"{name}.wal"

    def log_events(self, name: str) -> list[dict[str, Any]]:
        path = self.data_dir / "logs" / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
