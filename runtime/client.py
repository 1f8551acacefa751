"""The Python client: `async with Client("cluster.toml") as kv: await kv.put("k", "v")`.

The protocol logic is a sans-IO core (`actors/client.py`, which the simulator runs too); this
is its asyncio and ZeroMQ shell. It finds the leader itself (proposers answer `Redirect` with their best guess), batches
everything its callers submit in one turn of the event loop into one Submit, and gets results
from the learners. A retry reuses the command's `(client_id, seq)`, so the state machine applies
it once whatever the number of retries. When the deadline passes without a result it raises
`OutcomeUnknown` (a `TimeoutError`): the command may or may not have taken effect. It never
reports an unknown outcome as a failure; `CommandFailed` means the state machine refused it.
A key or value it cannot send (over the limits, not valid UTF-8 text) raises `InvalidCommand`
(a `ValueError`) at once, before it is batched with anything.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zmq

from actors.client import ClientCore, ClientParams, ClientReady, TooManyOutstanding
from actors.messages import StatusQuery, StatusReply
from runtime import codec, keys, members
from runtime.config import ClusterConfig
from runtime.members import load
from runtime.trace import Clock, Tracer, client_trace_path


class OutcomeUnknown(TimeoutError):
    """The deadline passed without an answer: the command may or may not have been applied."""


class CommandFailed(Exception):
    """The state machine refused the command (definite: it changed nothing)."""


class ClusterUnavailable(ConnectionError):
    """No learner answered, so no result could ever reach this client; nothing was sent. Also
    raised when this process cannot open the client's sockets (out of file descriptors)."""


class NoLearnerAnswered(ClusterUnavailable):
    """`connect` waited its time and no learner answered: the cluster is down or unreachable."""


class InvalidCommand(ValueError):
    """A key or value the cluster cannot take: not a string, an empty key, over the limits, or
    not valid UTF-8 text (a lone surrogate, or a byte that `surrogateescape` smuggled in from
    `sys.argv` or a file name). Raised before anything is batched or sent, so the operations
    batched with it are unaffected."""


def _utf8_size(what: str, text: str) -> int:
    """The encoded size of `text`, or `InvalidCommand` naming the first character that has no
    UTF-8 form."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        # 0xDC80-0xDCFF is how surrogateescape carries a byte that was not UTF-8.
        detail = (f"byte 0x{code - 0xDC00:02x} (not UTF-8)" if 0xDC80 <= code <= 0xDCFF
                  else f"lone surrogate U+{code:04X}")
        raise InvalidCommand(f"{what} is not valid UTF-8 text: {detail} at character {exc.start}; "
                             f"keys and values are Unicode text") from None


# Every Client of a process shares one ZeroMQ context (one I/O thread serves them all). It is
# its own rather than zmq.Context.instance(): libzmq fixes a context's socket limit (1023 by
# default) when its first socket opens, so it is raised here before that.
_context: zmq.Context[zmq.Socket[bytes]] | None = None
_context_pid = 0
_nofile_raised = False
_client_sockets = 0  # sockets the Clients of this process hold open
CONTEXT_SOCKETS_MAX = 65_535
MGET_KEYS_MAX = 64  # keys in one `mget` command of get_many (its answer is one result: keep it small)
DISCOVER_S = 2.0  # how often a connected client asks a learner for membership changes
FDS_PER_SOCKET = 2  # a ZeroMQ socket holds its mailbox's eventfd and, once connected, one TCP connection


# Every Client of a process writes one trace file (`[trace] clients = true`), each line naming its
# session: runtime/trace.py.
_tracers: dict[Path, Tracer] = {}


def client_tracer(config: ClusterConfig) -> Tracer | None:
    tr = config.trace
    if not (tr.enabled and tr.clients):
        return None
    path = client_trace_path(config.data_dir / "logs")
    tracer = _tracers.get(path)
    if tracer is None:
        tracer = _tracers[path] = Tracer(path, "client", tr.frames_per_s, bytes_max=tr.file_bytes_max)
    return tracer


def shared_context() -> zmq.Context[zmq.Socket[bytes]]:
    global _context, _context_pid
    if _context is None or _context.closed or _context_pid != os.getpid():
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        ctx.set(zmq.MAX_SOCKETS, min(CONTEXT_SOCKETS_MAX, ctx.get(zmq.SOCKET_LIMIT)))
        _context, _context_pid = ctx, os.getpid()
    return _context


def _open_fds() -> int | None:
    """How many files this process has open; None if it cannot tell (not Linux, or no
    descriptor left even to look)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def ensure_fds(sockets: int) -> None:
    """Once, when the sockets about to open would not fit under the soft RLIMIT_NOFILE, raise it
    toward the hard limit (as far as the kernel lets an unprivileged process).

    The sockets already open count in full even if /proc shows their descriptors: ZeroMQ's I/O
    thread opens a socket's TCP connection a moment after `connect`, so many clients connecting
    at once look cheaper than they are (a CI run ran out of files reading a key file after the
    check had passed). Counting some twice only raises the limit earlier."""
    global _nofile_raised
    if _nofile_raised:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = _open_fds()
    wanted = (sockets + _client_sockets) * FDS_PER_SOCKET + 64
    if soft == resource.RLIM_INFINITY or (open_now is not None and open_now + wanted <= soft):
        return
    _nofile_raised = True
    # An unlimited hard limit is still capped by the kernel's nr_open: try a large finite one.
    for limit in [hard] if hard != resource.RLIM_INFINITY else [1 << 20, 1 << 16]:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            return
        except (ValueError, OSError):
            continue


