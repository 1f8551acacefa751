"""The key-value state machine that learners apply the log to, with exactly-once sessions.

Every command carries `(client_id, seq)`; a retried command applies once and every retry gets
the first result (seed 004: message ids against duplicates). A client batch also carries
`acked_below`: the client holds the results of all its commands below it, so the session can
forget them. Validation lives here, not only in the client, because a chosen batch must apply
the same way on every learner whatever bytes it holds.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

OPS = ("put", "get", "cas", "append", "delete")
ARITY = {"put": 2, "get": 1, "cas": 3, "append": 2, "delete": 1}


class BadBatch(ValueError):
    """A client batch that is not of the agreed shape; it is skipped as a whole."""


@dataclass(frozen=True, slots=True)
class ClientBatch:
    client_id: str
    acked_below: int
    commands: tuple[tuple[Any, ...], ...]  # (seq, op, key, *args)


def parse_batch(raw: Any) -> ClientBatch:
    """Check the outer shape of a decoded batch: [client_id, acked_below, [command, ...]]."""
    if type(raw) not in (list, tuple) or len(raw) != 3:
        raise BadBatch("batch must be [client_id, acked_below, commands]")
    client_id, acked_below, commands = raw
    if type(client_id) is not str or not 0 < len(client_id) <= 64:
        raise BadBatch("client_id must be a string of 1-64 characters")
    if type(acked_below) is not int or acked_below < 0:
        raise BadBatch("acked_below must be a non-negative integer")
    if type(commands) not in (list, tuple):
        raise BadBatch("commands must be a list")
    return ClientBatch(client_id, acked_below, tuple(tuple(c) if type(c) in (list, tuple)
                                                     else (c,) for c in commands))


@dataclass(slots=True)
class Session:
    acked_below: int = 0
    results: dict[int, tuple[bool, Any]] = field(default_factory=dict)


class KVStore:
    def __init__(self, key_bytes_max: int, value_bytes_max: int, sessions_max: int = 100_000,
                 session_results_max: int = 100_000) -> None:
        self.key_bytes_max = key_bytes_max
        self.value_bytes_max = value_bytes_max
        self.sessions_max = sessions_max
        self.session_results_max = session_results_max
        self.data: dict[str, str] = {}
        # Least recently used first; eviction order depends only on the log, so it is the
        # same on every learner.
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.applied_commands = 0
        # Observers (the simulator) may set a list here: every executed (client_id, seq) is
        # appended, retries answered from the cache are not.
        self.applied_log: list[tuple[str, int]] | None = None

    def apply_batch(self, batch: ClientBatch) -> list[tuple[int, bool, Any]]:
        """Apply one client batch; returns `(seq, ok, result)` for every command the client
        may still be waiting for (cached results for retries included)."""
        sessions = self.sessions
        session = sessions.get(batch.client_id)
        if session is None:
            session = sessions[batch.client_id] = Session()
            if len(sessions) > self.sessions_max:
                sessions.popitem(last=False)
        else:
            sessions.move_to_end(batch.client_id)
        if batch.acked_below > session.acked_below:
            session.acked_below = batch.acked_below
            stale = [seq for seq in session.results if seq < batch.acked_below]
            for seq in stale:
                del session.results[seq]
        replies: list[tuple[int, bool, Any]] = []
        results = session.results
        for command in batch.commands:
            seq = command[0]
            if type(seq) is not int or seq < 0:
                continue  # no seq to answer to; nothing else is safe to do
            if seq < session.acked_below:
                continue  # the client already holds this result
            cached = results.get(seq)
            if cached is not None:
                replies.append((seq, cached[0], cached[1]))
                continue
            ok, result = self._execute(command)
            results[seq] = (ok, result)
            if self.applied_log is not None:
                self.applied_log.append((batch.client_id, seq))
            if len(results) > self.session_results_max:
                del results[min(results)]
            replies.append((seq, ok, result))
        return replies

    def _check_str(self, what: str, text: Any, limit: int) -> str | None:
        if type(text) is not str:
            return f"{what} must be a string"
        if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
            return f"{what} larger than {limit} bytes"
        return None

    def _execute(self, command: tuple[Any, ...]) -> tuple[bool, Any]:
        if len(command) < 3:
            return False, "bad_command: too few fields"
        op, key = command[1], command[2]
        arity = ARITY.get(op) if type(op) is str else None
        if arity is None:
            return False, f"bad_command: unknown op {op!r}"
        if len(command) != 2 + arity:
            return False, f"bad_command: {op} takes {arity} arguments"
        problem = self._check_str("key", key, self.key_bytes_max)
        if problem is None and key == "":
            problem = "key must not be empty"
        if problem is not None:
            return False, f"bad_command: {problem}"
        data = self.data
        self.applied_commands += 1
        if op == "get":
            return True, data.get(key)
        if op == "put":
            problem = self._check_str("value", command[3], self.value_bytes_max)
            if problem:
                return False, f"bad_command: {problem}"
            data[key] = command[3]
            return True, None
        if op == "append":
            problem = self._check_str("value", command[3], self.value_bytes_max)
            if problem:
                return False, f"bad_command: {problem}"
            new = data.get(key, "") + command[3]
            if len(new.encode("utf-8", "surrogatepass")) > self.value_bytes_max:
                return False, f"value_too_large: the result would exceed {self.value_bytes_max} bytes"
            data[key] = new
            return True, new
        if op == "cas":
            old, new = command[3], command[4]
            if old is not None:
                problem = self._check_str("expected value", old, self.value_bytes_max)
            problem = problem or self._check_str("new value", new, self.value_bytes_max)
            if problem:
                return False, f"bad_command: {problem}"
            if data.get(key) != old:
                return True, False
            data[key] = new
            return True, True
        # delete
        data.pop(key, None)
        return True, None

    def digest(self) -> str:
        """A hash of the key-value data, equal on learners that applied the same log."""
        h = hashlib.sha256()
        for key in sorted(self.data):
            k = key.encode("utf-8", "surrogatepass")
            v = self.data[key].encode("utf-8", "surrogatepass")
            h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
        return h.hexdigest()[:16]
