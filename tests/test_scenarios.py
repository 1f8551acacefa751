"""The scenarios of DESIGN.md, reproduced on the real cores with a hand-driven network."""

import itertools

import pytest

from actors.ballot import Ballot
from actors.messages import COMMANDS, NOOP, START, Accept, Nack, Prepare, Promise, Value
from actors.output import Output
from actors.proposer import CANDIDATE, LEADER
from actors.records import AcceptRecord
from runtime import codec
from runtime.sim.world import World, WorldConfig, of_type


def put(key: str, value: str, seq: int = 1, client: str = "c") -> list:
    return [seq, "put", key, value]


def campaign(w: World, name: str, quorum, limit: int = 20) -> None:
    """Run elections of `name` until it leads, with only `quorum` answering (Nacks included)."""
    p = w.proposer(name)
    for _ in range(limit):
        tick_until(w, name, lambda: p.role == CANDIDATE)
        w.drop(lambda e: isinstance(e.message, Prepare) and e.dst not in quorum)
        w.deliver(of_type(Prepare, Promise, Nack))
        if p.role == LEADER:
            return
    raise AssertionError(f"{name} never led")


def tick_until(w: World, name: str, cond, limit: int = 2000) -> None:
    for _ in range(limit):
        if cond():
            return
        w.tick([name])
    raise AssertionError("condition not reached")


def test_seed002_3_2_five_acceptors_three_rounds_with_lost_messages_choose_3_v1() -> None:
    w = World(WorldConfig(proposers=1, acceptors=5, learners=1))
    p = w.proposer("p1")
    # Round 1: only a1 and a5 get the Prepare; two promises are not a majority of five.
    tick_until(w, "p1", lambda: p.role == CANDIDATE)
    assert p.ballot.round == 1
    w.drop(lambda e: isinstance(e.message, Prepare) and e.dst in ("a2", "a3", "a4"))
    w.deliver()
    assert p.role == CANDIDATE
    # Round 2: the proposer gives up on round 1 and prepares round 2; the one to a1 is lost.
    def round_two() -> bool:
        w.drop(lambda e: e.message.ballot.round == 1 if hasattr(e.message, "ballot") else False)
        return p.role == CANDIDATE and p.ballot.round == 2
    tick_until(w, "p1", round_two)
    w.drop(lambda e: isinstance(e.message, Prepare) and e.dst == "a1")
    w.submit("p1", "c", [put("x", "V1")])  # queued until the proposer leads
    w.deliver(of_type(Prepare, Promise))
    assert p.role == LEADER
    # Its Accept [2, V1] reaches only a2 and a3: accepted by two, chosen by nobody.
    w.drop(lambda e: isinstance(e.message, Accept) and e.dst in ("a1", "a4", "a5"))
    w.deliver()
    assert w.learner("l1").delivered == 0
    assert w.acceptor("a2").accepted[2][0] == Ballot(2, 1)
    # Round 3 (the proposer restarts: its round 2 is on disk, so it cannot reuse it). Everybody
    # promises; max{0, 2, 2, 0, 0} = 2, so the value is V1 again; a1, a3 and a5 accept [3, V1].
    w.crash("p1")
    p = w.restart("p1")
    tick_until(w, "p1", lambda: p.role == CANDIDATE)
    assert p.ballot == Ballot(3, 1)
    w.deliver(of_type(Prepare, Promise))
    assert p.role == LEADER
    w.drop(lambda e: isinstance(e.message, Accept) and e.dst in ("a2", "a4"))
    w.deliver()
    for a in ("a1", "a3", "a5"):
        ballot, value = w.acceptor(a).accepted[2]
        assert ballot == Ballot(3, 1) and value.kind == COMMANDS
        assert codec.decode_client_batch(value.batches[0])[2][0][3] == "V1"
    assert w.learner("l1").kv.data == {"x": "V1"}


V1 = Value(COMMANDS, Ballot(3, 1), (codec.encode_client_batch("c", 0, [[1, "put", "k", "V1"]]),))
V2 = Value(COMMANDS, Ballot(2, 2), (codec.encode_client_batch("c", 0, [[2, "put", "k", "V2"]]),))


