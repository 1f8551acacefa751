"""Linearizability of a key-value history: the Wing-Gong search with Lowe's memoization, run
separately on each key (P-compositionality: a history of independent registers is
linearizable iff each key's sub-history is).

Model: one register per key whose state is None (absent) or a string. get returns the state;
put sets it; append sets it to `(state or "") + element`; an ok cas needs state == expected and
sets new; a failed cas needs state != expected and changes nothing.

Which operations take part:
- ok operations must be linearized between their invoke and completion;
- failed put/get/append never happened and are dropped; a failed cas is kept as "observed
  state != expected" (stronger than dropping it);
- info operations (unknown outcome) may take effect at any time after their invoke, or never.
  They get no return event, and the search succeeds as soon as every completed operation is
  linearized, so an info operation left over simply never took effect. An info cas can only
  take effect where state == expected. An info get observes nothing and is dropped.

The search (per key): call/return entries sorted by time (calls first on ties, so touching
intervals count as concurrent) in a doubly linked list. Walking from the head, a call whose
operation the model accepts in the current state is linearized: lifted out of the list with its
return, pushed on a stack, and the walk restarts at the head; reaching a return means its
operation can no longer be placed, so the last choice is undone (unlift) and the walk continues
after it. A cache of (bitset of linearized operations, state) prunes configurations already
explored: the rest of the search depends on nothing else. The loop is iterative (no recursion
limit) and checks a time budget; running out gives `valid is None` (unknown).

Plain Wing-Gong is exponential in the number of concurrent operations, because a write placed
too early is only found wrong at some later return, after exploring every order of the ops in
between. Three sound prunes keep typical histories near linear (each argued where it is made):
- a read-only op (ok get, failed cas) the model accepts is placed without branching;
- dead reads: a write that would make a value some unplaced op needs unreachable for good is
  refused at once (register keys, and keys with only get and append; not keys mixing append
  with put or cas, which are searched plainly);
- an info put whose value nothing observes is dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from runtime.harness.check.history import Operation, by_key

# Model step kinds, precomputed per operation so the hot loop does no string comparisons.
_GET, _PUT, _APPEND, _CAS, _CAS_FAIL = range(5)

_NO: object = object()  # "the model refuses this operation in this state"


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict for one key. `valid is None` means the time budget ran out (unknown; callers
    must not count it as passing). `ops` counts every operation on the key given to the check,
    dropped ones included; `states` is the number of (linearized set, state) pairs explored."""

    key: str
    valid: bool | None
    ops: int
    states: int
    seconds: float
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    """The verdict for a whole history, one result per key; `valid` is True only if every key
    is valid."""

    results: list[KeyResult] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(r.valid is True for r in self.results)

    @property
    def keys(self) -> int:
        return len(self.results)

    @property
    def ops(self) -> int:
        return sum(r.ops for r in self.results)

    @property
    def valid_keys(self) -> int:
        return sum(1 for r in self.results if r.valid is True)

    @property
    def invalid_keys(self) -> int:
        return len(self.invalid)

    @property
    def unknown_keys(self) -> int:
        return sum(1 for r in self.results if r.valid is None)

    @property
    def invalid(self) -> list[KeyResult]:
        return [r for r in self.results if r.valid is False]


def check(ops: Sequence[Operation], budget_s_per_key: float = 10.0) -> Report:
    """Check every key of a parsed history, each with its own time budget."""
    return Report([check_key(key_ops, budget_s_per_key) for key_ops in by_key(ops).values()])


def check_key(ops: Sequence[Operation], budget_s: float = 10.0) -> KeyResult:
    """Search for a linearization of the operations on one key (all `ops` must share a key)."""
    start = time.monotonic()
    keys = {op.key for op in ops}
    if len(keys) > 1:
        raise ValueError(f"check_key needs the operations of one key, got keys {sorted(keys)!r}")
    key = next(iter(keys), "")
    live = _participants(ops)
    valid, states, detail = _search(live, start + budget_s)
    seconds = time.monotonic() - start
    if valid is None:
        detail = f"unknown: time budget of {budget_s:g}s ran out after {states} states ({len(live)} ops searched)"
    return KeyResult(key=key, valid=valid, ops=len(ops), states=states, seconds=seconds, detail=detail)


