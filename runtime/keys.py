"""Who may talk to whom: one CurveZMQ key pair per actor and per client, and the rule that turns
an authenticated key into the name a frame may claim.

Keys live under `<data_dir>/keys/` (mode 0700): `<actor>.key` (public) and `<actor>.key_secret`
(mode 0600) for every actor, and `clients/<name>.key[_secret]` for clients (`default` is created
with the rest and is what `paxos` and `runtime.client.Client` use). The files are ZeroMQ's
certificate format (`zmq.auth.load_certificate` reads them).

An actor's ROUTER is a CURVE server: a connection that does not prove a known key fails its
handshake (the ZAP handler in runtime/transport.py says no) and never delivers a frame. Every
frame that does arrive carries the ZAP `User-Id` of its key: an actor's name, or `client:<fp>`
for a client key whose fingerprint is `<fp>`. The transport then checks the routing id the
connection claims against it: an actor key may only speak as that actor; a client key only as a
session id `<fp>.<suffix>`, so no client can act for another client's session or for an actor.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth

from runtime.config import ClusterConfig

DEFAULT_CLIENT = "default"
CLIENT_PREFIX = "client:"
FINGERPRINT_HEX = 12
_CLIENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
SESSION_SUFFIX = re.compile(r"^[0-9a-z_-]{1,16}$")
_ACTOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class KeyFileError(RuntimeError):
    """A key file is missing, unreadable or not ours; the message names the file."""


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # z85, 40 bytes
    secret: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


def require_curve() -> None:
    """KeyFileError unless this libzmq can do CURVE (pyzmq's wheels can; a libzmq built without
    libsodium cannot)."""
    if not zmq.has("curve"):
        raise KeyFileError(f"this libzmq ({zmq.zmq_version()}) has no CURVE support: install pyzmq's "
                           "wheels (pip install --force-reinstall pyzmq), or set [security] curve = false")


def fingerprint(public: bytes) -> str:
    """A short name for a client key: the prefix every session id of that key must carry."""
    return hashlib.sha256(public).hexdigest()[:FINGERPRINT_HEX]


def keys_dir(config: ClusterConfig) -> Path:
    return config.data_dir / "keys"


def _base(config: ClusterConfig, name: str, client: bool) -> Path:
    return keys_dir(config) / "clients" / name if client else keys_dir(config) / name


def _write_pair(base: Path) -> KeyPair:
    """A new key pair at `base`.key / `base`.key_secret: the secret file is created 0600 (never
    readable by others, not even for an instant), the public one 0644; each is written to a
    temporary name and renamed, so a crash leaves either no key or a whole one."""
    public, secret = zmq.curve_keypair()
    base.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(base.parent, 0o700)
    for suffix, text, mode in ((".key_secret", _cert(public, secret), 0o600), (".key", _cert(public, None), 0o644)):
        path = base.with_name(base.name + suffix)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    return KeyPair(public, secret)


def _cert(public: bytes, secret: bytes | None) -> str:
    lines = ["#   ZeroMQ CURVE certificate (paxos-cluster). Keep the _secret file private.", "metadata",
             "curve", f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return "\n".join(lines) + "\n"


def ensure(config: ClusterConfig) -> list[str]:
    """Create every missing key (every actor's and the default client's); return what was created.
    Existing keys are never replaced: `rotate` does that, on purpose."""
    require_curve()
    created = []
    root = keys_dir(config)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    for name in config.actors:
        if not _base(config, name, False).with_suffix(".key_secret").exists():
            _write_pair(_base(config, name, False))
            created.append(name)
    if not _base(config, DEFAULT_CLIENT, True).with_suffix(".key_secret").exists():
        _write_pair(_base(config, DEFAULT_CLIENT, True))
        created.append(f"clients/{DEFAULT_CLIENT}")
    return created


def create_actor(config: ClusterConfig, name: str) -> bool:
    """The key pair of an actor that is about to join (`paxos members add`); False if it exists."""
    require_curve()
    if not _ACTOR_NAME.match(name):
        raise KeyFileError(f"actor name {name!r}: use 1-32 of a-z, 0-9, _ and -, starting with a letter")
    base = _base(config, name, False)
    if base.with_suffix(".key_secret").exists():
        return False
    _write_pair(base)
    return True


def create_client(config: ClusterConfig, name: str) -> Path:
    """A new client key pair `clients/<name>` (to hand to one program or person); its secret path."""
    if not _CLIENT_NAME.match(name):
        raise KeyFileError(f"client key name {name!r}: use 1-32 of a-z, 0-9, _ and -")
    base = _base(config, name, True)
    if base.with_suffix(".key_secret").exists():
        raise KeyFileError(f"{base.with_suffix('.key_secret')} exists already (rotate it with --rotate)")
    _write_pair(base)
    return base.with_suffix(".key_secret")


def rotate(config: ClusterConfig, name: str) -> Path:
    """Replace the key of an actor (or `clients/<name>`) with a new one. Peers read public keys at
    start, so the cluster must be restarted for an actor's new key to be used."""
    client = name.startswith("clients/")
    short = name.split("/", 1)[1] if client else name
    if not client and name not in config.actors:
        raise KeyFileError(f"{name!r} is not an actor of {config.path} (clients are clients/NAME)")
    if client and not _CLIENT_NAME.match(short):
        raise KeyFileError(f"client key name {short!r}: use 1-32 of a-z, 0-9, _ and -")
    base = _base(config, short, client)
    _write_pair(base)
    return base.with_suffix(".key_secret")


