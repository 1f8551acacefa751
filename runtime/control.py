"""The supervisor's control socket: a ZeroMQ ROUTER on 127.0.0.1 whose port the supervisor
writes to `<data_dir>/run/supervisor.json`. Requests and replies are msgpack maps:
`{"cmd": "status", "token": T}` -> `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.

The state file is mode 0600 in a 0700 directory and holds a random token that every request
must carry: only the user who started the cluster (or root) can read it, so only they can
command the supervisor, although its port on 127.0.0.1 is open to every local user.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from runtime.config import ClusterConfig


class ControlError(RuntimeError):
    pass


class NotRunning(ControlError):
    pass


def state_file(config: ClusterConfig) -> Path:
    return config.run_dir / "supervisor.json"


def write_state(config: ClusterConfig, state: dict[str, Any]) -> None:
    """Write the state file atomically, readable by its owner only."""
    path = state_file(config)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(state).encode())
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_state(config: ClusterConfig) -> dict[str, Any] | None:
    """The running supervisor's pid and endpoint, or None if it is not running."""
    try:
        state = json.loads(state_file(config).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    except PermissionError:
        raise ControlError(f"{state_file(config)}: not readable by this user; only the user who "
                           f"started the cluster may command it") from None
    pid = state.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return state


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def die_with_parent(sig: int) -> bool:
    """Linux: have the kernel send `sig` to this process when the thread that started it ends
    (PR_SET_PDEATHSIG), a kill -9 of the parent too; False where that cannot be set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1: PR_SET_PDEATHSIG
    except OSError:
        return False
    return True


def kill_message(name: str, signal: str = "KILL", restart: bool = True) -> dict[str, Any]:
    """`paxos kill NAME [--signal S] [--no-restart]` as a control request (the page's kill, pause
    and resume buttons send the same)."""
    return {"cmd": "kill", "name": name, "signal": signal, "restart": restart}


def restart_message(name: str) -> dict[str, Any]:
    """`paxos restart NAME` as a control request."""
    return {"cmd": "restart", "name": name}


def request(config: ClusterConfig, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    state = read_state(config)
    if state is None:
        raise NotRunning(f"the cluster of {config.path} is not running (no supervisor)")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(state["control"])
        sock.send(msgpack.packb({**message, "token": state.get("token", "")}))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControlError(f"the supervisor (pid {state['pid']}) did not answer "
                                   f"{message.get('cmd')!r} within {timeout_s:g}s")
            if sock.poll(int(min(left, 0.2) * 1000)):
                reply = msgpack.unpackb(sock.recv(), raw=False)
                if not isinstance(reply, dict):
                    raise ControlError("malformed reply from the supervisor")
                return reply
            if not pid_alive(state["pid"]):
                raise NotRunning(f"the supervisor (pid {state['pid']}) exited")
    finally:
        sock.close(0)
