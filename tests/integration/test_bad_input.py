"""Bad input gets a clear reason in the log and changes nothing (reliability.md, section 7)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from actors.ballot import Ballot
from actors.messages import Prepare
from runtime import codec
from runtime.harness.local import LocalCluster


@pytest.fixture
def debug_cluster(tmp_path: Path):
    c = LocalCluster(tmp_path, extra='log_level = "debug"\n\n[limits]\nmessage_bytes_max = 2097152\n\n'
                                      '[protocol]\nbatch_bytes_max = 1048576')
    try:
        assert c.up().returncode == 0
        yield c
    finally:
        c.down()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_frames_are_logged_with_a_reason_and_change_nothing(debug_cluster: LocalCluster) -> None:
    c = debug_cluster
    assert c.paxos("put", "k", "v").returncode == 0
    c.wait_for("quiet wal", lambda: (d := digest(c.wal("a1"))) == digest(c.wal("a1")) and d, every_s=0.3)
    # Speak as p2 (stopped, so its name is free) and as an unknown "mallory"; one connection
    # each, because a second connection with the same routing id takes over the first.
    follower = "p2" if c.leader() == "p1" else "p1"
    assert c.paxos("kill", follower, "--no-restart").returncode == 0
    c.wait_for(f"{follower} stopped", lambda: c.actor(follower)["state"] == "stopped")
    before_pid, before_wal = c.actor("a1")["pid"], digest(c.wal("a1"))
    sockets: dict[str, zmq.Socket] = {}

    # "mallory" is a client: the default client key, under a session id of its own.
    mallory = c.session_id("mallory")

    def send(identity: str, frame: bytes) -> None:
        identity = follower if identity == "p2" else mallory
        frame = frame.replace(b"\xa2p2", b"\xa2" + follower.encode())
        if identity not in sockets:
            s = sockets[identity] = c.dealer("a1", identity, key=follower if identity == follower else "client")
            s.setsockopt(zmq.LINGER, 1000)
        sockets[identity].send(frame)

    cases = {
        "decode": ("mallory", b"\xc1\xc1"),
        "oversized": ("mallory", codec.pack([codec.VERSION, mallory, [[20, b"x" * 3_000_000]]])),
        "unknown_type": ("p2", msgpack.packb([codec.VERSION, "p2", [[99, 1]]])),
        "version": ("p2", msgpack.packb([7, "p2", [[1, 9, 2, 1]]])),
        "schema": ("p2", msgpack.packb([codec.VERSION, "p2", [[1, True, 2, 1]]])),
        "unknown_sender": ("mallory", codec.encode_frame(mallory, [Prepare(Ballot(99, 1), 1)])),
        "sender_mismatch": ("mallory", codec.encode_frame("p1", [Prepare(Ballot(99, 1), 1)])),
    }
    t0 = time.time()
    for identity, frame in cases.values():
        send(identity, frame)

    def rejected() -> set[str]:
        return {e["reason"] for e in c.log_events("a1") if e["event"] == "frame_rejected" and e["ts"] >= t0}

    reasons = c.wait_for("every bad frame rejected", lambda: (r := rejected()) >= set(cases) and r, timeout_s=15)
    assert reasons >= set(cases)
    # A ballot not owned by its sender is refused by the core, too.
    other_id = 1 if follower == "p2" else 2
    send("p2", codec.encode_frame(follower, [Prepare(Ballot(99, other_id), 1)]))
    c.wait_for("ownership refused", lambda: any(e["event"] == "message_rejected" and e.get("reason") ==
                                                 "ballot_not_owned_by_sender" for e in c.log_events("a1")))
    for s in sockets.values():
        s.close()
    assert c.actor("a1")["pid"] == before_pid
    assert digest(c.wal("a1")) == before_wal
    assert c.actor("a1")["info"]["promised"] == c.actor(c.leader())["info"]["ballot"]
    # And it goes on working.
    assert c.paxos("put", "k2", "v2").returncode == 0
    events = {e["event"] for e in c.log_events("a1")}
    assert {"message_received", "message_sent"} <= events  # debug level logs every message