def _count_sockets(n: int) -> None:
    global _client_sockets
    _client_sockets += n


def _fd_report() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def show(n: int) -> str:
        return "unlimited" if n == resource.RLIM_INFINITY else str(n)

    ctx = shared_context()
    open_now = _open_fds()
    return (f"{'no descriptor left' if open_now is None else f'{open_now} files open'}, "
            f"RLIMIT_NOFILE soft {show(soft)} hard {show(hard)}, "
            f"at most {ctx.get(zmq.MAX_SOCKETS)} ZeroMQ sockets per context; each Client holds about "
            f"{FDS_PER_SOCKET} descriptors per proposer and learner")


class _Many:
    """One `get_many` or `put_many` call: the results of its operations (seqs `first` on, in
    order), and the one future its caller awaits, settled once every operation is answered or
    expired."""

    __slots__ = ("failed", "first", "future", "left", "unknown", "values")

    def __init__(self, future: asyncio.Future[Any], n: int, first: int) -> None:
        self.future = future
        self.values: list[Any] = [None] * n
        self.first = first
        self.left = n
        self.failed = ""  # the first refusal's text
        self.unknown = ""  # the first expiry's text

    def settle(self, seq: int, ok: bool, result: Any) -> None:
        if ok:
            self.values[seq - self.first] = result
        elif not self.failed:
            self.failed = f"seq {seq}: {result}"
        self.left -= 1
        if not self.left:
            self._finish()

    def expire(self, op: Any, timeout_s: float) -> None:
        if not self.unknown:
            self.unknown = (f"no answer within {timeout_s:g}s for {op.command[1]} {op.command[2]!r} (seq {op.seq}) "
                            f"and maybe others of its batched call; they may or may not have been applied")
        self.left -= 1
        if not self.left:
            self._finish()

    def _finish(self) -> None:
        if self.future.done():
            return
        if self.unknown:
            self.future.set_exception(OutcomeUnknown(self.unknown))
        elif self.failed:
            self.future.set_exception(CommandFailed(self.failed))
        else:
            self.future.set_result(self.values)