def _participants(ops: Sequence[Operation]) -> list[Operation]:
    """The operations that constrain the search, in invoke order."""
    kept: list[Operation] = []
    for op in ops:
        if op.status == "fail" and op.f != "cas":
            continue  # definitely did not happen
        if op.status == "info" and op.f == "get":
            continue  # a read with an unknown result observes nothing
        kept.append(op)
    # An info put whose value nothing could ever observe is dropped (treated as never taking
    # effect): otherwise the search tries it at every point of the history, and on a key with
    # many timeouts that multiplies the work. Sound only when nothing can tell its value from
    # the one it overwrote: no get reads it, no cas expects it, and no failed cas or append
    # (whose outcome depends on the state being "anything but X") is on the key. Then removing
    # it from any linearization leaves a linearization, since the next write overwrites it.
    if any(op.f == "append" or (op.f == "cas" and op.status == "fail") for op in kept):
        return kept
    observed: set[str | None] = set()
    for op in kept:
        if op.f == "get":
            observed.add(op.result)
        elif op.f == "cas":
            assert isinstance(op.value, tuple)
            observed.add(op.value[0])
    return [op for op in kept if not (op.f == "put" and op.status == "info" and op.value not in observed)]


def _kind(op: Operation) -> tuple[int, object, object]:
    if op.f == "get":
        return _GET, op.result, None
    if op.f == "put":
        return _PUT, op.value, None
    if op.f == "append":
        return _APPEND, op.value, None
    assert isinstance(op.value, tuple)
    return (_CAS_FAIL if op.status == "fail" else _CAS), op.value[0], op.value[1]


@dataclass(slots=True)
class _Prune:
    """Dead-read pruning: refuse a write after which some unplaced op that needs an exact
    value (ok get: what it read; ok cas: its expected value) could never find it. Sound only
    where the model says which values can still come, so two cases:

    - register keys (no append): a value can only come from a put or a cas writing exactly it.
      Moving the state away from s while an op still needs s and no unplaced op writes s
      strands that op.
    - append-only keys (only get and append): the state only grows, so every unplaced read
      must extend the state. The read values then form a prefix chain (else the history is
      invalid outright), and only the shortest unplaced read needs checking.
    Mixed keys (append with put or cas) are searched without pruning.
    """

    mode: int  # 0: none, 1: register, 2: append-only
    needs: list[object]  # per op: the exact value it needs, or _NO
    writes: list[object]  # per op (register mode): the value it writes, or _NO
    readers_left: dict[object, int]  # register mode: value -> unplaced ops needing it
    writers_left: dict[object, int]  # register mode: value -> unplaced ops writing it
    chain: list[int]  # append-only mode: reading ops, shortest value first (None first)
    chain_pos: list[int]  # per op: its index in chain, or -1
    verdict: str = ""  # set when the history is invalid before any search


def _prune_setup(live: list[Operation], kinds: list[tuple[int, object, object]], finite: list[bool]) -> _Prune:
    n = len(live)
    needs: list[object] = [_NO] * n
    writes: list[object] = [_NO] * n
    used = {kind for kind, _, _ in kinds}
    prune = _Prune(0, needs, writes, {}, {}, [], [-1] * n)
    if _APPEND not in used:
        prune.mode = 1
        for i, (kind, a, b) in enumerate(kinds):
            if kind in (_GET, _CAS) and finite[i]:
                needs[i] = a
                prune.readers_left[a] = prune.readers_left.get(a, 0) + 1
            if kind in (_PUT, _CAS):
                writes[i] = a if kind == _PUT else b
                prune.writers_left[writes[i]] = prune.writers_left.get(writes[i], 0) + 1
        for i in range(n):
            # A read of a value nothing writes (other than the initial None) can never be placed.
            if needs[i] is not _NO and needs[i] is not None and needs[i] not in prune.writers_left:
                prune.verdict = f"not linearizable: {live[i].describe()} needs a value no operation writes"
                return prune
    elif used <= {_GET, _APPEND}:
        prune.mode = 2
        for i, (kind, a, _) in enumerate(kinds):
            if kind == _GET:
                needs[i] = a
                prune.chain.append(i)
        prune.chain.sort(key=lambda i: -1 if needs[i] is None else len(needs[i]))  # type: ignore[arg-type]
        for pos, i in enumerate(prune.chain):
            prune.chain_pos[i] = pos
        values = [(i, needs[i]) for i in prune.chain if needs[i] is not None]
        for (i, shorter), (j, longer) in pairwise(values):
            if not longer.startswith(shorter):  # type: ignore[attr-defined]
                prune.verdict = (
                    f"not linearizable: on a key with only appends the values read must be prefixes of one "
                    f"another, but {live[i].describe()} and {live[j].describe()} disagree"
                )
                return prune
    return prune


