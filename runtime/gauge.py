"""The fault-tolerance gauge of `paxos status --watch`, in words (issue 14): how many acceptor
failures the cluster can take before writes stop, given how many acceptors of the membership in
force are up and the mode's quorums (actors/fast.py).

Pure: numbers in, a level and a sentence out, so the wording is tested without a cluster.

Classic mode needs a majority (q = n // 2 + 1) for every write. Fast mode has two thresholds:
a fast round needs a fast quorum (qf, larger), and below it writes still go on through the
leader's recovery and classic rounds, which need only a majority; so the sentence says both.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.fast import FAST, classic_quorum, fast_quorum

OK, WARN, DOWN = "ok", "warn", "down"  # the level a view colors the sentence by


@dataclass(frozen=True, slots=True)
class Gauge:
    level: str  # OK: it survives another failure; WARN: the next one stops writes; DOWN: stopped
    text: str


def _failures(k: int) -> str:
    return f"{k} more failure" + ("" if k == 1 else "s")


def _returning(k: int) -> str:
    return "one returns" if k == 1 else f"{k} more return"


def fault_tolerance(up: int, total: int, mode: str = "classic") -> Gauge:
    """The gauge for `up` acceptors answering of the `total` in the membership in force.

    >>> fault_tolerance(3, 3).text
    '3 of 3 acceptors up: tolerates 1 more failure'
    >>> fault_tolerance(2, 3).text
    '2 of 3 acceptors up: the next acceptor failure stops writes'
    >>> fault_tolerance(1, 3).text
    '1 of 3 acceptors up: writes stop until one returns'
    """
    if total <= 0:
        return Gauge(DOWN, "no acceptors in the membership in force")
    up = max(0, min(up, total))
    head = f"{up} of {total} acceptors up"
    q = classic_quorum(total)
    spare = up - q  # failures a majority survives
    if spare < 0:
        return Gauge(DOWN, f"{head}: writes stop until {_returning(-spare)}")
    if mode != FAST:
        if spare == 0:
            return Gauge(WARN, f"{head}: the next acceptor failure stops writes")
        return Gauge(OK, f"{head}: tolerates {_failures(spare)}")
    fast_spare = up - fast_quorum(total)
    if spare == 0:
        tail = "the next acceptor failure stops writes"
        if fast_spare < 0:
            return Gauge(WARN, f"{head}: no fast quorum (writes go through classic rounds); {tail}")
        return Gauge(WARN, f"{head}: {tail}")
    if fast_spare < 0:
        return Gauge(WARN, f"{head}: no fast quorum (writes go through classic rounds); "
                           f"tolerates {_failures(spare)}")
    if fast_spare == 0:
        return Gauge(OK, f"{head}: the next failure ends fast rounds; tolerates {_failures(spare)} "
                         f"before writes stop")
    return Gauge(OK, f"{head}: tolerates {_failures(fast_spare)} on the fast path, {spare} before writes stop")