@pytest.mark.parametrize("quorum", list(itertools.combinations(["a1", "a2", "a3"], 2)))
def test_seed002_3_5_once_chosen_every_higher_ballot_proposes_the_chosen_value(quorum) -> None:
    w = World(WorldConfig(proposers=2, acceptors=3))
    # [3, V1] accepted by a1 and a3 (chosen); a2 holds an older [2, V2].
    for a, (b, v) in {"a1": (Ballot(3, 1), V1), "a2": (Ballot(2, 2), V2), "a3": (Ballot(3, 1), V1)}.items():
        record = AcceptRecord(b, 0, ((1, v),))
        w.disks[a].append([record])
        w.restart(a)
    # Whichever two promises arrive, under whatever higher ballot, the value for slot 1 can only
    # be V1.
    for round_ in range(3):
        campaign(w, "p2", quorum)
        assert w.proposer("p2").ballot > Ballot(3, 1)
        proposed = dict(next(e.message for e in w.queue if isinstance(e.message, Accept) and e.message.entries).entries)
        assert proposed[1] == V1
        w.deliver(lambda e, q=quorum[round_ % 2]: isinstance(e.message, Accept) and e.dst == q)
        w.drop(lambda e: True)
        w.crash("p2")
        w.restart("p2")


def test_seed001_ghost_reappearance_is_prevented_by_start_working() -> None:
    w = World(WorldConfig(proposers=2, acceptors=3, learners=1))
    a_keys, b_keys = {}, {}
    # Epoch 1: A (p1) leads; slots 1-5 reach a majority (a1, a2), slots 6-10 only a1.
    w.elect("p1")
    p1 = w.proposer("p1")
    assert p1.serving and p1.next_slot == 2
    for slot in range(2, 11):
        a_keys[slot] = f"A{slot}"
        w.submit("p1", "ca", [put(f"A{slot}", "x", seq=slot)])
        w.deliver(lambda e: not isinstance(e.message, Accept))
        w.deliver(lambda e, s=slot: isinstance(e.message, Accept)
                  and (e.dst in ("a1", "l1") or (s <= 5 and e.dst == "a2")))
        w.drop(of_type(Accept))
        w.deliver()
    assert w.learner("l1").delivered == 5
    w.crash("p1")
    # Epoch 2: B (p2) leads with a2 and a3 (a1 is cut off): max slot 5, StartWorking at 6.
    cut_a1 = lambda e: "a1" in (e.src, e.dst)  # noqa: E731
    p2 = w.proposer("p2")
    tick_until(w, "p2", lambda: p2.role == CANDIDATE)
    w.drop(cut_a1)
    w.deliver(lambda e: not cut_a1(e))
    assert p2.role == LEADER and p2.sw_slot == 6
    w.drop(cut_a1)
    for slot in range(7, 21):
        b_keys[slot] = f"B{slot}"
        w.submit("p2", "cb", [put(f"B{slot}", "y", seq=slot)])
        w.drop(cut_a1)
        w.deliver(lambda e, s=slot: isinstance(e.message, Accept) and (e.dst == "a2" or (s == 20 and e.dst == "a3")))
        w.drop(of_type(Accept))
        w.deliver(lambda e: not cut_a1(e))
    w.crash("p2")
    # Epoch 3: A again, with a1 and a3 (a2 is down): max slot 20, so 7-20 are re-confirmed,
    # A's old 7-10 among them.
    w.crash("a2")
    p1 = w.restart("p1")
    tick_until(w, "p1", lambda: p1.role == CANDIDATE)
    w.deliver()
    assert p1.role == LEADER and p1.sw_slot == 21
    for _ in range(50):
        w.tick()
        w.deliver()
    lr = w.learner("l1")
    assert lr.delivered >= 21
    data = lr.kv.data
    assert all(f"A{s}" in data for s in range(2, 6))  # chosen in epoch 1: applied
    assert not any(f"A{s}" in data for s in range(7, 11))  # ghosts: skipped
    assert "B20" in data and not any(f"B{s}" in data for s in range(7, 20))
    skipped = [f["slot"] for a, _, e, f in w.events if e == "ghost_skipped"]
    assert skipped == [7, 8, 9, 10]
    # The client of the ghost writes never got an answer for them.
    assert {seq for seq, _, _ in w.replies("ca")} == {2, 3, 4, 5}