def _search(live: list[Operation], deadline: float) -> tuple[bool | None, int, str]:
    """Returns (valid, or None if out of time; states explored; detail)."""
    n = len(live)
    finite = [not math.isinf(op.complete_time) for op in live]
    n_finite = sum(finite)
    if n_finite == 0:
        return True, 0, "linearizable (no completed operations to place)"
    kinds = [_kind(op) for op in live]
    readonly = [kind in (_GET, _CAS_FAIL) for kind, _, _ in kinds]
    prune = _prune_setup(live, kinds, finite)
    if prune.verdict:
        return False, 0, prune.verdict
    mode, needs, writes = prune.mode, prune.needs, prune.writes
    readers_left, writers_left = prune.readers_left, prune.writers_left
    chain, chain_pos = prune.chain, prune.chain_pos
    n_chain = len(chain)
    lo = 0  # append-only mode: position in chain of the shortest unplaced read

    # Entries: node 0 is the sentinel of a circular doubly linked list, nodes 1..m the events.
    # Sorting key (time, 0 for call / 1 for return): on equal times calls come first, so an
    # operation that completes at the instant another is invoked is treated as concurrent with it.
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(live):
        events.append((op.invoke_time, 0, i))
        if finite[i]:
            events.append((op.complete_time, 1, i))
    events.sort()
    m = len(events)
    nxt = [*range(1, m + 1), 0]
    prv = [m, *range(m)]
    is_call = [False] * (m + 1)
    node_op = [-1] * (m + 1)
    ret_node = [0] * n  # 0: no return entry (info)
    for node, (_, kind, i) in enumerate(events, 1):
        node_op[node] = i
        if kind == 0:
            is_call[node] = True
        else:
            ret_node[i] = node
    bits = [1 << i for i in range(n)]

    linearized = 0
    state: object = None
    placed = 0  # completed (finite) operations linearized so far
    stack: list[tuple[int, object]] = []  # (call node, state before it)
    cache: set[tuple[int, object]] = set()
    entry = nxt[0]
    steps = 0
    # Witness: the deepest stack seen when the walk hit a return it could not get past.
    best_depth = -1
    best_prefix: list[int] = []
    best_block = -1
    best_state: object = None
    refused: dict[int, object] = {}  # op -> the needed value its write would have made unreachable

    while placed < n_finite:
        steps += 1
        if not steps & 1023 and time.monotonic() > deadline:
            return None, len(cache), ""
        if is_call[entry]:
            i = node_op[entry]
            kind, a, b = kinds[i]
            # The register model, inlined: this is the hot loop.
            if kind == _GET:
                new = state if state == a else _NO
            elif kind == _PUT:
                new = a
            elif kind == _APPEND:
                new = (state or "") + a
            elif kind == _CAS:
                new = b if state == a else _NO
            else:
                new = state if state != a else _NO
            if new is _NO:
                entry = nxt[entry]
                continue
            if new != state and mode:
                if mode == 1:
                    stranded = (
                        readers_left.get(state, 0) - (needs[i] == state) > 0 and not writers_left.get(state, 0)
                    )
                    lost = state
                elif lo < n_chain:
                    lost = needs[chain[lo]]
                    # Both are strings here (append chains); the hot loop types its states loosely.
                    stranded = lost is None or not lost.startswith(new)  # type: ignore[attr-defined]
                else:
                    stranded = False  # every read is placed: nothing left to strand
                if stranded:
                    refused[i] = lost
                    entry = nxt[entry]
                    continue
            after = linearized | bits[i]
            config = (after, new)
            if config not in cache:
                cache.add(config)
                stack.append((entry, state))
                state = new
                linearized = after
                if finite[i]:
                    placed += 1
                if mode == 1:
                    if needs[i] is not _NO:
                        readers_left[needs[i]] -= 1
                    if writes[i] is not _NO:
                        writers_left[writes[i]] -= 1
                elif mode == 2 and chain_pos[i] == lo:
                    lo += 1
                    while lo < n_chain and linearized & bits[chain[lo]]:
                        lo += 1
                # lift: unlink the call and its return; their own links stay for unlift.
                nxt[prv[entry]] = nxt[entry]
                prv[nxt[entry]] = prv[entry]
                r = ret_node[i]
                if r:
                    nxt[prv[r]] = nxt[r]
                    prv[nxt[r]] = prv[r]
                entry = nxt[0]
                continue
            if not readonly[i]:
                entry = nxt[entry]
                continue
            # A read-only op the model accepts here, whose successor configuration already
            # failed: this configuration fails too (see the backtracking below).
        elif entry and len(stack) > best_depth:
            # A return: its op can no longer be placed after this prefix. Keep the deepest such
            # prefix as the witness. (Entry 0, the end of the list, is reachable only when every
            # unplaced op is info, which the loop condition already excludes.)
            best_depth = len(stack)
            best_prefix = [node_op[c] for c, _ in stack]
            best_block = node_op[entry]
            best_state = state
        # Backtrack: undo the last choice and go on with the calls after it. A read-only op (ok
        # get, failed cas) needs no alternative: where the model accepts it, placing it at once
        # is as good as placing it later (it changes no state, and its call being reachable means
        # no unplaced op returned before it was invoked), so if that failed, so did the
        # configuration before it, and the undoing goes on to the choice before.
        while stack:
            entry, state = stack.pop()
            i = node_op[entry]
            linearized ^= bits[i]
            if finite[i]:
                placed -= 1
            if mode == 1:
                if needs[i] is not _NO:
                    readers_left[needs[i]] += 1
                if writes[i] is not _NO:
                    writers_left[writes[i]] += 1
            elif mode == 2 and chain_pos[i] >= 0:
                lo = min(lo, chain_pos[i])
            # unlift: relink in the reverse order of the lift.
            r = ret_node[i]
            if r:
                nxt[prv[r]] = r
                prv[nxt[r]] = r
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            if not readonly[i]:
                entry = nxt[entry]
                break
        else:
            return False, len(cache), _witness(live, best_prefix, best_block, best_state, refused, needs)
    return True, len(cache), f"linearizable ({n} ops placed or dropped, {len(cache)} states)"


def _witness(
    live: list[Operation],
    prefix: list[int],
    block: int,
    state: object,
    refused: dict[int, object],
    needs: list[object],
) -> str:
    shown = prefix[-5:]
    lines = [
        f"not linearizable: the longest linearizable prefix found has {len(prefix)} ops"
        + (f" (last {len(shown)} shown)" if len(prefix) > len(shown) else ""),
    ]
    lines += [f"  {live[i].describe()}" for i in shown]
    lines.append(f"  state after it: {state!r}")
    if block >= 0:
        lines.append(f"then no order places {live[block].describe()} before it completes")
        if block in refused:
            # The block is a write refused by the dead-read pruning: name the op it would strand.
            lost = refused[block]
            placed = set(prefix)
            needy = [op for i, op in enumerate(live) if needs[i] == lost and i not in placed and i != block]
            if needy:
                lines.append(f"  (placing it strands {needy[0].describe()}: the value it needs could no longer come)")
    return "\n".join(lines)
