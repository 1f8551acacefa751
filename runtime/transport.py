"""ZeroMQ transport for one actor: a ROUTER it binds for everything inbound, a DEALER per peer
for everything outbound.

Peers' DEALERs carry the peer's name as routing id, clients' carry the client id, so a ROUTER
frame says who sent it and replies to clients go back by routing id. Sends never block: a full
queue or an unconnected peer drops the frame (Paxos survives loss; retransmission is the
cores' job) and counts it. The ZeroMQ file descriptor is edge-triggered, so every readiness is
drained until EAGAIN, and the socket is re-checked after sends.

With a `Keyring` (the default; runtime/keys.py) the ROUTER is a CurveZMQ server and every DEALER
a CurveZMQ client of its peer's key. `Zap` answers libzmq's authentication requests: a key that
is not ours fails the handshake, so its connection never delivers a frame. libzmq does not show
the handler the routing id a connection claims, so that is checked on every frame instead,
against the frame's `User-Id` (the key it came with): a frame whose claim its key does not
allow never reaches the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import zmq
from zmq.utils import z85

from runtime.keys import Keyring, may_claim, secure_client, secure_server

DRAIN_FRAMES_MAX = 256  # frames handled per turn before yielding to timers
# Plain ints: pyzmq's enum constants cost a Python call each time they are used.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
CLAIMS_CACHED_MAX = 10_000

Refused = Callable[[bytes, str, str], None]  # (who, reason, detail)


def _close_reader(loop: asyncio.AbstractEventLoop | None, sock: zmq.Socket) -> None:
    """Stop watching a socket's fd on the loop (if it was), then close the socket."""
    if loop is not None:
        try:
            loop.remove_reader(int(sock.getsockopt(zmq.FD)))
        except Exception:
            pass  # the loop is closed already, or never watched it
    sock.close(0)


