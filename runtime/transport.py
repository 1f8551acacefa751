"""ZeroMQ transport for one actor: a ROUTER it binds for everything inbound, a DEALER per peer
for everything outbound.

Peers' DEALERs carry the peer's name as routing id, clients' carry the client id, so a ROUTER
frame says who sent it and replies to clients go back by routing id. Sends never block: a full
queue or an unconnected peer drops the frame (Paxos survives loss; retransmission is the
cores' job) and counts it. The ZeroMQ file descriptor is edge-triggered, so every readiness is
drained until EAGAIN, and the socket is re-checked after sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import zmq

DRAIN_FRAMES_MAX = 256  # frames handled per turn before yielding to timers
# Plain ints: pyzmq's enum constants cost a Python call each time they are used.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)


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
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.bind_endpoint = bind
        self.peer_endpoints = dict(peers)
        self.on_frames = on_frames
        self.frame_bytes_max = frame_bytes_max
        self.hwm = hwm
        self.router: zmq.Socket | None = None
        self.dealers: dict[str, zmq.Socket] = {}
        self.dropped = 0
        self.frames_in = 0
        self.frames_out = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_scheduled = False
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted peer takes its name back
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unknown client -> error, not a silent drop
        router.setsockopt(zmq.RCVHWM, self.hwm)
        router.setsockopt(zmq.SNDHWM, self.hwm)
        # Frames over twice the limit are refused by libzmq itself (the peer is disconnected);
        # anything between the limit and that is refused, with a log line, by the shell.
        router.setsockopt(zmq.MAXMSGSIZE, 2 * self.frame_bytes_max)
        router.bind(self.bind_endpoint)
        self.router = router
        for peer, endpoint in self.peer_endpoints.items():
            self.dealers[peer] = self._dealer(endpoint)
        self._loop.add_reader(router.getsockopt(zmq.FD), self._readable)
        self._schedule_drain()

    def _dealer(self, endpoint: str) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
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
        # Ask before each receive rather than catch zmq.Again: an exception per turn is costly.
        while len(batch) < DRAIN_FRAMES_MAX and events(_EVENTS) & _POLLIN:
            batch.append(recv(_NOBLOCK))
        if batch:
            self.frames_in += len(batch)
            self.on_frames(batch)
            # More may be waiting (budget hit, or frames that arrived while we handled these).
            self._schedule_drain()

    def send_peer(self, peer: str, frame: bytes) -> None:
        try:
            self.dealers[peer].send(frame, _NOBLOCK)
            self.frames_out += 1
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
        if self.router is not None and self._loop is not None:
            try:
                self._loop.remove_reader(int(self.router.getsockopt(zmq.FD)))
            except Exception:
                pass
            self.router.close(0)
            self.router = None
        for s in self.dealers.values():
            s.close(0)
        self.dealers.clear()
