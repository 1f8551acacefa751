"""Planted bugs, for testing the tests (Paxos Made Live section 6.3: "we left some protocol bugs
... in the system, and verified that our test system detected these bugs").

Off unless a test switches them on (`PAXOS_PLANTED_BUGS=name,...` for real processes, a
parameter for the simulator and the model checker). Each name below is one broken rule; the
code that breaks it is guarded by `if "<name>" in self.bugs` next to the correct code.
"""

from __future__ import annotations

BUGS: dict[str, str] = {
    "reply_before_fsync": "send replies before the records that justify them are durable (fsync later)",
    "accept_below_promise": "acceptor accepts a ballot below its promise",
    "promise_in_memory": "acceptor keeps its promise only in memory (no record)",
    "ignore_promised_values": "new leader takes the first value reported, not the highest-ballot one",
    "count_duplicate_accepted": "learner counts a duplicated Accepted twice toward the quorum",
    "reuse_ballot_after_restart": "proposer forgets its rounds on restart and reuses ballots",
    "ack_before_chosen": "learner applies (and answers the client) on the first Accepted, before a quorum",
    "truncate_on_corruption": "recovery cuts the file at corruption in the middle instead of stopping",
}

NONE: frozenset[str] = frozenset()


def parse(text: str | None) -> frozenset[str]:
    """`a,b` -> {"a", "b"}; unknown names are an error (a typo must not test nothing)."""
    names = frozenset(n.strip() for n in (text or "").split(",") if n.strip())
    unknown = names - set(BUGS)
    if unknown:
        raise ValueError(f"unknown planted bug(s) {', '.join(sorted(unknown))}; known: {', '.join(BUGS)}")
    return names
