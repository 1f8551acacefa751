"""Step mode (issue 14): every message between actors is held until somebody says what becomes of it.

`paxos up --step` (or `paxos step hold` on a running cluster) puts the cluster in step mode: each
actor parks every frame it would send to another actor, one message per entry, instead of sending
it; `paxos step` lists what is held, per link, and delivers, drops or duplicates one entry by id
(or all of a link); `paxos step release` leaves step mode and sends everything held. Frames to
clients (Redirect, Reply, answers to status queries) are never held: only actor-to-actor ones.

What lives where, all under `<data_dir>/run/step/` (the run directory is private, 0700):

- `mode.json`, written by `paxos`: `{"ticks": "paused"|"run"}` while step mode is on, absent when
  it is off. Every actor reads it at start and checks its mtime every tick.
- `<actor>.json`, written by that actor (atomically, after every turn that changed it): what it
  holds (`held`: id, destination, message type, a label with ballots and slots, how many identical
  copies it parked, when it parked the first), its core's status (`status`), the frames it
  released to and received from each peer in step mode (`sent`, `recv`: how a driver knows that
  what it delivered was handled), and the answers to the requests it handled (`done`).
- `<actor>.requests`, appended to by `paxos step` (one JSON line per request, well under the size
  an O_APPEND write keeps whole): `{"req": ID, "op": "deliver"|"drop"|"dup"|"tick"|"campaign",
  "ids": [...], "n": K}`. The actor reads what was appended since the last tick; a request written
  before it started is not its own and is skipped.

Timers: a held cluster would keep retransmitting and, hearing no heartbeat, keep electing. With
`ticks = "paused"` (the default of `paxos up --step`) the cores' ticks stop while step mode is on:
nothing happens unless a message is delivered, a tick is run (`paxos step tick NAME`) or a
proposer is told to campaign (`paxos step campaign NAME`: its election timer fires now). With
`ticks = "run"` timers run as usual and identical messages on a link are collapsed into one entry
with a count (a retransmission of the same Prepare is one line, `x3`). Ticks are the actors'
time: a leader's lease is counted in its own ticks and an acceptor's grant in its own, so ticking
some actors and not the others is a clock running fast, and beyond `[reads] clock_drift_max` leases
may overlap (see actors/lease.py): tick them all alike, or run with `[reads] lease = false`. With
leases on, a fresh acceptor promises nobody for `lease_ticks` of its ticks; `paxos up --step
--detach` runs that many ticks of every actor, together, before it returns.

Ids are `<actor>.<n>`, never reused within a data directory (an actor continues the numbering of
its previous run), so an id that is gone (delivered, dropped, or lost with a crash of its sender:
held frames live in the sender's memory, as unsent ones do) is said to be gone, never taken for
another message. Leaving step mode sends everything held, in the order it was parked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.messages import Message
from runtime import codec
from runtime.turn import fields

TICKS_PAUSED = "paused"
TICKS_RUN = "run"
DONE_KEPT = 256
RECV_KEPT = 128  # senders whose frames are counted (peers and the latest clients: each CLI run is one)
REQUEST_BYTES_MAX = 3500  # one request line, below PIPE_BUF (4096): an O_APPEND write stays whole
TICKS_PER_REQUEST_MAX = 100_000


def step_dir(run_dir: Path) -> Path:
    return run_dir / "step"


def mode_path(run_dir: Path) -> Path:
    return step_dir(run_dir) / "mode.json"


def index_path(run_dir: Path, name: str) -> Path:
    return step_dir(run_dir) / f"{name}.json"


def requests_path(run_dir: Path, name: str) -> Path:
    return step_dir(run_dir) / f"{name}.requests"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def set_mode(run_dir: Path, ticks: str | None) -> None:
    """Step mode on (`ticks`: "paused" or "run") or off (None) for every actor of this run dir."""
    path = mode_path(run_dir)
    if ticks is None:
        path.unlink(missing_ok=True)
        return
    if ticks not in (TICKS_PAUSED, TICKS_RUN):
        raise ValueError(f"ticks must be {TICKS_PAUSED!r} or {TICKS_RUN!r}, not {ticks!r}")
    _write_atomic(path, json.dumps({"ticks": ticks}))


def read_mode(run_dir: Path) -> str | None:
    """The ticks setting of step mode, or None when step mode is off (or the file is unreadable:
    a half-written file cannot happen, it is replaced whole)."""
    try:
        ticks = json.loads(mode_path(run_dir).read_text()).get("ticks")
    except (OSError, ValueError, AttributeError):
        return None
    return ticks if ticks in (TICKS_PAUSED, TICKS_RUN) else TICKS_PAUSED


def label(message: Message) -> str:
    """A message as one short line: its type and the fields that tell one from another (ballots,
    slots, watermarks; counts instead of payloads)."""
    shown = " ".join(f"{k}={v}" for k, v in fields(message).items()
                     if v != "" and not isinstance(getattr(message, k, None), bytes))
    return f"{message.TYPE} {shown}".rstrip()


@dataclass
class Held:
    """One parked message: an entry of the step list."""

    id: str
    dest: str
    type: str
    label: str
    frame: bytes  # a frame of this one message, as the sender would have sent it
    count: int  # identical copies parked (retransmissions while ticks run), sent once
    parked_ms: int  # wall time of the first copy, ms since the epoch

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.dest, "type": self.type, "label": self.label, "count": self.count,
                "parked_ms": self.parked_ms}


class HeldStore:
    """The held messages of one actor, in the order they were parked; identical messages on one
    link share one entry. Pure: no files, no sockets (tests drive it directly)."""

    def __init__(self, name: str, first_number: int = 1) -> None:
        self.name = name
        self.next_number = first_number
        self.entries: dict[str, Held] = {}
        self._by_frame: dict[tuple[str, bytes], str] = {}

    def park(self, dest: str, message: Message, frame: bytes, now_ms: int) -> Held:
        key = (dest, frame)
        known = self._by_frame.get(key)
        if known is not None:
            entry = self.entries[known]
            entry.count += 1
            return entry
        entry = Held(f"{self.name}.{self.next_number}", dest, message.TYPE, label(message), frame, 1, now_ms)
        self.next_number += 1
        self.entries[entry.id] = entry
        self._by_frame[key] = entry.id
        return entry

    def take(self, ids: list[str]) -> tuple[list[Held], list[str]]:
        """Remove these entries: (the ones held, in parking order; the ids that are not held)."""
        missing = [i for i in ids if i not in self.entries]
        wanted = set(ids)
        taken = [e for e in self.entries.values() if e.id in wanted]
        for e in taken:
            del self.entries[e.id]
            self._by_frame.pop((e.dest, e.frame), None)
        return taken, missing

    def take_all(self) -> list[Held]:
        taken = list(self.entries.values())
        self.entries.clear()
        self._by_frame.clear()
        return taken

    def view(self) -> list[dict[str, Any]]:
        return [e.view() for e in self.entries.values()]


class Stepper:
    """The actor's side of step mode (runtime/actor.py calls it): parks what it sends to peers
    while step mode is on, does what `paxos step` asks, and writes its index."""

    def __init__(self, run_dir: Path, name: str, send: Callable[[str, bytes], None],
                 status: Callable[[], dict[str, Any]]) -> None:
        self.run_dir = run_dir
        self.name = name
        self._send = send
        # How a held message leaves when released: the shell restamps it with a fresh trace
        # context (its send is traced then, when it really goes, so `paxos trace` joins it to its
        # receive); plain `send` where no shell asks for that.
        self.release_send: Callable[[str, bytes], None] = send
        # A dropped message: the shell traces it as a send marked dropped, never received (a lost arrow).
        self.on_drop: Callable[[str, bytes], None] = lambda dest, frame: None
        self._status = status
        self.index = index_path(run_dir, name)
        self.requests = requests_path(run_dir, name)
        self.ticks_mode = read_mode(run_dir)
        # Polled every tick by every actor: plain strings for os.stat, built once (a Path built
        # and stat'ed per tick cost each actor about 1% of a core).
        self._mode_file = os.fspath(mode_path(run_dir))
        self._requests_file = os.fspath(self.requests)
        self._mode_mtime = self._mtime(self._mode_file)
        self.store = HeldStore(name, self._previous_next_number())
        # Requests written before this process started belong to an earlier run of the actor.
        try:
            self._req_offset = self.requests.stat().st_size
        except OSError:
            self._req_offset = 0
        self.sent: dict[str, int] = {}
        self.recv: dict[str, int] = {}
        self.done: dict[str, dict[str, Any]] = {}
        self.dirty = True
        # What a request asks of the shell beyond sending: run ticks, campaign now.
        self.on_tick: Callable[[int], None] = lambda n: None
        self.on_campaign: Callable[[], str] = lambda: "not a proposer"

    @property
    def active(self) -> bool:
        return self.ticks_mode is not None

    @property
    def ticks_paused(self) -> bool:
        return self.ticks_mode == TICKS_PAUSED

    @staticmethod
    def _mtime(path: str) -> float:
        try:
            return os.stat(path).st_mtime_ns / 1e9
        except OSError:
            return 0.0

    def _previous_next_number(self) -> int:
        try:
            n = json.loads(self.index.read_text()).get("next_number", 1)
        except (OSError, ValueError, AttributeError):
            return 1
        return n if isinstance(n, int) and n >= 1 else 1

    # --- the send path ---------------------------------------------------------------------

    def send_peer(self, dest: str, frame: bytes) -> None:
        """In front of the transport's send to a peer: park while step mode is on. A frame of
        many messages is parked as one entry per message, so each can be delivered on its own."""
        if not self.active:
            self._send(dest, frame)
            return
        _, messages = codec.decode_frame(frame)
        now_ms = int(time.time() * 1000)
        for m in messages:
            self.store.park(dest, m, codec.encode_frame(self.name, [m]), now_ms)
        self.dirty = True

    def received(self, batch: list[list[bytes]], peers: dict[str, str]) -> None:
        """Count the frames a turn takes from each sender, peer or client session (a driver waits
        for what it delivered or submitted to be handled)."""
        if not self.active:
            return
        recv = self.recv
        for parts in batch:
            who = parts[0].decode("utf-8", "replace")[:64] if parts else "?"
            if who not in recv and len(recv) >= RECV_KEPT:
                del recv[next(k for k in recv if k not in peers)]  # the oldest client's count
            recv[who] = recv.get(who, 0) + 1
        self.dirty = True

    def _release(self, entries: list[Held], copies: int = 1) -> None:
        for e in entries:
            for _ in range(copies):
                self.release_send(e.dest, e.frame)
                self.sent[e.dest] = self.sent.get(e.dest, 0) + 1
        self.dirty = True

    # --- every tick ------------------------------------------------------------------------

    def poll(self) -> None:
        """Follow the mode file and handle new requests (from the shell's tick, whether or not the
        core's ticks are paused)."""
        mtime = self._mtime(self._mode_file)
        if mtime != self._mode_mtime:
            self._mode_mtime = mtime
            was = self.active
            self.ticks_mode = read_mode(self.run_dir)
            if was and not self.active:
                self._release(self.store.take_all())  # leaving step mode: everything held goes
            self.dirty = True
        for request in self._new_requests():
            self._handle(request)

    def _new_requests(self) -> list[dict[str, Any]]:
        try:
            size = os.stat(self._requests_file).st_size
        except OSError:
            return []
        if size <= self._req_offset:
            self._req_offset = min(self._req_offset, size)
            return []
        with open(self.requests, "rb") as f:
            f.seek(self._req_offset)
            data = f.read(size - self._req_offset)
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next tick
        self._req_offset += end
        out = []
        for line in data[:end].splitlines():
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if isinstance(request, dict) and isinstance(request.get("req"), str):
                out.append(request)
        return out

    def _handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        answer: dict[str, Any] = {"ok": True}
        if op in ("deliver", "drop", "dup"):
            ids = [i for i in request.get("ids", []) if isinstance(i, str)]
            taken, missing = self.store.take(ids)
            if op != "drop":
                self._release(taken, 2 if op == "dup" else 1)
            else:
                for e in taken:
                    self.on_drop(e.dest, e.frame)
            answer = {"ok": not missing, "done": [e.id for e in taken], "missing": missing,
                      "sent": {e.id: e.dest for e in taken} if op != "drop" else {}}
        elif op == "tick":
            n = request.get("n", 1)
            if not isinstance(n, int) or not 1 <= n <= TICKS_PER_REQUEST_MAX:
                answer = {"ok": False, "error": f"n must be 1..{TICKS_PER_REQUEST_MAX}"}
            else:
                self.on_tick(n)
        elif op == "campaign":
            why = self.on_campaign()
            if why:
                answer = {"ok": False, "error": why}
        else:
            answer = {"ok": False, "error": f"unknown request {op!r}"}
        self.done[request["req"]] = answer
        while len(self.done) > DONE_KEPT:
            del self.done[next(iter(self.done))]
        self.dirty = True

    def flush(self) -> None:
        """Write the index if anything changed (after a turn, and after every tick's requests)."""
        if not self.dirty:
            return
        self.dirty = False
        status = {k: str(v) for k, v in self._status().items()}
        _write_atomic(self.index, json.dumps({
            "name": self.name, "pid": os.getpid(), "active": self.active, "ticks": self.ticks_mode,
            "next_number": self.store.next_number, "held": self.store.view(), "sent": self.sent,
            "recv": self.recv, "done": self.done, "status": status, "written_ms": int(time.time() * 1000)}))


# --- the operator's side (`paxos step`, the scenario executor) ---------------------------------


class StepError(Exception):
    """A step request that cannot be done; `code` is the exit code `paxos step` ends with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def read_index(run_dir: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads(index_path(run_dir, name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def post(run_dir: Path, name: str, request: dict[str, Any]) -> str:
    """Append one request for actor `name`; returns its id (the key of the answer in its index)."""
    req = f"{os.getpid()}-{time.monotonic_ns()}"
    line = (json.dumps({**request, "req": req}) + "\n").encode()
    if len(line) > REQUEST_BYTES_MAX:
        raise ValueError(f"a step request of {len(line)} bytes is too long (split the ids)")
    path = requests_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return req


def answer(run_dir: Path, name: str, req: str, timeout_s: float, alive: Callable[[], bool] | None = None
           ) -> dict[str, Any]:
    """Wait (bounded) until actor `name` answered request `req`; StepError when it did not."""
    deadline = time.monotonic() + timeout_s
    while True:
        index = read_index(run_dir, name)
        if index is not None and req in index.get("done", {}):
            result: dict[str, Any] = index["done"][req]
            return result
        if time.monotonic() >= deadline or (alive is not None and not alive()):
            raise StepError(f"{name} did not answer the step request within {timeout_s:g}s "
                            f"(is it running, and in step mode?)", 1)
        time.sleep(0.01)