@pytest.mark.parametrize("quorum,expected", [(("a2", "a3"), "noop"), (("a1", "a2"), "value")])
def test_seed001_minority_slot_becomes_its_value_or_a_noop_never_both(quorum, expected) -> None:
    w = World(WorldConfig(proposers=2, acceptors=3, learners=2))
    w.elect("p1")
    w.submit("p1", "c", [put("k", "v")])
    w.deliver(lambda e: isinstance(e.message, Accept) and e.dst == "a1")  # slot 2: a1 only
    w.drop(of_type(Accept))
    w.submit("p1", "c", [put("j", "w", seq=2)])
    w.deliver(lambda e: isinstance(e.message, Accept) and e.dst in ("a1", "a2"))  # slot 3: chosen
    w.drop(of_type(Accept))
    w.deliver()
    w.crash("p1")
    p2 = w.proposer("p2")
    tick_until(w, "p2", lambda: p2.role == CANDIDATE)
    w.drop(lambda e: isinstance(e.message, Prepare) and e.dst not in quorum)
    w.deliver()
    assert p2.serving
    decided = {lr: w.learner(lr).kv.data.get("k") for lr in ("l1", "l2")}
    assert {w.learner(lr).kv.data.get("j") for lr in ("l1", "l2")} == {"w"}  # chosen stays chosen
    assert decided == ({"l1": None, "l2": None} if expected == "noop" else {"l1": "v", "l2": "v"})
    # A later leader with any other quorum keeps what was chosen for slot 2.
    w.crash("p2")
    p1 = w.restart("p1")
    tick_until(w, "p1", lambda: p1.role == CANDIDATE)
    w.deliver()
    assert p1.serving
    slot2 = {a: w.acceptor(a).accepted[2][1].kind for a in ("a1", "a2", "a3")}
    assert set(slot2.values()) == ({NOOP} if expected == "noop" else {COMMANDS})
    assert {lr: w.learner(lr).kv.data.get("k") for lr in ("l1", "l2")} == decided


def test_seed000_ballots_are_numbered_m_times_n_plus_i() -> None:
    # Three proposers; the seed's number s = m * 3 + i is our Ballot(m + 1, i + 1).
    w = World(WorldConfig(proposers=3, acceptors=3))
    p1, p2, p3 = (w.proposer(n) for n in ("p1", "p2", "p3"))
    tick_until(w, "p2", lambda: p2.role == CANDIDATE)
    w.deliver(of_type(Prepare))
    # P1 (number 0) finds that P2 (number 1) is ahead: it jumps to 1 * 3 + 0.
    p1.known_ballot = Ballot(0, 0)
    tick_until(w, "p1", lambda: p1.role == CANDIDATE)
    assert p1.ballot == Ballot(1, 1)
    w.deliver(lambda e: isinstance(e.message, (Prepare, Nack)) and "p1" in (e.src, e.dst))
    assert p1.known_ballot == Ballot(1, 2) and p1.next_round() == 2
    tick_until(w, "p1", lambda: p1.role == CANDIDATE)
    assert p1.ballot == Ballot(2, 1)  # 3 in the seed's numbering
    w.deliver(lambda e: isinstance(e.message, Prepare) and e.src == "p1")
    # P3 (number 2) is now below P1's: it jumps to 1 * 3 + 2 = 5.
    tick_until(w, "p3", lambda: p3.role == CANDIDATE)
    w.deliver(lambda e: isinstance(e.message, (Prepare, Nack)) and "p3" in (e.src, e.dst))
    tick_until(w, "p3", lambda: p3.role == CANDIDATE)
    assert p3.ballot == Ballot(2, 3)


def test_seed001_002_dueling_proposers_settle_thanks_to_randomized_backoff() -> None:
    # Both proposers time out together again and again while every message is delivered in
    # lockstep; without randomized, backed-off timeouts they would preempt each other forever.
    w = World(WorldConfig(proposers=2, acceptors=3, learners=1), seed=7)
    for p in ("p1", "p2"):
        w.proposer(p).timeout_ticks = 30  # start exactly together
    for _ in range(2000):
        w.tick()
        w.deliver()
        leaders = [n for n in ("p1", "p2") if w.proposer(n).serving]
        if leaders:
            break
    assert len(leaders) == 1
    assert sum(w.proposer(n).elections for n in ("p1", "p2")) >= 2  # there was a duel
    w.submit(leaders[0], "c", [put("k", "v")])
    w.deliver()
    assert w.learner("l1").kv.data == {"k": "v"}


def test_world_replays_disks_through_the_real_framing() -> None:
    w = World()
    w.elect("p1")
    w.submit("p1", "c", [put("k", "v")])
    w.deliver()
    before = dict(w.acceptor("a1").accepted)
    w.crash("a1")
    assert w.restart("a1").accepted == before
    out = Output()
    assert out.persist == []
    assert START in {v.kind for _, v in before.values()}
