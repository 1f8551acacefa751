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
_OK_NONE = (True, None)
_OK_TRUE = (True, True)
_OK_FALSE = (True, False)
ARITY = {"put": 2, "get": 1, "cas": 3, "append": 2, "delete": 1}


class BadBatch(ValueError):
    """A client batch that is not of the agreed shape; it is skipped as a whole."""


class BadSnapshot(ValueError):
    """A snapshot whose content is not of the agreed shape; it is not installed."""


@dataclass(frozen=True, slots=True)
class ClientBatch:
    client_id: str
    acked_below: int
    commands: tuple[tuple[Any, ...], ...]  # (seq, op, key, *args)
    reply_by: str = ""  # the learner that answers ("" : every learner)


def parse_batch(raw: Any) -> ClientBatch:
    """Check the outer shape of a decoded batch: [client_id, acked_below, [command, ...]] and,
    optionally, the name of the learner that should answer it."""
    if type(raw) not in (list, tuple) or len(raw) not in (3, 4):
        raise BadBatch("batch must be [client_id, acked_below, commands, reply_by?]")
    client_id, acked_below, commands = raw[:3]
    reply_by = raw[3] if len(raw) == 4 else ""
    if type(reply_by) is not str:
        raise BadBatch("reply_by must be a string")
    if type(client_id) is not str or not 0 < len(client_id) <= 64:
        raise BadBatch("client_id must be a string of 1-64 characters")
    if type(acked_below) is not int or acked_below < 0:
        raise BadBatch("acked_below must be a non-negative integer")
    if type(commands) not in (list, tuple):
        raise BadBatch("commands must be a list")
    return ClientBatch(client_id, acked_below, tuple(tuple(c) if type(c) in (list, tuple)
                                                     else (c,) for c in commands), reply_by)


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
        results = session.results
        acked_below = batch.acked_below
        if acked_below > session.acked_below:
            session.acked_below = acked_below
            # Results go in in (nearly) increasing seq order: forget from the front. A retry
            # answered out of order may linger a while; session_results_max bounds it.
            while results:
                first = next(iter(results))
                if first >= acked_below:
                    break
                del results[first]
        else:
            acked_below = session.acked_below
        replies: list[tuple[int, bool, Any]] = []
        execute = self._execute
        log = self.applied_log
        for command in batch.commands:
            seq = command[0]
            if type(seq) is not int or seq < acked_below:
                continue  # no seq to answer to, or the client already holds this result
            cached = results.get(seq)
            if cached is not None:
                replies.append((seq, cached[0], cached[1]))
                continue
            outcome = execute(command)
            results[seq] = outcome
            if log is not None:
                log.append((batch.client_id, seq))
            replies.append((seq, outcome[0], outcome[1]))
        if len(results) > self.session_results_max:
            for seq in sorted(results)[: len(results) - self.session_results_max]:
                del results[seq]
        return replies

    def _fits(self, text: Any, limit: int) -> bool:
        if type(text) is not str:
            return False
        if text.isascii():  # O(1) in CPython: a flag of the string
            return len(text) <= limit
        return len(text) <= limit and len(text.encode("utf-8", "surrogatepass")) <= limit

    def _problem(self, what: str, text: Any, limit: int) -> tuple[bool, Any]:
        if type(text) is not str:
            return False, f"bad_command: {what} must be a string"
        return False, f"bad_command: {what} larger than {limit} bytes"

    def _execute(self, command: tuple[Any, ...]) -> tuple[bool, Any]:
        """One command. The common cases come first and build no text: errors are rare."""
        n = len(command)
        if n < 3:
            return False, "bad_command: too few fields"
        op, key = command[1], command[2]
        # The size checks are inlined for ASCII text (the common case): this runs per command.
        if not (type(key) is str and key and (len(key) <= self.key_bytes_max if key.isascii()
                                              else self._fits(key, self.key_bytes_max))):
            return (False, "bad_command: key must not be empty") if key == "" else \
                self._problem("key", key, self.key_bytes_max)
        data = self.data
        if op == "put" and n == 4:
            value = command[3]
            if not (type(value) is str and (len(value) <= self.value_bytes_max if value.isascii()
                                            else self._fits(value, self.value_bytes_max))):
                return self._problem("value", value, self.value_bytes_max)
            data[key] = value
            self.applied_commands += 1
            return _OK_NONE
        if op == "get" and n == 3:
            self.applied_commands += 1
            return True, data.get(key)
        arity = ARITY.get(op) if type(op) is str else None
        if arity is None:
            return False, f"bad_command: unknown op {op!r}"
        if n != 2 + arity:
            return False, f"bad_command: {op} takes {arity} arguments"
        self.applied_commands += 1
        if op == "append":
            value = command[3]
            if not self._fits(value, self.value_bytes_max):
                return self._problem("value", value, self.value_bytes_max)
            new = data.get(key, "") + value
            if not self._fits(new, self.value_bytes_max):
                return False, f"value_too_large: the result would exceed {self.value_bytes_max} bytes"
            data[key] = new
            return True, new
        if op == "cas":
            old, new = command[3], command[4]
            if old is not None and not self._fits(old, self.value_bytes_max):
                return self._problem("expected value", old, self.value_bytes_max)
            if not self._fits(new, self.value_bytes_max):
                return self._problem("new value", new, self.value_bytes_max)
            if data.get(key) != old:
                return _OK_FALSE
            data[key] = new
            return _OK_TRUE
        # delete
        data.pop(key, None)
        return _OK_NONE

    # --- snapshots -------------------------------------------------------------------------

    def snapshot_state(self) -> list[Any]:
        """Everything that applying the log built: the keys, the exactly-once sessions (in
        eviction order), and the count of applied commands. Plain containers, for the codec;
        they reference the live state (a shell that writes them later forks or copies)."""
        sessions = [[client, s.acked_below, [x for seq, (ok, res) in s.results.items() for x in (seq, ok, res)]]
                    for client, s in self.sessions.items()]
        return [self.applied_commands, self.data, sessions]

    def restore(self, state: Any) -> None:
        """The inverse of `snapshot_state`; raises BadSnapshot, changing nothing, if `state` is
        not of that shape."""
        if type(state) not in (list, tuple) or len(state) != 3:
            raise BadSnapshot("a key-value snapshot is [applied_commands, data, sessions]")
        applied, data, raw_sessions = state
        if type(applied) is not int or not isinstance(data, dict) or type(raw_sessions) not in (list, tuple):
            raise BadSnapshot("a key-value snapshot is [int, map, list]")
        if not all(type(k) is str and type(v) is str for k, v in data.items()):
            raise BadSnapshot("keys and values are strings")
        sessions: OrderedDict[str, Session] = OrderedDict()
        for entry in raw_sessions:
            if type(entry) not in (list, tuple) or len(entry) != 3 or type(entry[0]) is not str \
                    or type(entry[1]) is not int or type(entry[2]) not in (list, tuple) or len(entry[2]) % 3:
                raise BadSnapshot("a session is [client_id, acked_below, [seq, ok, result, ...]]")
            flat = entry[2]
            results = {flat[i]: (flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)}
            sessions[entry[0]] = Session(entry[1], results)
        self.applied_commands = applied
        self.data = dict(data)
        self.sessions = sessions

    def digest(self) -> str:
        """A hash of the key-value data, equal on learners that applied the same log."""
        h = hashlib.sha256()
        for key in sorted(self.data):
            k = key.encode("utf-8", "surrogatepass")
            v = self.data[key].encode("utf-8", "surrogatepass")
            h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
        return h.hexdigest()[:16]