def load_pair(path: Path) -> KeyPair:
    """A key pair from a `.key_secret` file (refused if others may read it)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found (run `paxos keys`)") from None
    if st.st_mode & 0o077:
        raise KeyFileError(f"{path}: a secret key must not be readable by others (chmod 600 {path})")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a key file: {exc}") from None
    if public is None or secret is None:
        raise KeyFileError(f"{path}: holds no secret key")
    return KeyPair(public, secret)


def load_public(path: Path) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found (run `paxos keys`)") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a key file: {exc}") from None
    if public is None:
        raise KeyFileError(f"{path}: holds no public key")
    return public


def actor_pair(config: ClusterConfig, name: str) -> KeyPair:
    return load_pair(_base(config, name, False).with_suffix(".key_secret"))


def client_pair(config: ClusterConfig, path: str | Path | None = None) -> KeyPair:
    """The client key a program uses: `path`, or the cluster's default client key."""
    return load_pair(Path(path) if path is not None else _base(config, DEFAULT_CLIENT, True).with_suffix(".key_secret"))


def new_session_id(pair: KeyPair | None) -> str:
    """A fresh client session id bound to the key: `<fingerprint>.<random>`. Without a key
    (insecure mode) the prefix is random. Actor names cannot contain a dot, so a session id can
    never be taken for an actor."""
    prefix = pair.fingerprint if pair is not None else secrets.token_hex(FINGERPRINT_HEX // 2)
    return f"{prefix}.{secrets.token_hex(4)}"


def check_session_id(session_id: str, pair: KeyPair | None) -> None:
    """ValueError unless `session_id` is one the key may use."""
    prefix, dot, suffix = session_id.partition(".")
    if not dot or len(prefix) != FINGERPRINT_HEX or not SESSION_SUFFIX.match(suffix) \
            or any(c not in "0123456789abcdef" for c in prefix):
        raise ValueError(f"client_id {session_id!r}: must be <12 hex digits>.<1-16 of a-z0-9_->, "
                         f"such as {new_session_id(pair)!r}")
    if pair is not None and prefix != pair.fingerprint:
        raise ValueError(f"client_id {session_id!r}: must start with {pair.fingerprint}. "
                         f"(the fingerprint of this client's key)")


@dataclass
class Keyring:
    """What one actor knows: its own pair, every actor's public key, and the client keys (read
    again from the directory when an unknown key knocks, so a new client key needs no restart)."""

    own: KeyPair
    actors: dict[str, bytes]  # name -> public key
    clients_dir: Path
    _users: dict[bytes, str] = field(default_factory=dict)  # public key -> User-Id
    actors_dir: Path | None = None  # where actor keys are read again (a membership change adds actors)

    @classmethod
    def load(cls, config: ClusterConfig, name: str) -> Keyring:
        require_curve()
        actors = {n: load_public(_base(config, n, False).with_suffix(".key")) for n in config.actors}
        ring = cls(actor_pair(config, name), actors, keys_dir(config) / "clients", actors_dir=keys_dir(config))
        if ring.actors[name] != ring.own.public:
            raise KeyFileError(f"{name}: its public and secret key files do not match")
        ring._users = {pub: n for n, pub in actors.items()}
        ring.rescan_clients()
        return ring

    def rescan_clients(self) -> None:
        for path in sorted(self.clients_dir.glob("*.key")):
            try:
                public = load_public(path)
            except KeyFileError:
                continue
            self._users.setdefault(public, CLIENT_PREFIX + fingerprint(public))

    def add_actor(self, name: str) -> bool:
        """Learn the public key of an actor a membership change added (from the keys directory,
        where `paxos members add` put it); False if there is none."""
        if name in self.actors:
            return True
        if self.actors_dir is None or not _ACTOR_NAME.match(name):
            return False
        try:
            public = load_public(self.actors_dir / f"{name}.key")
        except KeyFileError:
            return False
        self.actors[name] = public
        self._users.setdefault(public, name)
        return True

    def rescan_actors(self) -> None:
        if self.actors_dir is None:
            return
        for path in sorted(self.actors_dir.glob("*.key")):
            if path.stem not in self.actors:
                self.add_actor(path.stem)

    def user_id(self, public: bytes) -> str | None:
        """The User-Id of a key, or None if it is not one of ours (client and actor keys are read
        again first: a new client, or an actor a membership change is adding, needs no restart;
        what a new actor may do is still up to the membership in the log)."""
        user = self._users.get(public)
        if user is None:
            self.rescan_clients()
            self.rescan_actors()
            user = self._users.get(public)
        return user


def may_claim(user_id: str, routing_id: bytes) -> bool:
    """Whether a connection authenticated as `user_id` may speak as `routing_id`."""
    if user_id.startswith(CLIENT_PREFIX):
        fp = user_id[len(CLIENT_PREFIX):]
        return routing_id.startswith(fp.encode() + b".")
    return routing_id == user_id.encode()


def secure_server(sock: zmq.Socket, pair: KeyPair) -> None:
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret)
    sock.setsockopt(zmq.ZAP_DOMAIN, b"paxos")
    # Without a ZAP answer libzmq would let any key in; refuse instead.
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def secure_client(sock: zmq.Socket, pair: KeyPair, server_public: bytes) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret)


def server_public(config: ClusterConfig, name: str) -> bytes:
    return load_public(_base(config, name, False).with_suffix(".key"))
