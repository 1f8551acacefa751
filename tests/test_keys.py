"""Keys and who they let speak as whom (runtime/keys.py, the ZAP handler in runtime/transport.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from runtime import codec, keys
from runtime.config import load, render
from runtime.transport import Zap


@pytest.fixture
def config(tmp_path: Path):
    names = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(names, range(7101, 7108), strict=True))))
    return load(path)


def test_ensure_creates_every_key_private_and_never_replaces_one(config) -> None:
    created = keys.ensure(config)
    assert set(created) == {*config.actors, "clients/default"}
    root = keys.keys_dir(config)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for name in config.actors:
        assert stat.S_IMODE((root / f"{name}.key_secret").stat().st_mode) == 0o600
    before = keys.actor_pair(config, "a1")
    assert keys.ensure(config) == []
    assert keys.actor_pair(config, "a1") == before
    assert keys.rotate(config, "a1") and keys.actor_pair(config, "a1") != before


def test_a_secret_key_others_may_read_is_refused(config) -> None:
    keys.ensure(config)
    path = keys.keys_dir(config) / "a1.key_secret"
    path.chmod(0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        keys.actor_pair(config, "a1")


def test_an_actor_key_speaks_only_as_that_actor_and_a_client_key_only_for_its_sessions(config) -> None:
    keys.ensure(config)
    client = keys.client_pair(config)
    ring = keys.Keyring.load(config, "a1")
    assert ring.user_id(ring.actors["p1"]) == "p1"
    user = ring.user_id(client.public)
    assert user == keys.CLIENT_PREFIX + client.fingerprint
    assert keys.may_claim("p1", b"p1")
    assert not keys.may_claim("p1", b"p2")
    session = keys.new_session_id(client)
    assert keys.may_claim(user, session.encode())
    assert not keys.may_claim(user, b"p1")  # a client can never speak as an actor
    assert not keys.may_claim(user, b"0123456789ab.x")  # nor for another key's sessions
    assert ring.user_id(zmq.curve_keypair()[0]) is None


def test_a_new_client_key_is_let_in_without_a_restart(config) -> None:
    keys.ensure(config)
    ring = keys.Keyring.load(config, "p1")
    path = keys.create_client(config, "ci")
    assert ring.user_id(keys.load_pair(path).public) is not None
    with pytest.raises(keys.KeyFileError, match="exists"):
        keys.create_client(config, "ci")
    with pytest.raises(keys.KeyFileError, match="use 1-32"):
        keys.create_client(config, "../x")


def test_session_ids_are_checked_against_the_key(config) -> None:
    keys.ensure(config)
    client = keys.client_pair(config)
    keys.check_session_id(keys.new_session_id(client), client)
    for bad in ("a1", "p1", "0123456789ab.x", f"{client.fingerprint}.", f"{client.fingerprint}.UP", "x" * 40):
        with pytest.raises(ValueError, match="client_id"):
            keys.check_session_id(bad, client)
    keys.check_session_id("0123456789ab.x", None)  # insecure mode: any well-formed id


def test_the_zap_handler_lets_known_keys_in_with_their_user_id_and_refuses_the_rest(config) -> None:
    keys.ensure(config)
    ring = keys.Keyring.load(config, "a1")
    refused: list[tuple[bytes, str, str]] = []
    zap = Zap(zmq.Context.instance(), ring, lambda who, reason, detail: refused.append((who, reason, detail)))

    def ask(public: bytes, mechanism: bytes = b"CURVE", version: bytes = b"1.0") -> list[bytes]:
        return zap.answer([b"peer", b"", version, b"7", b"paxos", b"127.0.0.1", b"", mechanism,
                           z85.decode(public)])

    assert ask(ring.actors["p2"])[4:7] == [b"200", b"OK", b"p2"]
    assert ask(zmq.curve_keypair()[0])[4] == b"400"
    assert refused and refused[-1][1] == "unknown_key"
    assert ask(ring.actors["p2"], mechanism=b"NULL")[4] == b"400"
    assert ask(ring.actors["p2"], version=b"2.0")[4] == b"400"
    assert zap.answer([b"no delimiter"]) == []


def test_a_batch_names_its_session_in_its_first_bytes() -> None:
    sid = "0123456789ab.c0ffee"
    assert codec.batch_is_from(codec.encode_client_batch(sid, 0, [["get", "k"]]), sid)
    assert codec.batch_is_from(codec.encode_client_batch(sid, 3, [["put", "k", "v"]], "l1"), sid)
    assert not codec.batch_is_from(codec.encode_client_batch(sid, 0, []), "0123456789ab.c0ffef")
    assert not codec.batch_is_from(codec.encode_client_batch(sid + "x", 0, []), sid)
    assert not codec.batch_is_from(b"", sid)
