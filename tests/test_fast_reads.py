"""Reads in fast mode (actors/lease.py, actors/fast.py): while a fast round is open, acceptors
fill slots the leader never assigned, so a lease alone proves nothing about them: every read
waits for a round sent after it arrived and is indexed by the highest slot its answers report."""

import random

from actors.ballot import ZERO
from actors.fast import FastRules
from actors.lease import ReadParams
from actors.messages import Accepted, Any_, LeaseGranted, LeaseRenew, Promise, Read, ReadAt
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.ready import Ready
from runtime import codec

IDS = {"p1": 1, "p2": 2}
ACCEPTORS = ["a1", "a2", "a3", "a4"]
PARAMS = ProposerParams(heartbeat_ticks=5, election_ticks=30, retry_ticks=4, window_slots=4, fast=FastRules("fast"))


def fast_leader() -> Proposer:
    p = Proposer("p1", 1, IDS, ACCEPTORS, ["l1"], PARAMS, random.Random(1),
                 reads=ReadParams(lease_ticks=20, clock_drift_max=0.05))
    for _ in range(1000):
        p.tick()
        if p.cand is not None:
            break
    assert p.ballot.round % 2 == 1  # fast mode: odd rounds are fast ballots
    out = Ready()
    for a in ACCEPTORS[:3]:
        out = p.step(a, Promise(p.ballot, p.cand.p1_from if p.cand else 1, 0, 0, 0, ()))
    assert p.state is LEADER
    sw = p.lead.sw_slot
    for a in ACCEPTORS[:3]:
        out = p.step(a, Accepted(p.ballot, (sw,), ()))  # StartWorking chosen: the fast round opens
    assert p.lead.fast_from == sw + 1 and any(isinstance(m, Any_) for _, m in out.send)
    p.end_turn(out)
    return p


def rounds(out: Ready) -> set[int]:
    return {m.round for _, m in out.send if isinstance(m, LeaseRenew)}


def read_ats(out: Ready) -> list[ReadAt]:
    return [m for _, m in out.send if isinstance(m, ReadAt)]


def test_a_fast_leader_indexes_reads_by_the_highest_slot_a_majority_reports_never_by_its_lease() -> None:
    p = fast_leader()
    # A first round gives the leader its lease, as in classic mode.
    first = Ready()
    p.end_turn(first)
    ticks = 0
    while not rounds(first) and ticks < 20:
        first = p.tick()
        p.end_turn(first)
        ticks += 1
    (r0,) = rounds(first)
    for a in ACCEPTORS[:3]:
        p.step(a, LeaseGranted(p.ballot, r0, 3))
    assert p.ticks < p.reads.lease_until  # a lease runs ...
    blob = codec.encode_client_batch("c.1", 0, [[1, "get", "k"]])
    held = p.step("c.1", Read("l1", blob))
    assert read_ats(held) == []  # ... and still the read waits: clients wrote slots it never saw
    p.end_turn(held)
    (r1,) = rounds(held)
    assert r1 > r0
    p.step("a1", LeaseGranted(p.ballot, r1, 40))
    p.step("a2", LeaseGranted(p.ballot, r1, 7))
    got = p.step("a3", LeaseGranted(p.ballot, r1, 12))  # a majority of four: three
    (at,) = read_ats(got)
    assert at.index == 40 and at.batch == blob
    assert at.ballot == ZERO  # no early answers: the leader does not see the fast slots' values


def test_a_fast_leader_serves_nothing_on_a_minority_of_answers() -> None:
    p = fast_leader()
    blob = codec.encode_client_batch("c.1", 0, [[1, "get", "k"]])
    held = p.step("c.1", Read("l1", blob))
    p.end_turn(held)
    (r1,) = rounds(held)
    p.step("a1", LeaseGranted(p.ballot, r1, 40))
    got = p.step("a2", LeaseGranted(p.ballot, r1, 40))
    assert read_ats(got) == [] and len(p.reads.held) == 1