class Zap:
    """The ZAP handler (ZeroMQ RFC 27) of one process: libzmq asks it about every CURVE
    handshake on that context's server sockets; it lets in the keys the keyring knows, each
    with its User-Id, and refuses the rest. It runs on the event loop: handshakes are rare."""

    def __init__(self, ctx: zmq.Context, keyring: Keyring, on_refused: Refused) -> None:
        self.ctx = ctx
        self.keyring = keyring
        self.on_refused = on_refused
        self.sock: zmq.Socket | None = None
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Bind before any server socket binds: a handshake that finds no handler is refused
        (ZAP_ENFORCE_DOMAIN), so nothing gets in before this runs."""
        self._loop = asyncio.get_running_loop()
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        self.sock = sock
        self._loop.add_reader(sock.getsockopt(zmq.FD), self._drain)
        self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        sock = self.sock
        if sock is None:
            return
        while int(sock.getsockopt(_EVENTS)) & _POLLIN:
            reply = self.answer(sock.recv_multipart(_NOBLOCK))
            if reply:
                sock.send_multipart(reply)

    def answer(self, request: list[bytes]) -> list[bytes]:
        try:
            cut = request.index(b"")
        except ValueError:
            return []
        envelope, body = request[:cut + 1], request[cut + 1:]
        if len(body) < 6:
            return [*envelope, b"1.0", b"", b"400", b"malformed ZAP request", b"", b""]
        version, request_id, _domain, address, _identity, mechanism = body[:6]
        credentials = body[6:]
        if version != b"1.0":
            return [*envelope, b"1.0", request_id, b"400", b"unknown ZAP version", b"", b""]
        user = None
        if mechanism == b"CURVE" and credentials and len(credentials[0]) == 32:
            user = self.keyring.user_id(z85.encode(credentials[0]))
        if user is None:
            self.refused += 1
            self.on_refused(address, "unknown_key", f"{mechanism.decode('ascii', 'replace')} handshake "
                                                    f"from {address.decode('ascii', 'replace')} with a key "
                                                    f"that is not this cluster's")
            return [*envelope, b"1.0", request_id, b"400", b"unknown key", b"", b""]
        return [*envelope, b"1.0", request_id, b"200", b"OK", user.encode(), b""]

    def close(self) -> None:
        if self.sock is not None:
            _close_reader(self._loop, self.sock)
            self.sock = None


class Transport:
    def __init__(
        self,
        ctx: zmq.Context,
        name: str,
        bind: str,
        peers: dict[str, str],
        on_frames: Callable[[list[list[bytes]]], None],
        frame_bytes_max: int,
        hwm: int = 10_000,
        keyring: Keyring | None = None,
        on_refused: Refused | None = None,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.bind_endpoint = bind
        self.peer_endpoints = dict(peers)
        self.on_frames = on_frames
        self.frame_bytes_max = frame_bytes_max
        self.hwm = hwm
        self.keyring = keyring
        self.on_refused: Refused = on_refused or (lambda who, reason, detail: None)
        self.zap = Zap(ctx, keyring, self.on_refused) if keyring is not None else None
        self._claims: dict[tuple[str, bytes], bool] = {}
        self.refused = 0
        self.router: zmq.Socket | None = None
        self.dealers: dict[str, zmq.Socket] = {}
        self.dropped = 0
        self.frames_in = 0
        self.frames_out = 0
        self.frames_to: dict[str, int] = {}  # frames sent to each peer: the page's arrows (runtime/web/)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_scheduled = False
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.zap is not None:
            self.zap.start()
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted peer takes its name back
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unknown client -> error, not a silent drop
        router.setsockopt(zmq.RCVHWM, self.hwm)
        router.setsockopt(zmq.SNDHWM, self.hwm)
        # Frames over twice the limit are refused by libzmq itself (the peer is disconnected);
        # anything between the limit and that is refused, with a log line, by the shell.
        router.setsockopt(zmq.MAXMSGSIZE, 2 * self.frame_bytes_max)
        if self.keyring is not None:
            secure_server(router, self.keyring.own)
        router.bind(self.bind_endpoint)
        self.router = router
        for peer, endpoint in self.peer_endpoints.items():
            self.dealers[peer] = self._dealer(peer, endpoint)
        self._loop.add_reader(router.getsockopt(zmq.FD), self._readable)
        self._schedule_drain()

    def _dealer(self, peer: str, endpoint: str) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
        if self.keyring is not None:
            secure_client(s, self.keyring.own, self.keyring.actors[peer])
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue only to live connections: no stale backlog
        s.setsockopt(zmq.SNDHWM, self.hwm)
        s.setsockopt(zmq.RECONNECT_IVL, 20)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 100)  # a restarted peer is back within a tenth of a second
        s.setsockopt(zmq.ROUTING_ID, self.name.encode())
        s.connect(endpoint)
        return s

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled and self._loop is not None and not self._closed:
            self._drain_scheduled = True
            self._loop.call_soon(self._readable)

    def _readable(self) -> None:
        self._drain_scheduled = False
        router = self.router
        if router is None or self._closed:
            return
        batch: list[list[bytes]] = []
        recv = router.recv_multipart
        # pyzmq types every option's value as int | bytes; EVENTS is an int.
        events: Callable[[int], int] = router.getsockopt  # type: ignore[assignment]
        received = 0
        # Ask before each receive rather than catch zmq.Again: an exception per turn is costly.
        if self.keyring is None:
            while len(batch) < DRAIN_FRAMES_MAX and events(_EVENTS) & _POLLIN:
                batch.append(recv(_NOBLOCK))
            received = len(batch)
        else:
            claims = self._claims
            while received < DRAIN_FRAMES_MAX and events(_EVENTS) & _POLLIN:
                parts = recv(_NOBLOCK, copy=False)
                received += 1
                identity = parts[0].bytes
                user = str(parts[-1].get("User-Id"))
                allowed = claims.get((user, identity))
                if allowed is None:
                    if len(claims) >= CLAIMS_CACHED_MAX:
                        claims.clear()
                    allowed = claims[(user, identity)] = may_claim(user, identity)
                if allowed:
                    batch.append([p.bytes for p in parts])
                else:
                    self.refused += 1
                    self.on_refused(identity, "claim_not_allowed",
                                    f"a connection with the key of {user!r} claimed to be "
                                    f"{identity.decode('utf-8', 'replace')[:64]!r}")
        if received:
            self.frames_in += received
            if batch:
                self.on_frames(batch)
            # More may be waiting (budget hit, or frames that arrived while we handled these).
            self._schedule_drain()

    def add_peer(self, peer: str, endpoint: str) -> None:
        """A peer a membership change brought (its key must be in the keyring first)."""
        if peer in self.dealers or self._closed:
            return
        self.peer_endpoints[peer] = endpoint
        if self.router is not None:
            self.dealers[peer] = self._dealer(peer, endpoint)

    def send_peer(self, peer: str, frame: bytes) -> None:
        try:
            self.dealers[peer].send(frame, _NOBLOCK)
            self.frames_out += 1
            self.frames_to[peer] = self.frames_to.get(peer, 0) + 1
        except zmq.Again:
            self.dropped += 1

    def send_client(self, identity: bytes, frame: bytes) -> None:
        router = self.router
        if router is None:
            return
        try:
            router.send_multipart([identity, frame], _NOBLOCK)
            self.frames_out += 1
        except zmq.ZMQError:
            # Again (queue full) or EHOSTUNREACH (client gone): the client retries.
            self.dropped += 1

    def after_sends(self) -> None:
        """Sending on the ROUTER can consume the edge of its fd; look again."""
        router = self.router
        if router is not None and not self._closed and int(router.getsockopt(_EVENTS)) & _POLLIN:
            self._schedule_drain()

    def close(self) -> None:
        self._closed = True
        if self.router is not None:
            _close_reader(self._loop, self.router)
            self.router = None
        for s in self.dealers.values():
            s.close(0)
        self.dealers.clear()
        if self.zap is not None:
            self.zap.close()
