"""An operator's membership change, end to end (issue 11): build the new membership from the one
in force, give a new actor its key, ask the serving leader to choose it (`ChangeMembers`), and
once it is chosen hand it to the supervisor, which caches it and starts the new local actor.

What it owns: the checks an operator gets a clear "no" from before anything is sent (a
duplicate name or endpoint, an unknown name, fewer than 3 acceptors), the request loop over the
proposers (the leader answers; a follower says who leads), and the outcome. It is synchronous:
the CLI calls it once per command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import zmq

from actors.membership import Membership, invalid
from actors.membership import encode as encode_membership
from actors.messages import ChangeMembers, MembersChanged
from runtime import codec, keys
from runtime.config import ClusterConfig
from runtime.control import ControlError, NotRunning, request

RETRY_S = 0.3  # how often a proposer that did not answer is asked again
# Refusals that pass by themselves: the change waits for them (up to the timeout), then is refused.
WAIT_FOR = ("another change is inside its alpha window", "another change is not chosen yet")


class ChangeRefused(Exception):
    """The change cannot be made (the reason says why); nothing changed."""


class ChangeUnknown(Exception):
    """No leader answered in time: the change may or may not be chosen (`paxos members` says)."""


@dataclass(frozen=True)
class Outcome:
    slot: int  # the slot that chose it
    effective_from: int  # the first slot it governs
    members: Membership
    started: dict[str, int | None]  # new local actors the supervisor started, with their pids
    already: bool  # the same change was chosen before (a retry)
    answering: list[str]  # of those, the ones that answered before we returned


def in_force(config: ClusterConfig) -> ClusterConfig:
    """The config with every change the supervisor knows (it follows the learners)."""
    from runtime import members

    try:
        reply = request(config, {"cmd": "members"}, timeout_s=5.0)
    except NotRunning:
        raise  # the caller says so (a running supervisor that does not answer: the cached view)
    except ControlError:
        return config
    merged, _ = members.merge(config, str(reply.get("changes") or "").encode())
    return merged


def added(current: Membership, role: str, name: str, endpoint: str, node_id: int | None) -> Membership:
    """`current` with one new member, or ChangeRefused with the reason."""
    if name in current.names():
        raise ChangeRefused(f"{name} is a member already")
    endpoints = {e: n for n, e in current.endpoints().items()}
    if endpoint in endpoints:
        raise ChangeRefused(f"{endpoints[endpoint]} has endpoint {endpoint} already")
    if role == "proposer":
        ids = current.proposer_ids
        nid = node_id if node_id is not None else max(ids.values(), default=0) + 1
        if nid in ids.values():
            raise ChangeRefused(f"proposer id {nid} is {next(n for n, i in ids.items() if i == nid)}'s already")
        new = current.with_proposer(name, nid, endpoint)
    elif node_id is not None:
        raise ChangeRefused("--id is for proposers only")
    elif role == "acceptor":
        new = current.with_acceptor(name, endpoint)
    else:
        new = current.with_learner(name, endpoint)
    why = invalid(new)
    if why is not None:
        raise ChangeRefused(why)
    return new


def replaced(current: Membership, old: str, name: str, endpoint: str, node_id: int | None) -> Membership:
    """`current` with `old` replaced by a new member of the same role, in one entry."""
    from runtime.members import role_of

    role = role_of(current, old)
    if role is None:
        raise ChangeRefused(f"{old} is not a member (members: {', '.join(current.names())})")
    if name == old:
        raise ChangeRefused(f"{old} cannot replace itself (use a new name)")
    return added(current.without(old), role, name, endpoint, node_id)


def removed(current: Membership, name: str) -> Membership:
    if name not in current.names():
        raise ChangeRefused(f"{name} is not a member (members: {', '.join(current.names())})")
    new = current.without(name)
    why = invalid(new)
    if why is not None:
        raise ChangeRefused(f"removing {name} would leave {why}" if why.startswith("fewer") or why.startswith("no ")
                            else why)
    return new


def propose(config: ClusterConfig, new: Membership, timeout_s: float) -> tuple[int, bool]:
    """Ask the proposers until the serving leader says the change is chosen (its slot, and whether
    it was chosen before); ChangeRefused with the leader's reason, ChangeUnknown on timeout."""
    current = config.current()
    pair = keys.client_pair(config) if config.security.curve else None
    session = keys.new_session_id(pair)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sockets: dict[str, zmq.Socket[bytes]] = {}
    poller = zmq.Poller()
    try:
        for name, _, endpoint in current.proposers:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.ROUTING_ID, session.encode())
            if pair is not None:
                keys.secure_client(s, pair, keys.server_public(config, name))
            s.connect(endpoint)
            sockets[name] = s
            poller.register(s, zmq.POLLIN)
        frame = codec.encode_frame(session, [ChangeMembers(1, encode_membership(new))])
        deadline = time.monotonic() + timeout_s
        last_reason = "no proposer answered"
        waited = False
        next_send = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_send:
                for s in sockets.values():
                    try:
                        s.send(frame, zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                next_send = now + RETRY_S
            for sock, _ in poller.poll(timeout=max(1, int((min(next_send, deadline) - time.monotonic()) * 1000))):
                try:
                    _, messages = codec.decode_frame(sock.recv(zmq.NOBLOCK))
                except (codec.DecodeError, zmq.Again):
                    continue
                for m in messages:
                    if not isinstance(m, MembersChanged):
                        continue
                    if m.ok:
                        return m.slot, m.reason == "already chosen"
                    if m.reason.startswith("not the serving leader") or "stepped down" in m.reason:
                        last_reason = m.reason
                        continue
                    if m.reason.startswith(WAIT_FOR):
                        # Queued here: the leader passes the window (it fills it with no-ops).
                        last_reason = m.reason
                        waited = True
                        continue
                    raise ChangeRefused(m.reason)
        if waited:
            raise ChangeRefused(f"{last_reason.split(';')[0]} (waited {timeout_s:g}s for it)")
        raise ChangeUnknown(f"no serving leader said the change was chosen within {timeout_s:g}s "
                            f"(last: {last_reason}); it may or may not be: see `paxos members`")
    finally:
        for s in sockets.values():
            s.close(0)


def change(config: ClusterConfig, new: Membership, timeout_s: float) -> Outcome:
    """Propose `new`, wait until it is chosen, then let the supervisor run its new local actors."""
    config = in_force(config)
    for name in new.names():
        if name not in config.current().names() and config.security.curve:
            keys.create_actor(config, name)  # before it is chosen: the others must know its key
    slot, already = propose(config, new, timeout_s)
    h = config.known_history()
    h.learn(slot, new)
    started: dict[str, int | None] = {}
    answering: list[str] = []
    try:
        reply = request(config, {"cmd": "members", "changes": h.encode().decode()}, timeout_s=30.0)
        started = dict(reply.get("started") or {})
        answering = wait_answering(config, list(started), deadline=time.monotonic() + timeout_s)
    except NotRunning:
        pass
    return Outcome(slot, h.effective_from(slot), new, started, already, answering)


def wait_answering(config: ClusterConfig, names: list[str], deadline: float) -> list[str]:
    """Wait (until `deadline`) for new actors to answer: until then a new acceptor counts in the
    quorum of the slots it decides without voting, and removing another member next would leave
    the cluster one failure away from stalling. Returns the names that answered."""
    answered: list[str] = []
    while names and time.monotonic() < deadline:
        try:
            status = request(config, {"cmd": "status"}, timeout_s=5.0)
        except ControlError:
            break
        up = {a["name"] for a in status.get("actors", []) if a["name"] in names and a.get("info")
              and a["state"] == "running"}
        answered += sorted(up)
        names = [n for n in names if n not in up]
        if names:
            time.sleep(0.05)
    return answered
