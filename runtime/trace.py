"""Causal tracing: the trace context on frames, a sampling budget, and the trace files. Its schema.

Every frame carries the sender's Lamport clock `lc` and a `sampled` flag (runtime/codec.py). An
actor's clock (`Clock`, owned by its turn driver, runtime/turn.py) is bumped by one for every
frame it sends; a frame received sets it to max(own, frame lc) + 1 (moved at most 2^32 ahead
by one frame, never past 2^63 - 1: a forged clock cannot make ours undecodable). The pair
(sender, lc) names one frame, so a send and its receive join on it across processes
(runtime/tracefiles.py, runtime/tracechart/model.py). The clock is not kept across a restart:
a restarted actor counts from 0 again, so (sender, lc) is unique within one run of the sender
(its `start` line begins a run) and a reader that meets a key twice tells the frames apart by
their labels and times. Clients stamp their frames too; the simulator's actors send lc 0.

Step mode (runtime/step.py): a message the actor holds is not traced when the core sends it but
when it leaves (delivered, duplicated or released), with a fresh clock (so its receive joins it); one that is
dropped is traced then too, as a `send` with `dropped: true` that nobody receives, whatever the
budget (the chart draws it as a lost arrow, "(dropped)").

A shell that traces (the actor process, runtime/actor.py; the client, runtime/client.py) has a
`Tracer`: it decides which frames it samples and writes one JSON object per line to
`<data_dir>/logs/<actor>.trace` (clients: `<data_dir>/logs/client-<pid>.trace`, one file per
client process, `a` naming each session). Lines are buffered and written at the end of a turn,
like the structlog file next to it (`<actor>.jsonl`); a line that cannot be written (a full
disk) is dropped and counted, never a crash. Nothing here goes through structlog: a line is one
`json.dumps`.

Sampling: a frame is sampled while the actor's budget allows, `frames_per_s` sampled frames a
second (a token bucket that holds one second's worth). Frames of a turn that handled a sampled
frame draw from the whole bucket; the others only from its upper half, so at saturation what
is left goes to following the sampled requests end to end rather than to new ones, and only
when they carry protocol work (`starts_a_trace`: not only heartbeats, lease renewals, hellos,
status, probes, empty Accepts), so an idle cluster writes no trace. Both the send and its
receive are traced only when the sender sampled the frame; the other events of a turn (persist,
fsync, decide, deliver, reply, assign) only when the turn handled a sampled frame, or, at a
leader, when it puts a client batch that came in a sampled frame into an Accept (the window
may have been full then): that turn counts as following, so the path goes on from there.
`start` and `crash` are always written. At saturation this is per batch, not per command: the
events of a batch list its first OPS_MAX ops.

Files: past `[trace] file_bytes_max` a file moves to `<name>.trace.1` (one older file kept).

The schema (keys of every line, then per kind `e`):

- every line: `ts` (wall-clock seconds, time.time(), float), `a` (actor name or client session
  id), `e` (kind), `lc` (the actor's Lamport clock at the event)
- `send`: `to` (peer name or client id), `lc` = the frame's clock, `m` (message labels, e.g.
  "Prepare b=3.1", "Promise b=3.1", "Accept b=3.1 s=812..815", "Accepted b=3.1 s=812",
  "Nack promised=4.2", "Submit n=3", "Reply n=3", "Heartbeat b=3.1 ct=811"; an Accept of no
  slot, the leader's keep-alive, is "Accept b=3.1 keep-alive", its answer "Accepted b=3.1
  keep-alive"), optional `ops`
  (["CLIENT:SEQ", ...], at most OPS_MAX; `ops_more: true` when there were more) for the client's
  messages (Submit, Read, FastAccept, Reply). An Accept's ops are in the leader's `assign` of
  its slots (listing them per destination cost the most at saturation). Optional `dropped: true`:
  step mode discarded the held message instead of sending it (no receive will join it).
- `recv`: `from`, `slc` (the frame's clock as its sender stamped it), `lc` (ours after it), `m`,
  optional `ops` (as in send)
- `persist`: `m` (record labels: "promise b=3.1", "accept b=3.1 s=812..815", "decided s=812",
  "round r=4", ...), `bytes` (what the write added to the file), `durable` (it waited for fsync)
- `fsync`: `dur_us` (the fdatasync's duration, microseconds)
- `decide`: `s` (slots in runs: "812", "812..815" or "812..815,818"), `b` (ballot of the latest
  Accepted traced, "3.1", or "") -- the slots a learner newly knows chosen in this turn
- `deliver`: `s` (runs, as in decide), optional `ops` -- a learner applied them to the key-value
  state in this turn (one line per turn)
- `reply`: `to` (client id), `ops` -- results sent to a client
- `assign`: `s` (one slot, an int), `ops` -- a leader put these client commands into slot `s`
  (one line per slot)
- `start`: `pid`, `role` -- the process started (after recovery)
- `crash`: `point` (where), `error` -- it ends itself (crash-only)

Readers must ignore keys they do not know.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import msgpack

from actors.messages import (
    Accept,
    Accepted,
    Any_,
    FastAccept,
    Heartbeat,
    Hello,
    LeaseGranted,
    LeaseRenew,
    Message,
    Nack,
    Prepare,
    Probe,
    Probed,
    Promise,
    Read,
    Reply,
    SnapshotOffer,
    StatusQuery,
    StatusReply,
    Submit,
)
from actors.records import AcceptRecord, DecidedRecord, PromiseRecord, Record, RoundRecord

OPS_MAX = 64  # client ops listed per event; beyond it only `ops_more: true`
HEAD_BYTES = 64  # of a client batch, read for its session and command count
COMMAND_BYTES = 96  # read per command wanted (all of the batch only when a command is larger)
FRAMES_PER_S = 200  # the default budget: sampled frames per second per actor


FLUSH_LINES = 256  # buffered trace lines that are written at the end of the turn, whatever their age
FLUSH_AFTER_S = 0.02  # how long a buffered trace line waits at most for the end of a later turn
LC_MAX = 2**63 - 1  # what the codec admits
LC_JUMP_MAX = 2**32  # a received frame moves the clock at most this far ahead at once


class Clock:
    """A Lamport clock: bumped for every frame sent, moved past every frame received. A frame
    moves it at most LC_JUMP_MAX ahead and never past LC_MAX: any key holder may send a frame
    with lc 2^63 - 1, and a clock pushed there would stamp frames no peer decodes. (No honest
    sender is 2^32 frames ahead.)"""

    __slots__ = ("lc",)

    def __init__(self) -> None:
        self.lc = 0

    def send(self) -> int:
        if self.lc < LC_MAX:
            self.lc += 1
        return self.lc

    def recv(self, frame_lc: int) -> int:
        lc = self.lc
        if frame_lc > lc:
            lc = min(frame_lc, lc + LC_JUMP_MAX)
        self.lc = min(lc + 1, LC_MAX)
        return self.lc


# What an idle cluster sends all the time: a frame of only these starts no trace of its own (it is
# traced when its turn follows a sampled frame), so an idle cluster writes no trace at all.
BACKGROUND: frozenset[type[Message]] = frozenset((Heartbeat, LeaseRenew, LeaseGranted, Hello, StatusQuery,
                                                  StatusReply, Probe, Probed, SnapshotOffer))


def status_only(messages: Iterable[Message]) -> bool:
    """A frame of status answers only (the supervisor's, a client's discovery): never traced."""
    return all(type(m) is StatusReply for m in messages)


def starts_a_trace(messages: Iterable[Message]) -> bool:
    """Whether a frame not caused by a sampled one may be sampled: it carries protocol work (an
    Accept of no slot is a leader's keep-alive under a lease, its Accepted the answer)."""
    for m in messages:
        if type(m) in BACKGROUND:
            continue
        if (isinstance(m, Accept) and not m.entries) or (isinstance(m, Accepted) and not m.slots):
            continue
        return True
    return False


class Budget:
    """A token bucket of `per_s` tokens a second holding at most one second's worth. `take(True)`
    (a turn that follows a sampled frame) may empty it; `take(False)` only its upper half."""

    __slots__ = ("level", "per_s", "updated_s")

    def __init__(self, per_s: float, now_s: float) -> None:
        self.per_s = per_s
        self.level = per_s
        self.updated_s = now_s

    def take(self, following: bool, now_s: float) -> bool:
        elapsed = now_s - self.updated_s
        if elapsed > 0:
            self.level = min(self.per_s, self.level + elapsed * self.per_s)
            self.updated_s = now_s
        floor = 1.0 if following else self.per_s / 2 + 1.0  # what is left: at least half
        if self.level >= floor:
            self.level -= 1.0
            return True
        return False


# --- labels --------------------------------------------------------------------------------


KEEP_ALIVE = "keep-alive"  # an Accept of no slot (and its Accepted) is labelled so, in place of `s=`


def _slots(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def label(m: Message) -> str:
    """A short, joinable text for one message (no payloads)."""
    # An Accept of no slot (a leader's keep-alive) and its answer say so, rather than a bare "s=".
    if isinstance(m, Accept):
        e = m.entries
        if not e:  # no slot: the leader's keep-alive (starts_a_trace), not an empty proposal
            return f"Accept b={m.ballot} {KEEP_ALIVE}"
        return f"Accept b={m.ballot} s={_slots(e[0][0], e[-1][0])}"
    if isinstance(m, Accepted):
        s = m.slots
        if not s:  # the answer to a keep-alive
            return f"Accepted b={m.ballot} {KEEP_ALIVE}"
        return f"Accepted b={m.ballot} s={_slots(s[0], s[-1])}"
    if isinstance(m, Heartbeat):
        return f"Heartbeat b={m.ballot} ct={m.chosen_through}"
    if isinstance(m, (Prepare, Promise)):
        return f"{type(m).__name__} b={m.ballot}"
    if isinstance(m, Nack):
        return f"Nack promised={m.promised}"
    if isinstance(m, (Submit, FastAccept, Read)):
        return f"{type(m).__name__} n={_batch_ops(m.batch, 0)[1]}"
    if isinstance(m, Reply):
        return f"Reply n={len(m.results)}"
    if isinstance(m, Any_):  # seed 003's Any(N, I, ...): a fast round open from slot I on
        return f"Any b={m.ballot} from={m.from_slot}"
    return type(m).__name__


def labels(messages: Iterable[Message]) -> list[str]:
    return [label(m) for m in messages]


def record_label(r: Record) -> str:
    if isinstance(r, AcceptRecord):
        e = r.entries
        return f"accept b={r.ballot} s={_slots(e[0][0], e[-1][0]) if e else ''}"
    if isinstance(r, DecidedRecord):
        return f"decided s={r.slot}"
    if isinstance(r, PromiseRecord):
        return f"promise b={r.ballot}"
    if isinstance(r, RoundRecord):
        return f"round r={r.round}"
    return type(r).__name__.removesuffix("Record").lower()


def record_labels(records: list[Record]) -> list[str]:
    """Runs of decided slots are one label ("decided s=5..9"): a learner writes one per slot."""
    out: list[str] = []
    run: list[int] = []
    for r in records:
        if type(r) is DecidedRecord:
            if run and r.slot == run[-1] + 1:
                run.append(r.slot)
                continue
            if run:
                out.append(f"decided s={_slots(run[0], run[-1])}")
            run = [r.slot]
            continue
        if run:
            out.append(f"decided s={_slots(run[0], run[-1])}")
            run = []
        out.append(record_label(r))
    if run:
        out.append(f"decided s={_slots(run[0], run[-1])}")
    return out


# --- client ops ----------------------------------------------------------------------------


def _batch_ops(blob: bytes, want: int = OPS_MAX) -> tuple[list[str], int]:
    """"CLIENT:SEQ" of the first `want` commands of a client batch
    (runtime.codec.encode_client_batch), and how many commands it holds; a batch that does not
    parse has none (the learners refuse it on their own). Read as a stream from its first bytes
    (the rest only when a command is larger): a batch of a thousand commands costs its first
    `want`, not a decode of it all."""
    u = msgpack.Unpacker(raw=False)
    cut = HEAD_BYTES + want * COMMAND_BYTES
    u.feed(blob[:cut])
    rest = blob[cut:]
    ops: list[str] = []
    count = 0
    for _ in range(2):  # a second try with all of it, if the first bytes were not enough
        try:
            if not count:
                if u.read_array_header() not in (3, 4):
                    return [], 0
                cid = u.unpack()
                if type(cid) is not str:
                    return [], 0
                u.skip()  # acked_below
                count = u.read_array_header()
            while len(ops) < min(count, want):
                c = u.unpack()  # on OutOfData the unpacker rolls back to this command's start
                if type(c) is not list or not c or type(c[0]) is not int:
                    return ops, len(ops)
                ops.append(f"{cid}:{c[0]}")
            return ops, count
        except msgpack.OutOfData:
            if not rest:
                break
            u.feed(rest)
            rest = b""
        except (ValueError, msgpack.UnpackException):
            break
    return ops, max(len(ops), count)


class Ops:
    """Client ops gathered for one event: at most OPS_MAX, and whether there were more. Once it
    is full a batch is not even opened (a learner's turn may deliver hundreds)."""

    __slots__ = ("cap", "listed", "more")

    def __init__(self, cap: int = OPS_MAX) -> None:
        self.cap = cap
        self.listed: list[str] = []
        self.more = False

    def batch(self, blob: bytes) -> None:
        room = self.cap - len(self.listed)
        if room <= 0:
            self.more = True
            return
        ops, n = _batch_ops(blob, room)
        self.listed.extend(ops)
        self.more = self.more or n > len(ops)

    def results(self, peer: str, results: tuple[tuple[int, bool, Any], ...]) -> None:
        room = max(0, self.cap - len(self.listed))
        self.listed.extend(f"{peer}:{r[0]}" for r in results[:room])
        self.more = self.more or len(results) > room


def ops_of(messages: Iterable[Message], peer: str = "") -> Ops:
    """The client ops of the client-facing messages (Submit, Read, FastAccept; a Reply's are
    `peer`'s, the client it goes to or came from). An Accept's are not listed: its slots join it
    to the leader's `assign`, which lists them once rather than once per destination."""
    out = Ops()
    for m in messages:
        if isinstance(m, (Submit, FastAccept, Read)):
            out.batch(m.batch)
        elif isinstance(m, Reply):
            out.results(peer, m.results)
    return out


def value_ops(batches: Iterable[bytes], out: Ops | None = None) -> Ops:
    out = out if out is not None else Ops()
    for b in batches:
        out.batch(b)
    return out


def capped(ops: Ops, fields: dict[str, Any]) -> dict[str, Any]:
    if ops.listed:
        fields["ops"] = ops.listed
        if ops.more:
            fields["ops_more"] = True
    return fields


# --- the writer ----------------------------------------------------------------------------


class Tracer:
    """One process's trace writer and sampler. `actor` names the lines (a client shell passes
    each session's id per call instead). `clock` is the wall clock (time.time: every process of
    a host shares it, which is what lets a reader put their events on one time line)."""

    def __init__(self, path: Path, actor: str, frames_per_s: float = FRAMES_PER_S,
                 clock: Callable[[], float] = time.time, bytes_max: int = 64 << 20) -> None:
        self.path = path
        self.bytes_max = bytes_max
        self.size = 0  # of the file as it stands
        self.actor = actor
        self.clock = clock
        self.budget = Budget(frames_per_s, time.monotonic())
        self.buf: list[str] = []
        self.last_ballot = ""  # of the latest Accepted traced: what a learner's decide names
        self.lines = 0  # written
        self.dropped = 0  # not written (the disk refused them)
        # Seconds spent tracing (building, labelling and writing lines; timed by the callers with
        # perf_counter): what `paxos bench --trace` divides by the process's CPU, a cost figure a
        # shared machine's noise cannot hide. StatusReply carries it as `trace_s`.
        self.spent_s = 0.0
        self._first_s = 0.0  # when the oldest buffered line was buffered (0: none)
        self._file: TextIO | None = None

    def sample(self, following: bool) -> bool:
        return self.budget.take(following, time.monotonic())

    def event(self, kind: str, lc: int, actor: str = "", ts: float = 0.0, **fields: Any) -> None:
        line = {"ts": ts or self.clock(), "a": actor or self.actor, "e": kind, "lc": lc}
        line.update(fields)
        self.buf.append(json.dumps(line, separators=(",", ":")))

    def send(self, dest: str, lc: int, messages: list[Message], actor: str = "", dropped: bool = False) -> None:
        fields = capped(ops_of(messages, dest), {"to": dest, "m": labels(messages)})
        if dropped:
            fields["dropped"] = True
        self.event("send", lc, actor, **fields)

    def recv(self, sender: str, slc: int, lc: int, messages: list[Message], actor: str = "") -> None:
        fields = capped(ops_of(messages, actor or self.actor), {"from": sender, "slc": slc, "m": labels(messages)})
        self.event("recv", lc, actor, **fields)
        for m in messages:
            if isinstance(m, Accepted):
                self.last_ballot = str(m.ballot)

    def flush_due(self, now_s: float) -> None:
        """The end of a turn: write what is buffered once it holds FLUSH_LINES lines or its
        oldest has waited FLUSH_AFTER_S (a saturated actor traces many turns a second: one write
        for a few of them, not one each). An idle actor's tick ends a turn every tick_ms, so a
        line reaches the file within a tick and FLUSH_AFTER_S; a crash, a crash point, a stop
        and a step-mode release flush at once."""
        buf = self.buf
        if not buf:
            self._first_s = 0.0
            return
        if not self._first_s:
            self._first_s = now_s
        if len(buf) >= FLUSH_LINES or now_s - self._first_s >= FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        """Write what the turn buffered (one write); a failure drops the lines, and the next
        flush tries again with a fresh file handle."""
        self._first_s = 0.0
        if not self.buf:
            return
        t0 = time.perf_counter()
        try:
            self._write()
        finally:
            self.spent_s += time.perf_counter() - t0

    def _write(self) -> None:
        data = "\n".join(self.buf) + "\n"
        n = len(self.buf)
        self.buf = []
        try:
            if self._file is not None and self.size >= self.bytes_max:
                self.close()  # rotate: one older file is kept, so the disk holds at most twice the cap
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
                self.size = self._file.tell()
            self._file.write(data)
            self._file.flush()
            self.size += len(data)
            self.lines += n
        except OSError:
            self.dropped += n
            self.close()
            self._cut_to(self.size)

    def _cut_to(self, size: int) -> None:
        """After a failed write, truncate the file back to `size` bytes (the end of its last
        whole line): a line cut short by a full disk would read as corruption. Truncating frees
        space, so it works on a full disk; if it fails anyway the reader reports that line."""
        try:
            if self.path.exists() and self.path.stat().st_size > size:
                os.truncate(self.path, size)
        except OSError:
            pass

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def client_trace_path(logs_dir: Path) -> Path:
    return logs_dir / f"client-{os.getpid()}.trace"
