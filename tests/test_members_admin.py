"""An operator's membership change (issue 11), below the real processes: the leader's
ChangeMembers answers, the wire of the two new messages, the runtime's cache of the log's
membership (runtime/members.py), the config that follows it, the client's new lists, the
keyring that learns a new actor's key, and the operator's checks (runtime/admin.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from actors.ballot import Ballot
from actors.client import ClientCore
from actors.membership import History, Membership, encode, invalid
from actors.messages import Accept, Accepted, ChangeMembers, Heartbeat, MembersChanged, Promise
from actors.proposer import LEADER, Proposer, ProposerParams
from runtime import admin, codec, keys, members
from runtime.config import load, render

B3 = Membership((("p1", 1, "tcp://h:1"), ("p2", 2, "tcp://h:2")),
                (("a1", "tcp://h:11"), ("a2", "tcp://h:12"), ("a3", "tcp://h:13")), (("l1", "tcp://h:21"),))
B4 = B3.with_acceptor("a4", "tcp://h:14")
ALPHA = 3
PARAMS = ProposerParams(window_slots=ALPHA, alpha_slots=ALPHA)


def leader() -> Proposer:
    p = Proposer("p1", 1, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(1),
                 history=History(B3, ALPHA))
    p.campaign(p.step("", Heartbeat(Ballot(0, 2), 0)))
    for a in ("a1", "a2"):
        p.step(a, Promise(p.ballot, 1, 0, 0, 0, ()))
    assert p.state is LEADER
    for a in ("a1", "a2"):
        p.step(a, Accepted(p.ballot, (p.lead.sw_slot,), ()))
    assert p.lead.serving
    return p


def answers(out, to: str = "op.1") -> list[MembersChanged]:
    return [m for d, m in out.send if isinstance(m, MembersChanged) and d == to]


def test_the_leader_answers_a_change_once_it_is_chosen_and_a_retry_the_same_way() -> None:
    p = leader()
    out = p.step("op.1", ChangeMembers(7, encode(B4)))
    assert answers(out) == []  # proposed, not chosen yet
    slot = p.lead.next_slot - 1
    accepts = [m for _, m in out.send if isinstance(m, Accept) and any(s == slot for s, _ in m.entries)]
    assert accepts
    # A retry while it is in flight waits for the same slot; no second change is proposed.
    out = p.step("op.1", ChangeMembers(8, encode(B4)))
    assert answers(out) == [] and p.lead.next_slot - 1 == slot
    out = p.step("a1", Accepted(p.ballot, (slot,), ()))
    assert answers(out) == []
    out = p.step("a2", Accepted(p.ballot, (slot,), ()))
    assert [(m.request, m.ok, m.slot) for m in answers(out)] == [(7, True, slot), (8, True, slot)]
    out = p.step("op.1", ChangeMembers(9, encode(B4)))
    assert [(m.request, m.ok, m.slot, m.reason) for m in answers(out)] == [(9, True, slot, "already chosen")]


def test_a_change_that_cannot_be_made_is_refused_at_once_with_the_reason() -> None:
    p = leader()
    for members_blob, why in [(b"junk", "not a membership"), (encode(B3), "no change"),
                              (encode(B3.without("a3")), "fewer than 3 acceptors"),
                              (encode(B3.with_acceptor("a1", "tcp://h:99")), "duplicate name"),
                              (encode(B3.with_acceptor("Bad", "tcp://h:99")), "bad member name"),
                              (encode(B3.with_acceptor("a9", "udp://x")), "bad endpoint")]:
        next_slot = p.lead.next_slot
        out = p.step("op.1", ChangeMembers(1, members_blob))
        got = answers(out)
        assert len(got) == 1 and not got[0].ok and why in got[0].reason, (why, got)
        assert p.lead.next_slot == next_slot and not p.pending  # nothing proposed
    follower = Proposer("p2", 2, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(2),
                        history=History(B3, ALPHA))
    follower.step("p1", Heartbeat(Ballot(1, 1), 0))
    got = answers(follower.step("op.1", ChangeMembers(1, encode(B4))))
    assert [(m.ok, m.reason, m.leader) for m in got] == [(False, "not the serving leader", "p1")]


def test_operators_waiting_are_told_when_the_leader_steps_down_and_are_bounded() -> None:
    p = leader()
    p.step("op.1", ChangeMembers(1, encode(B4)))
    for i in range(20):
        p.step(f"op.{i + 2}", ChangeMembers(1, encode(B4)))
    assert len(p.member_waiters) == 16
    out = p.step("p2", Heartbeat(Ballot(9, 2), 0))  # a higher ballot: it steps down
    assert p.state is not LEADER and not p.member_waiters
    told = [m for _, m in out.send if isinstance(m, MembersChanged)]
    assert len(told) == 16 and all(not m.ok and "stepped down" in m.reason for m in told)


def test_the_new_messages_round_trip_and_bad_ones_are_rejected() -> None:
    frame = codec.encode_frame("abc.d", [ChangeMembers(3, b"x"), MembersChanged(3, True, 9, "chosen", "p1")])
    assert codec.decode_frame(frame) == ("abc.d", [ChangeMembers(3, b"x"), MembersChanged(3, True, 9, "chosen", "p1")])
    for bad in ([24, -1, b"x"], [24, 1, "text"], [25, 1, 1, 0, "", ""], [24, 1]):
        with pytest.raises(codec.DecodeError):
            codec.decode_message(tuple(bad))


def test_member_names_endpoints_and_counts_are_checked() -> None:
    assert invalid(B3.with_acceptor("a" * 33, "tcp://h:99")).startswith("bad member name")
    assert invalid(B3.with_acceptor("supervisor", "tcp://h:99")).startswith("bad member name")
    assert invalid(B3.with_acceptor("a9", "tcp://h:0")).startswith("bad endpoint")
    assert invalid(B3.with_acceptor("a9", "tcp://h:99")) is None
    many = B3
    for i in range(62):
        many = many.with_acceptor(f"x{i}", f"tcp://h:{1000 + i}")
    assert invalid(many) == "more than 64 acceptors"


# --- the runtime's view ---------------------------------------------------------------------


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    ports = {n: 7000 + i for i, n in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"])}
    path = tmp_path / "cluster.toml"
    path.write_text(render(ports))
    return path


def test_the_cache_of_the_log_membership_drives_the_config(cfg_path: Path) -> None:
    cfg = load(cfg_path)
    assert members.load(cfg_path).actors == cfg.actors and members.disagreement(cfg) is None
    grown = cfg.membership().with_acceptor("a4", "tcp://127.0.0.1:7100").with_learner("l3", "tcp://127.0.0.1:7101")
    h = cfg.history()
    h.learn(5, grown)
    h.learn(80, grown.without("a1"))
    members.write(cfg, h, ["a1"])
    got = members.load(cfg_path)
    assert list(got.actors)[-2:] == ["a4", "l3"] and got.actor("a4").role == "acceptor"
    assert got.current().acceptor_names == ["a2", "a3", "a4"] and members.retired(got) == ["a1"]
    assert [a.name for a in got.acceptors] == ["a1", "a2", "a3"]  # the bootstrap stays the protocol's
    assert "the log chose" in (members.disagreement(got) or "")
    joining, leaving = members.joining_leaving(got)
    assert joining == set() and leaving == {"a1"}  # a4 and l3 came with the change before
    # merge: news only once; a damaged cache is not trusted
    again, grew = members.merge(cfg, h.encode())
    assert grew and again.changes == got.changes and not members.merge(again, h.encode())[1]
    members.path(cfg).write_text("{not json")
    assert members.load(cfg_path).changes == b""
    members.path(cfg).write_text(json.dumps({"changes": "[[1, 2]]"}))
    assert members.read(cfg) == b""


def test_the_operator_gets_a_clear_no_before_anything_is_sent(cfg_path: Path) -> None:
    now = load(cfg_path).current()
    for build, why in [
        (lambda: admin.added(now, "acceptor", "a1", "tcp://127.0.0.1:9", None), "a1 is a member already"),
        (lambda: admin.added(now, "learner", "l9", "tcp://127.0.0.1:7000", None), "p1 has endpoint"),
        (lambda: admin.added(now, "proposer", "p9", "tcp://127.0.0.1:9", 2), "id 2 is p2's"),
        (lambda: admin.added(now, "acceptor", "a9", "tcp://127.0.0.1:9", 3), "--id is for proposers only"),
        (lambda: admin.removed(now, "a3"), "would leave fewer than 3 acceptors"),
        (lambda: admin.removed(now, "zz"), "zz is not a member"),
    ]:
        with pytest.raises(admin.ChangeRefused, match=why):
            build()
    p3 = admin.added(now, "proposer", "p3", "tcp://127.0.0.1:9", None)
    assert p3.proposer_ids["p3"] == 3
    swapped = admin.replaced(now, "a2", "a9", "tcp://127.0.0.1:9", None)  # one entry, same role
    assert swapped.acceptor_names == ["a1", "a3", "a9"] and swapped.learners == now.learners
    for old, new, why in [("zz", "a9", "zz is not a member"), ("a2", "a2", "cannot replace itself"),
                          ("a2", "a1", "a1 is a member already")]:
        with pytest.raises(admin.ChangeRefused, match=why):
            admin.replaced(now, old, new, "tcp://127.0.0.1:9", None)


def test_a_client_follows_new_lists_and_keeps_its_leader() -> None:
    core = ClientCore("abc.1", ["p1", "p2"], ["l1", "l2"], lambda *a: b"")
    core.target = 1
    core.learners_ready = {"l1", "l2"}
    core.set_members(["p2", "p3"], ["l2", "l3"])
    assert core.proposers[core.target] == "p2" and core.learners_ready == {"l2"}
    assert core.preferred_learner in ("l2", "l3")
    core.set_members([], ["l9"])  # never left without anyone to ask
    assert core.proposers == ["p2", "p3"]


def test_a_keyring_learns_an_actor_a_change_added(cfg_path: Path) -> None:
    cfg = load(cfg_path)
    keys.ensure(cfg)
    ring = keys.Keyring.load(cfg, "a1")
    assert not ring.add_actor("a4")  # no key yet: not let in
    assert keys.create_actor(cfg, "a4") and not keys.create_actor(cfg, "a4")
    public = keys.server_public(cfg, "a4")
    assert ring.user_id(public) == "a4"  # a handshake with it rescans the keys directory
    assert ring.add_actor("a4") and ring.actors["a4"] == public
    with pytest.raises(keys.KeyFileError):
        keys.create_actor(cfg, "../x")


def test_a_restarted_proposer_is_elected_by_todays_acceptors_when_the_old_ones_are_gone() -> None:
    # a1 and a2 were replaced by a4 and a5 long ago (chosen at 5, deciding from 8 on): after a
    # restart (watermark 0) the Promises of a3, a4, a5 report slot 20 chosen, so the bootstrap
    # membership, which governs only slots up to 7, need not answer.
    today = B3.without("a1").without("a2").with_acceptor("a4", "tcp://h:14").with_acceptor("a5", "tcp://h:15")
    history = History(B3, ALPHA)
    history.learn(5, today)
    p = Proposer("p1", 1, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(1), history=history)
    out = p.step("", Heartbeat(Ballot(0, 2), 0))
    p.campaign(out)
    for a in ("a3", "a4"):
        p.step(a, Promise(p.ballot, 1, 20, 20, 20, (), history.encode()))
    assert p.state is LEADER and p.lead.sw_slot == 21
    # Without such a watermark, the bootstrap membership still decides open slots: it must answer.
    q = Proposer("p1", 1, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(1),
                 history=History(B3, ALPHA))
    q.history.learn(5, today)
    q._members_changed()
    q.campaign(q.step("", Heartbeat(Ballot(0, 2), 0)))
    for a in ("a3", "a4", "a5"):
        q.step(a, Promise(q.ballot, 1, 3, 3, 3, (), history.encode()))
    assert q.state is not LEADER


def test_an_idle_leader_fills_the_slots_before_a_change_so_it_takes_effect_and_a_removed_one_steps_down() -> None:
    from actors.messages import NOOP, Tick

    p = leader()
    out = p.step("op.1", ChangeMembers(1, encode(B3.with_proposer("p3", 3, "tcp://h:3").without("p1"))))
    c = p.lead.next_slot - 1
    for a in ("a1", "a2"):
        out = p.step(a, Accepted(p.ballot, (c,), ()))
    assert answers(out) and answers(out)[0].ok and p.removed_from == c + ALPHA
    out = p.step("", Tick())
    noops = sorted({s for _, m in out.send if isinstance(m, Accept) for s, v in m.entries if v.kind == NOOP})
    assert noops == list(range(c + 1, c + ALPHA)) and p.lead.next_slot == c + ALPHA  # none it may not open
    for a in ("a1", "a2"):
        p.step(a, Accepted(p.ballot, tuple(range(c + 1, c + ALPHA)), ()))
    p.step("", Tick())
    assert p.state is not LEADER  # every slot it may decide is chosen: it stands down for good
    for _ in range(10 * PARAMS.election_ticks):
        p.step("", Tick())
    assert p.state is not LEADER and p.elections == 1