class Client:
    def __init__(self, config: str | Path | ClusterConfig = "cluster.toml", timeout_s: float | None = None,
                 client_id: str | None = None, retry_s: float | None = None,
                 key_file: str | Path | None = None) -> None:
        self.config = config if isinstance(config, ClusterConfig) else load(config)
        c = self.config.client
        self.timeout_s = timeout_s if timeout_s is not None else c.timeout_s
        # The client's own key (the cluster's default client key unless `key_file` names
        # another); its session id is bound to that key, so no other client can act for it.
        self.key: keys.KeyPair | None = None
        if self.config.security.curve:
            try:
                self.key = keys.client_pair(self.config, key_file)
            except keys.KeyFileError as exc:
                raise ClusterUnavailable(f"{exc}") from None
        if client_id is not None:
            keys.check_session_id(client_id, self.key)
        self.client_id = client_id or keys.new_session_id(self.key)
        self.fast = self.config.protocol.mode == "fast"
        params = ClientParams(timeout_s=self.timeout_s, retry_s=retry_s if retry_s is not None else c.retry_s,
                              batch_bytes_max=self.config.protocol.batch_bytes_max,
                              outstanding_max=c.outstanding_max, fast=self.fast)
        # Whom to talk to: the newest membership this machine knows (runtime/members.py), kept
        # up to date from the learners while connected (`_discover`).
        current = self.config.current()
        # (Acceptors too in fast mode: a first attempt goes straight to them.)
        self._endpoints = {n: e for n, e in current.endpoints().items()
                           if self.fast or n not in current.acceptor_names}
        self.core = ClientCore(self.client_id, [n for n, _, _ in current.proposers], current.learner_names,
                               codec.encode_client_batch, params,
                               acceptors=list(current.acceptor_names) if self.fast else None)
        self._next_discover = 0.0
        self.stats = self.core.stats
        self._ctx: zmq.Context[zmq.Socket[bytes]] = shared_context()
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._groups: set[_Many] = set()  # the batched calls waiting (get_many, put_many)
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ready: asyncio.Event | None = None
        self._closed = False
        self._clock = Clock()  # the trace context of its frames (runtime/trace.py)
        self._tracer = client_tracer(self.config)

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self, timeout_s: float | None = None) -> None:
        """Open a socket per proposer and learner and wait until a learner answers (within
        `timeout_s`, by default the client's timeout), else `ClusterUnavailable`."""
        ensure_fds(len(self._endpoints))
        try:
            await self._connect(self.timeout_s if timeout_s is None else timeout_s)
        except zmq.ZMQError as exc:
            await self.close()
            detail = f" ({_fd_report()})" if exc.errno in (errno.EMFILE, errno.ENFILE) else ""
            raise ClusterUnavailable(f"cannot open the client's sockets for {self.config.path}: "
                                     f"{exc}{detail}") from None

    def _server_key(self, name: str) -> bytes:
        try:
            return keys.server_public(self.config, name)
        except keys.KeyFileError as exc:
            raise ClusterUnavailable(str(exc)) from None

    async def _connect(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        for name, endpoint in self._endpoints.items():
            self._open(name, endpoint)
        self._timer = self._loop.call_later(0.0, self._on_timer)
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=timeout_s)
        except TimeoutError:
            await self.close()
            raise NoLearnerAnswered(
                f"no learner of {self.config.path} answered within {timeout_s:g}s "
                f"({', '.join(self.core.learners)}); is the cluster up?") from None

    def _open(self, name: str, endpoint: str) -> None:
        assert self._loop is not None
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.setsockopt(zmq.ROUTING_ID, self.client_id.encode())
        if self.key is not None:
            keys.secure_client(s, self.key, self._server_key(name))
        s.setsockopt(zmq.RECONNECT_IVL, 20)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.connect(endpoint)
        self._sockets[name] = s
        _count_sockets(1)
        self._loop.add_reader(int(s.getsockopt(zmq.FD)), self._drain, name)

    def _discover(self, info: dict[str, Any]) -> None:
        """A learner's status: the membership changes it knows. New proposers and learners get a
        socket and join the core's lists; removed ones leave them (their sockets stay idle)."""
        blob = info.get("history")
        if not isinstance(blob, str) or not blob:
            return
        config, grew = members.merge(self.config, blob.encode())
        if not grew:
            return
        self.config = config
        current = config.current()
        for name, endpoint in current.endpoints().items():
            if name not in current.acceptor_names and name not in self._sockets and endpoint.startswith("tcp://"):
                try:
                    self._open(name, endpoint)
                except (ClusterUnavailable, zmq.ZMQError):
                    continue  # no key for it here (yet): the next discovery tries again
                self._endpoints[name] = endpoint
        self.core.set_members([n for n, _, _ in current.proposers if n in self._sockets],
                              [n for n in current.learner_names if n in self._sockets])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(OutcomeUnknown("client closed before an answer arrived"))
        self._futures.clear()
        for group in self._groups:
            if not group.future.done():
                group.future.set_exception(OutcomeUnknown("client closed before every answer arrived"))
        self._groups.clear()
        for s in self._sockets.values():
            if self._loop is not None:
                try:
                    self._loop.remove_reader(int(s.getsockopt(zmq.FD)))
                except Exception:
                    pass
            s.close(0)
        _count_sockets(-len(self._sockets))
        self._sockets.clear()

    # --- operations ------------------------------------------------------------------------

    async def put(self, key: str, value: str) -> None:
        self._check_value(value)
        await self._call(["put", self._check_key(key), value])

    async def get(self, key: str, stale_ok: bool = False, via_log: bool = False) -> str | None:
        """The value of `key`, or None. Linearizable and without a log write: the leader answers
        under its lease, or after a heartbeat round (actors/lease.py). `stale_ok`: a learner
        answers from its state as it stands, with no check at all: it may miss writes that were
        acknowledged (it is behind, or cut off). `via_log`: as a command in the log (a write's
        cost), as before reads had a path of their own."""
        key = self._check_key(key)
        if via_log:
            result: str | None = await self._call(["get", key])
            return result
        result = await self._call(["get", key], read="stale" if stale_ok else "lease")
        return result

    async def cas(self, key: str, old: str | None, new: str) -> bool:
        if old is not None:
            self._check_value(old, "old value")
        self._check_value(new, "new value")
        return bool(await self._call(["cas", self._check_key(key), old, new]))

    async def append(self, key: str, value: str) -> str:
        self._check_value(value)
        result: str = await self._call(["append", self._check_key(key), value])
        return result

    async def delete(self, key: str) -> None:
        await self._call(["delete", self._check_key(key)])

    async def get_many(self, keys: Iterable[str], stale_ok: bool = False) -> list[str | None]:
        """The values of `keys`, in their order (None: absent), read as `get` reads (linearizable
        without a log write; `stale_ok` as there), with one await for them all. Every
        MGET_KEYS_MAX keys are one `mget` command, one seq and one result: a learner reads them
        together, from one state, so a caller with many keys pays the per-operation cost once
        per chunk, not per key. Every key is checked before any is sent (`InvalidCommand`)."""
        checked = [self._check_key(k) for k in keys]
        commands = [["mget", *checked[i:i + MGET_KEYS_MAX]] for i in range(0, len(checked), MGET_KEYS_MAX)]
        chunks: list[Any] = await self._call_many(commands, "stale" if stale_ok else "lease")
        values: list[str | None] = []
        for command, chunk in zip(commands, chunks, strict=True):
            if type(chunk) not in (list, tuple) or len(chunk) != len(command) - 1:
                raise CommandFailed(f"a learner answered an mget of {len(command) - 1} keys with "
                                    f"{type(chunk).__name__} {str(chunk)[:80]}")
            values += chunk
        return values

    async def put_many(self, items: Iterable[tuple[str, str]]) -> None:
        """Each `(key, value)` written as `put` writes it, with one await for them all. Not a
        transaction: each put is a command of its own (applied once however often it is retried),
        in no order among themselves, as many concurrent `put` calls would be. `CommandFailed` if
        any was refused, `OutcomeUnknown` if any went unanswered (the others may have been
        applied); either waits for every answer first. Every item is checked before any is sent."""
        commands = []
        for key, value in items:
            self._check_value(value)
            commands.append(["put", self._check_key(key), value])
        await self._call_many(commands, "")

    def check(self, key: str, *values: str | None) -> None:
        """`InvalidCommand` unless the cluster can take this key and these values (None: the
        absent value of a `cas`): what every operation checks before it is batched, and what the
        CLI checks before it connects."""
        self._check_key(key)
        for value in values:
            if value is not None:
                self._check_value(value)

    def _check_key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise InvalidCommand("key must be a non-empty string")
        if key.isascii() and len(key) <= self.config.limits.key_bytes_max:
            return key  # its UTF-8 form is itself: no need to encode it (most keys; get_many checks many)
        if _utf8_size("key", key) > self.config.limits.key_bytes_max:
            raise InvalidCommand(f"key larger than {self.config.limits.key_bytes_max} bytes")
        return key

    def _check_value(self, value: str, what: str = "value") -> None:
        if not isinstance(value, str):
            raise InvalidCommand(f"{what} must be a string")
        if _utf8_size(what, value) > self.config.limits.value_bytes_max:
            raise InvalidCommand(f"{what} larger than {self.config.limits.value_bytes_max} bytes")

    async def _call(self, command: list[Any], read: str = "") -> Any:
        if self._closed or self._loop is None:
            raise RuntimeError("client is not connected (use `async with Client(...)`)")
        try:
            op = self.core.submit(command, time.monotonic())
            op.read = read
        except TooManyOutstanding as exc:
            raise RuntimeError(str(exc)) from None
        future = self._futures[op.seq] = self._loop.create_future()
        self._schedule_flush()
        try:
            return await future
        finally:
            self._futures.pop(op.seq, None)
            self.core.forget(op.seq)

    async def _call_many(self, commands: list[list[Any]], read: str) -> Any:
        """`commands` as operations of their own in the next flush; one future for all of them."""
        if self._closed or self._loop is None:
            raise RuntimeError("client is not connected (use `async with Client(...)`)")
        if not commands:
            return []
        group = _Many(self._loop.create_future(), len(commands), self.core.next_seq)
        try:
            ops = self.core.submit_many(commands, time.monotonic(), read, group)
        except TooManyOutstanding as exc:
            raise RuntimeError(str(exc)) from None
        self._groups.add(group)
        self._schedule_flush()
        try:
            return await group.future
        finally:
            self._groups.discard(group)
            forget = self.core.ops.pop
            for op in ops:
                forget(op.seq, None)

    # --- the core's outputs ----------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._closed:
            self._apply(self.core.flush(time.monotonic()))

    def _apply(self, ready: ClientReady) -> None:
        tracer = self._tracer
        for dest, messages, ops in ready.send:
            lc = self._clock.send()
            sampled = tracer is not None and tracer.sample(True)
            if sampled:
                assert tracer is not None
                tracer.send(dest, lc, messages, actor=self.client_id)
            try:
                self._sockets[dest].send(codec.encode_frame(self.client_id, messages, lc, sampled), zmq.NOBLOCK)
            except zmq.Again:
                # Not connected (IMMEDIATE) or queue full: the core tries the next proposer soon.
                if ops:
                    self.core.unsent(ops, time.monotonic())
        for op, ok, result in ready.results:
            if op.group is not None:
                op.group.settle(op.seq, ok, result)
                continue
            future = self._futures.get(op.seq)
            if future is None or future.done():
                continue
            if ok:
                future.set_result(result)
            else:
                future.set_exception(CommandFailed(str(result)))
        for op in ready.expired:
            if op.group is not None:
                op.group.expire(op, self.timeout_s)
                continue
            future = self._futures.get(op.seq)
            if future is not None and not future.done():
                future.set_exception(OutcomeUnknown(
                    f"no answer within {self.timeout_s:g}s for {op.command[1]} {op.command[2]!r} "
                    f"(seq {op.seq}); it may or may not have been applied"))
        if tracer is not None:
            tracer.flush()
        if ready.send:
            self._poke_sockets()

    def _on_timer(self) -> None:
        if self._closed or self._loop is None:
            return
        now = time.monotonic()
        self._timer = self._loop.call_later(min(self.core.params.retry_s / 3, 0.05), self._on_timer)
        self._apply(self.core.timer(now))
        if now >= self._next_discover and self.core.connected:
            # Every DISCOVER_S, ask one learner which membership changes it knows.
            self._next_discover = now + DISCOVER_S
            learner = self.core.reply_by or self.core.preferred_learner
            s = self._sockets.get(learner)
            if s is not None:
                try:
                    query = codec.encode_frame(self.client_id, [StatusQuery(brief=True)], self._clock.send())
                    s.send(query, zmq.NOBLOCK)
                except zmq.Again:
                    pass
        if self.core.wants_flush(now):
            self._schedule_flush()
        self._poke_sockets()

    def _poke_sockets(self) -> None:
        # Edge-triggered fds: a send can swallow the readiness edge, so look for input now.
        for name, s in list(self._sockets.items()):  # a drained StatusReply may open sockets
            if int(s.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                self._drain(name)

    # --- receiving -------------------------------------------------------------------------

    def _drain(self, name: str) -> None:
        s = self._sockets.get(name)
        if s is None:
            return
        core = self.core
        while True:
            try:
                frame = s.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                _, messages, frame_lc, sampled = codec.decode_frame_ctx(frame)
            except codec.DecodeError:
                continue  # a broken frame from the cluster: ignore it; retries cover us
            lc = self._clock.recv(frame_lc)
            if sampled and self._tracer is not None:
                self._tracer.recv(name, frame_lc, lc, messages, actor=self.client_id)
            now = time.monotonic()
            ready = ClientReady()
            for m in messages:
                if type(m) is StatusReply:
                    self._discover(dict(m.info))
                else:
                    core.receive(name, m, now, ready)
            self._apply(ready)
        if self._tracer is not None:
            self._tracer.flush()
        if core.connected and self._ready is not None:
            self._ready.set()
        if core.wants_flush(time.monotonic()):
            self._schedule_flush()
