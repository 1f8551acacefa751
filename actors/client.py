"""The client's protocol as a sans-IO core: which proposer to send to, how commands are batched,
when they are sent again, and what an answer means. `runtime.client.Client` wraps it in asyncio
and ZeroMQ; the simulator drives the very same core on virtual time, so the retry logic it tests
is the one that ships.

Every command gets the next `seq` of this client; a retry reuses it, so the state machine
applies it once whatever the number of retries. Everything submitted between two flushes
travels in one Submit (batching). The core never reads a clock: every entry takes `now`
(seconds, from whatever clock the shell keeps) and answers with a `ClientReady`: frames to
send, results to hand out, and operations whose deadline passed (their outcome is unknown:
they may or may not have been applied).

Fast mode (actors/fast.py): a first attempt goes to every acceptor at once (`FastAccept`, seed
003's `Accept!`), one message delay less than through the leader; retries go to the leader as a
Submit (a fast leader forwards it the same way). An acceptor that has no fast round open answers
`no_fast_round`: the client then uses the leader for a second, and tries fast again after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.messages import FastAccept, Hello, Message, Read, Redirect, Reply, Submit


@dataclass(frozen=True, slots=True)
class ClientParams:
    timeout_s: float = 10.0  # after this long without a result the outcome is unknown
    retry_s: float = 0.3  # first resend after this long; then 2x, 4x ... up to 2 s
    batch_bytes_max: int = 1024 * 1024  # the proposers' limit for one Submit
    outstanding_max: int = 100_000
    fast: bool = False  # fast mode: first attempts straight to the acceptors
    fast_off_s: float = 1.0  # after a `no_fast_round`, use the leader this long


@dataclass(slots=True)
class Op:
    seq: int
    command: list[Any]  # [seq, op, key, *args]
    deadline: float
    size: int  # an estimate of its encoded bytes
    due: float = 0.0  # when it is sent again unless answered
    tries: int = 0
    read: str = ""  # "lease": a linearizable read for the leader; "stale": for a learner (actors/lease.py)
    group: Any = None  # the shell's: who waits for it when one call submitted many (`submit_many`)


@dataclass(slots=True)
class ClientReady:
    # (destination, messages, the operations they carry: handed back through `unsent` if the
    # frame could not leave)
    send: list[tuple[str, list[Message], list[Op]]] = field(default_factory=list)
    results: list[tuple[Op, bool, Any]] = field(default_factory=list)  # (op, ok, result or error text)
    expired: list[Op] = field(default_factory=list)


class TooManyOutstanding(RuntimeError):
    pass


class ClientCore:
    def __init__(self, client_id: str, proposers: list[str], learners: list[str],
                 encode_batch: Callable[[str, int, list[list[Any]], str], bytes],
                 params: ClientParams | None = None, acceptors: list[str] | None = None) -> None:
        self.client_id = client_id
        self.acceptors = list(acceptors or [])
        self.fast_off_until = 0.0
        self.proposers = list(proposers)
        self.learners = list(learners)
        self.encode_batch = encode_batch
        self.params = params or ClientParams()
        self.target = 0  # index of the proposer we believe leads
        self.ops: dict[int, Op] = {}  # by seq, in creation order (so the first is the oldest)
        self.to_send: list[Op] = []
        self.next_seq = 1
        self.learners_ready: set[str] = set()
        self.reply_by = ""  # the learner we ask to answer: the last one that did
        # Spread clients over learners: each prefers one, by its id.
        self.preferred_learner = self.learners[sum(client_id.encode()) % len(self.learners)]
        self.last_reply = 0.0
        self.last_rotate = float("-inf")
        self.hold_until = 0.0  # after "busy" or "no leader": wait before sending again
        self.stats = {"sent": 0, "resent": 0, "redirects": 0, "busy": 0, "rotations": 0, "fast_sent": 0,
                      "fast_refused": 0}

    def set_members(self, proposers: list[str], learners: list[str], acceptors: list[str] | None = None) -> None:
        """Whom to talk to now (a membership change): the leader we believe in stays targeted if
        it is still a proposer; the learners we heard from stay ready."""
        if not proposers or not learners:
            return
        leader = self.proposers[self.target] if self.proposers else ""
        self.proposers = list(proposers)
        self.learners = list(learners)
        if acceptors:
            self.acceptors = list(acceptors)
        self.target = self.proposers.index(leader) if leader in self.proposers else 0
        self.learners_ready &= set(learners)
        if self.preferred_learner not in learners:
            self.preferred_learner = learners[sum(self.client_id.encode()) % len(learners)]
        if self.reply_by not in learners:
            self.reply_by = next(iter(self.learners_ready), "")

    # --- calls -----------------------------------------------------------------------------

    def submit(self, command: list[Any], now: float) -> Op:
        """Queue one command (`[op, key, *args]`); it leaves at the next `flush`."""
        if len(self.ops) >= self.params.outstanding_max:
            raise TooManyOutstanding(f"more than {self.params.outstanding_max} operations outstanding")
        seq = self.next_seq
        self.next_seq += 1
        size = 32 + sum(len(x) for x in command if type(x) is str)
        op = Op(seq, [seq, *command], now + self.params.timeout_s, size)
        self.ops[seq] = op
        self.to_send.append(op)
        return op

    def submit_many(self, commands: list[list[str]], now: float, read: str = "", group: Any = None) -> list[Op]:
        """Queue several commands at once (`get_many`, `put_many`; every argument a string): each
        is an operation of its own, with its own seq (a write is applied once, retried or not),
        and they leave together at the next `flush`. All or none: `TooManyOutstanding` before any
        is queued. `read` as `Op.read`; `group` is stored in each (the shell's handle on the one
        call that waits for them all)."""
        if len(self.ops) + len(commands) > self.params.outstanding_max:
            raise TooManyOutstanding(f"more than {self.params.outstanding_max} operations outstanding")
        deadline = now + self.params.timeout_s
        seq = self.next_seq
        self.next_seq += len(commands)
        ops = self.ops
        out = []
        # One loop and no call of ours per command: per-op overhead is what a batched call saves.
        for command in commands:
            op = Op(seq, [seq, *command], deadline, 32 + sum(map(len, command)), 0.0, 0, read, group)
            ops[seq] = op
            out.append(op)
            seq += 1
        self.to_send.extend(out)
        return out

    def forget(self, seq: int) -> None:
        """The caller stopped waiting (answered, expired or cancelled)."""
        self.ops.pop(seq, None)

    @property
    def connected(self) -> bool:
        return bool(self.learners_ready)

    # --- sending ---------------------------------------------------------------------------

    def wants_flush(self, now: float) -> bool:
        return bool(self.to_send) and now >= self.hold_until

    def flush(self, now: float, ready: ClientReady | None = None) -> ClientReady:
        """Everything queued, in one Submit frame to the proposer we believe leads."""
        ready = ready or ClientReady()
        if not self.to_send or now < self.hold_until:
            return ready  # the timer sends them when the hold ends
        ops = [op for op in self.to_send if op.seq in self.ops]
        self.to_send = []
        if ops and any(op.read for op in ops):
            ops = self._flush_reads(ops, now, ready)
        if not ops:
            return ready
        p = self.params
        acked_below = next(iter(self.ops), self.next_seq)
        # One learner answers a first attempt; a retry asks every learner (the one we named may
        # be down).
        first = not any(op.tries for op in ops)
        reply_by = self.reply_by if first else ""
        limit = max(p.batch_bytes_max - 1024, p.batch_bytes_max // 2)
        blobs: list[bytes] = []
        commands: list[list[Any]] = []
        size = 0
        first_due = now + p.retry_s
        for op in ops:
            op.tries += 1
            # Resend with backoff, per operation: 1x, 2x, 4x ... the retry interval, at most 2 s.
            op.due = first_due if op.tries == 1 else now + min(p.retry_s * (1 << min(op.tries - 1, 6)), 2.0)
            if commands and size + op.size > limit:
                blobs.append(self.encode_batch(self.client_id, acked_below, commands, reply_by))
                commands, size = [], 0
            commands.append(op.command)
            size += op.size
        blobs.append(self.encode_batch(self.client_id, acked_below, commands, reply_by))
        self.stats["sent"] += len(ops)
        if p.fast and first and self.acceptors and now >= self.fast_off_until:
            # A first attempt: to every acceptor at once (the ops ride with the first frame only,
            # so a frame that cannot leave hands them back once).
            self.stats["fast_sent"] += len(ops)
            frames: list[Message] = [FastAccept(b) for b in blobs]
            for i, acceptor in enumerate(self.acceptors):
                ready.send.append((acceptor, frames, ops if i == 0 else []))
            return ready
        ready.send.append((self.proposers[self.target], [Submit(b) for b in blobs], ops))
        return ready

    # --- reads without a log write (actors/lease.py) ---------------------------------------

    def read(self, key: str, now: float, stale: bool = False) -> Op:
        """Queue one `get` that costs no log write: linearizable through the leader (its lease,
        or a round), or, `stale`, answered by a learner from whatever it holds. It leaves at the
        next `flush`, in one Read with every other read queued (batched like writes)."""
        op = self.submit(["get", key], now)
        op.read = "stale" if stale else "lease"
        return op

    def _read_learner(self, tries: int) -> str:
        """The learner that answers: the last one that did; on a retry the next one along."""
        learners = self.learners
        base = self.reply_by if self.reply_by in learners else self.preferred_learner
        if tries <= 1:
            return base
        ready = [n for n in learners if n in self.learners_ready] or learners
        start = ready.index(base) if base in ready else 0
        return ready[(start + tries - 1) % len(ready)]

    def _flush_reads(self, ops: list[Op], now: float, ready: ClientReady) -> list[Op]:
        """Send the reads among `ops` (one Read per destination and size limit); the rest back."""
        p = self.params
        limit = max(p.batch_bytes_max - 1024, p.batch_bytes_max // 2)
        groups: dict[str, list[Op]] = {"lease": [], "stale": []}
        rest = []
        for op in ops:
            if op.read:
                groups[op.read].append(op)
            else:
                rest.append(op)
        for kind, group in groups.items():
            if not group:
                continue
            tries = 0
            first_due = now + p.retry_s
            blobs: list[bytes] = []
            commands: list[list[Any]] = []
            size = 0
            for op in group:
                op.tries += 1
                op.due = first_due if op.tries == 1 else now + min(p.retry_s * (1 << min(op.tries - 1, 6)), 2.0)
                if op.tries > tries:
                    tries = op.tries
                if commands and size + op.size > limit:
                    blobs.append(self.encode_batch(self.client_id, 0, commands, ""))
                    commands, size = [], 0
                commands.append(op.command)
                size += op.size
            blobs.append(self.encode_batch(self.client_id, 0, commands, ""))
            learner = self._read_learner(tries)
            if kind == "lease":
                ready.send.append((self.proposers[self.target], [Read(learner, b) for b in blobs], group))
            else:
                ready.send.append((learner, [Read("", b) for b in blobs], group))
            self.stats["sent"] += len(group)
        return rest

    def unsent(self, ops: list[Op], now: float) -> None:
        """The shell could not hand a frame to the network (not connected, queue full): try the
        next proposer soon."""
        self.stats["sent"] -= len(ops)
        self._rotate(now)
        self.to_send.extend(ops)
        self._hold(now, 0.02)

    def _resend(self, ops: list[Op]) -> None:
        self.stats["resent"] += len(ops)
        self.to_send.extend(ops)

    def _rotate(self, now: float) -> None:
        if now - self.last_rotate < 0.01:
            return
        self.last_rotate = now
        self.target = (self.target + 1) % len(self.proposers)
        self.stats["rotations"] += 1

    def _hold(self, now: float, seconds: float) -> None:
        self.hold_until = max(self.hold_until, now + seconds)

    # --- time ------------------------------------------------------------------------------

    def timer(self, now: float, ready: ClientReady | None = None) -> ClientReady:
        """Say hello to learners that have not answered yet, give up on operations past their
        deadline, and queue again those that fell due. The shell calls `flush` afterwards when
        `wants_flush`."""
        ready = ready or ClientReady()
        if len(self.learners_ready) < len(self.learners):
            for learner in self.learners:
                if learner not in self.learners_ready:
                    ready.send.append((learner, [Hello()], []))
        overdue = []
        for op in list(self.ops.values()):
            if now >= op.deadline:
                del self.ops[op.seq]
                ready.expired.append(op)
            elif op.due and now >= op.due:
                overdue.append(op)
        if overdue:
            if now - self.last_reply > self.params.retry_s:
                self._rotate(now)  # nothing at all came back lately: the leader may be gone
            self._resend(overdue)
        return ready

    # --- receiving -------------------------------------------------------------------------

    def receive(self, sender: str, message: Message, now: float, ready: ClientReady | None = None) -> ClientReady:
        ready = ready or ClientReady()
        if isinstance(message, Reply):
            self.reply_by = sender
            self.last_reply = now
            ops = self.ops
            for seq, ok, result in message.results:
                op = ops.pop(seq, None)
                if op is not None:
                    ready.results.append((op, ok, result))
        elif isinstance(message, Redirect):
            self._on_redirect(sender, message, now)
        elif isinstance(message, Hello):
            self.learners_ready.add(sender)
            if not self.reply_by or sender == self.preferred_learner:
                self.reply_by = sender
        return ready

    def _on_redirect(self, sender: str, m: Redirect, now: float) -> None:
        self.stats["redirects"] += 1
        if sender in self.acceptors:
            # A fast attempt refused: no round open there (a leader not elected yet, or classic
            # rounds), or its window is full. Through the leader for a while, from now.
            self.stats["fast_refused"] += 1
            if now < self.fast_off_until:
                return  # the other acceptors say the same
            self.fast_off_until = now + (0.05 if m.reason == "busy" else self.params.fast_off_s)
            if m.leader in self.proposers:
                self.target = self.proposers.index(m.leader)
            self.to_send = []
            self._resend(list(self.ops.values()))
            return
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
        self.to_send = []
        self._resend(list(self.ops.values()))
