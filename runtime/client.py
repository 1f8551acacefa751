"""The Python client: `async with Client("cluster.toml") as kv: await kv.put("k", "v")`.

It finds the leader itself (proposers answer `Redirect` with their best guess), batches
everything its callers submit in one turn of the event loop into one Submit, and gets results
from the learners. A retry reuses the command's `(client_id, seq)`, so the state machine applies
it once whatever the number of retries. When the deadline passes without a result it raises
`OutcomeUnknown` (a `TimeoutError`): the command may or may not have taken effect. It never
reports an unknown outcome as a failure; `CommandFailed` means the state machine refused it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from actors.messages import Hello, Redirect, Reply, Submit
from runtime import codec
from runtime.config import ClusterConfig, load


class OutcomeUnknown(TimeoutError):
    """The deadline passed without an answer: the command may or may not have been applied."""


class CommandFailed(Exception):
    """The state machine refused the command (definite: it changed nothing)."""


class ClusterUnavailable(ConnectionError):
    """No learner answered, so no result could ever reach this client; nothing was sent."""


@dataclass(slots=True)
class _Op:
    seq: int
    command: list[Any]
    future: asyncio.Future[Any]
    deadline: float
    size: int  # an estimate of its encoded bytes
    due: float = 0.0
    tries: int = 0


class Client:
    def __init__(self, config: str | Path | ClusterConfig = "cluster.toml", timeout_s: float | None = None,
                 client_id: str | None = None, retry_s: float | None = None) -> None:
        self.config = config if isinstance(config, ClusterConfig) else load(config)
        self.timeout_s = timeout_s if timeout_s is not None else self.config.client.timeout_s
        self.retry_s = retry_s if retry_s is not None else self.config.client.retry_s
        self.client_id = client_id or secrets.token_hex(8)
        self.proposers = [p.name for p in self.config.proposers]
        self.target = 0  # index of the proposer we believe leads
        self._ctx = zmq.Context.instance()
        self._sockets: dict[str, zmq.Socket] = {}
        self._ops: dict[int, _Op] = {}  # by seq, in creation order (so the first is the oldest)
        self._to_send: list[_Op] = []
        self._next_seq = 1
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._learners_ready: set[str] = set()
        self._reply_by = ""  # the learner we ask to answer: the last one that did
        # Spread clients over learners: each prefers one by its id.
        learners = [lr.name for lr in self.config.learners]
        self._preferred_learner = learners[int(self.client_id, 16) % len(learners)]
        self._ready: asyncio.Event | None = None
        self._last_reply = 0.0
        self._last_rotate = 0.0
        self._hold_until = 0.0  # after "busy" or "no leader": wait before sending again
        self._closed = False
        self.stats = {"sent": 0, "resent": 0, "redirects": 0, "busy": 0, "rotations": 0}

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        for spec in (*self.config.proposers, *self.config.learners):
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.IMMEDIATE, 1)
            s.setsockopt(zmq.ROUTING_ID, self.client_id.encode())
            s.setsockopt(zmq.RECONNECT_IVL, 20)
            s.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
            s.setsockopt(zmq.SNDHWM, 100_000)
            s.connect(spec.endpoint)
            self._sockets[spec.name] = s
            self._loop.add_reader(s.getsockopt(zmq.FD), self._drain, spec.name)
        self._timer = self._loop.call_later(0.0, self._on_timer)
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=self.timeout_s)
        except TimeoutError:
            await self.close()
            raise ClusterUnavailable(
                f"no learner of {self.config.path} answered within {self.timeout_s:g}s "
                f"({', '.join(lr.name for lr in self.config.learners)}); is the cluster up?") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for op in self._ops.values():
            if not op.future.done():
                op.future.set_exception(OutcomeUnknown("client closed before an answer arrived"))
        self._ops.clear()
        for s in self._sockets.values():
            if self._loop is not None:
                try:
                    self._loop.remove_reader(s.getsockopt(zmq.FD))
                except Exception:
                    pass
            s.close(0)
        self._sockets.clear()

    # --- operations ------------------------------------------------------------------------

    async def put(self, key: str, value: str) -> None:
        self._check_value(value)
        await self._call(["put", self._check_key(key), value])

    async def get(self, key: str) -> str | None:
        result: str | None = await self._call(["get", self._check_key(key)])
        return result

    async def cas(self, key: str, old: str | None, new: str) -> bool:
        if old is not None:
            self._check_value(old)
        self._check_value(new)
        return bool(await self._call(["cas", self._check_key(key), old, new]))

    async def append(self, key: str, value: str) -> str:
        self._check_value(value)
        result: str = await self._call(["append", self._check_key(key), value])
        return result

    async def delete(self, key: str) -> None:
        await self._call(["delete", self._check_key(key)])

    def _check_key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        if len(key.encode("utf-8", "surrogatepass")) > self.config.limits.key_bytes_max:
            raise ValueError(f"key larger than {self.config.limits.key_bytes_max} bytes")
        return key

    def _check_value(self, value: str) -> None:
        if not isinstance(value, str):
            raise ValueError("value must be a string")
        if len(value.encode("utf-8", "surrogatepass")) > self.config.limits.value_bytes_max:
            raise ValueError(f"value larger than {self.config.limits.value_bytes_max} bytes")

    async def _call(self, command: list[Any]) -> Any:
        if self._closed or self._loop is None:
            raise RuntimeError("client is not connected (use `async with Client(...)`)")
        if len(self._ops) >= self.config.client.outstanding_max:
            raise RuntimeError(f"more than {self.config.client.outstanding_max} operations outstanding")
        seq = self._next_seq
        self._next_seq += 1
        now = time.monotonic()
        size = 32 + sum(len(x) for x in command if type(x) is str)
        op = _Op(seq, [seq, *command], self._loop.create_future(), now + self.timeout_s, size)
        self._ops[seq] = op
        self._to_send.append(op)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        try:
            return await op.future
        finally:
            self._ops.pop(seq, None)

    # --- sending ---------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed or not self._to_send:
            return
        now = time.monotonic()
        if now < self._hold_until:
            return  # the timer sends them when the hold ends
        ops = [op for op in self._to_send if not op.future.done()]
        self._to_send = []
        if not ops:
            return
        acked_below = next(iter(self._ops), self._next_seq)
        # One learner answers a first attempt; a retry asks every learner (the one we named may
        # be down).
        reply_by = "" if any(op.tries for op in ops) else self._reply_by
        limit = self.config.protocol.batch_bytes_max - 1024
        blobs: list[bytes] = []
        commands: list[list[Any]] = []
        size = 0
        first_due = now + self.retry_s
        for op in ops:
            op.tries += 1
            # Resend with backoff, per operation: 1x, 2x, 4x ... the retry interval, at most 2 s.
            op.due = first_due if op.tries == 1 else now + min(self.retry_s * (1 << min(op.tries - 1, 6)), 2.0)
            cost = op.size
            if commands and size + cost > limit:
                blobs.append(codec.encode_client_batch(self.client_id, acked_below, commands, reply_by))
                commands, size = [], 0
            commands.append(op.command)
            size += cost
        blobs.append(codec.encode_client_batch(self.client_id, acked_below, commands, reply_by))
        target = self.proposers[self.target]
        frame = codec.encode_frame(self.client_id, [Submit(b) for b in blobs])
        try:
            self._sockets[target].send(frame, zmq.NOBLOCK)
            self.stats["sent"] += len(ops)
        except zmq.Again:
            # Not connected (IMMEDIATE) or queue full: try the next proposer soon.
            self._rotate(now)
            self._to_send.extend(ops)
            self._hold(now, 0.02)
        self._poke_sockets()

    def _resend(self, ops: list[_Op]) -> None:
        self.stats["resent"] += len(ops)
        self._to_send.extend(ops)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _rotate(self, now: float) -> None:
        if now - self._last_rotate < 0.01:
            return
        self._last_rotate = now
        self.target = (self.target + 1) % len(self.proposers)
        self.stats["rotations"] += 1

    def _hold(self, now: float, seconds: float) -> None:
        self._hold_until = max(self._hold_until, now + seconds)

    def _on_timer(self) -> None:
        if self._closed or self._loop is None:
            return
        now = time.monotonic()
        self._timer = self._loop.call_later(min(self.retry_s / 3, 0.05), self._on_timer)
        if len(self._learners_ready) < len(self.config.learners):
            hello = codec.encode_frame(self.client_id, [Hello()])
            for lr in self.config.learners:
                if lr.name not in self._learners_ready:
                    try:
                        self._sockets[lr.name].send(hello, zmq.NOBLOCK)
                    except zmq.Again:
                        pass
        expired = []
        overdue = []
        for op in self._ops.values():
            if op.future.done():
                continue
            if now >= op.deadline:
                expired.append(op)
            elif op.due and now >= op.due:
                overdue.append(op)
        for op in expired:
            op.future.set_exception(OutcomeUnknown(
                f"no answer within {self.timeout_s:g}s for {op.command[1]} {op.command[2]!r} "
                f"(seq {op.seq}); it may or may not have been applied"))
        if overdue:
            if now - self._last_reply > self.retry_s:
                self._rotate(now)  # nothing at all came back lately: the leader may be gone
            self._resend(overdue)
        elif self._to_send and now >= self._hold_until and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        self._poke_sockets()

    def _poke_sockets(self) -> None:
        # Edge-triggered fds: a send can swallow the readiness edge, so look for input now.
        for name, s in self._sockets.items():
            if s.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._drain(name)

    # --- receiving -------------------------------------------------------------------------

    def _drain(self, name: str) -> None:
        s = self._sockets.get(name)
        if s is None:
            return
        while True:
            try:
                frame = s.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                _, messages = codec.decode_frame(frame)
            except codec.DecodeError:
                continue  # a broken frame from the cluster: ignore it; retries cover us
            for m in messages:
                kind = type(m)
                if kind is Reply:
                    self._reply_by = name
                    self._on_reply(m)
                elif kind is Redirect:
                    self._on_redirect(name, m)
                elif kind is Hello:
                    self._learners_ready.add(name)
                    if not self._reply_by or name == self._preferred_learner:
                        self._reply_by = name
                    if self._ready is not None:
                        self._ready.set()

    def _on_reply(self, m: Reply) -> None:
        self._last_reply = time.monotonic()
        ops = self._ops
        for seq, ok, result in m.results:
            op = ops.get(seq)
            if op is None or op.future.done():
                continue
            if ok:
                op.future.set_result(result)
            else:
                op.future.set_exception(CommandFailed(str(result)))

    def _on_redirect(self, sender: str, m: Redirect) -> None:
        now = time.monotonic()
        self.stats["redirects"] += 1
        if sender != self.proposers[self.target]:
            return  # an old answer from a proposer we no longer use
        if m.reason == "busy":
            # Back-pressure: the rejected commands are resent when they fall due; meanwhile
            # send nothing new for a moment.
            self.stats["busy"] += 1
            self._hold(now, 0.01)
            return
        if m.leader in self.proposers and m.leader != sender:
            self.target = self.proposers.index(m.leader)
        elif m.reason == "too_large":
            return
        else:
            self._rotate(now)
            self._hold(now, 0.05)  # nobody leads yet: give the election a moment
        pending = [op for op in self._ops.values() if not op.future.done()]
        self._to_send = []
        self._resend(pending)
