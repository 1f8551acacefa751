"""One actor as one OS process: `python -m runtime.actor --config cluster.toml --name a1`.

The shell around a pure core: it replays the actor's wal through the core, then feeds it
frames and ticks, and applies each turn's output in the only safe order: persist (one frame,
one fsync), then send, then log. It runs the same in the foreground (for systemd or a person)
and under the supervisor.

Exit codes: 0 stopped on request; 65 the wal is corrupt or not ours (fail-stop: do not
restart); 70 an invariant broke (our bug: fail-stop); 73 the wal is locked by another process;
74 a write or fsync failed; 78 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from actors import bugs as planted
from actors.acceptor import Acceptor
from actors.invariants import InvariantViolation
from actors.kv import KVStore
from actors.learner import Learner
from actors.messages import (
    Hello,
    Message,
    StatusQuery,
    StatusReply,
    Submit,
)
from actors.output import Output
from actors.proposer import Proposer
from runtime import codec, logs
from runtime.commit import commit
from runtime.config import ClusterConfig, ConfigError, load
from runtime.wal import Recovery, Wal, WalCorrupt, WalError, WalFatal, WalFormatError, WalLocked, gc_paused

EXIT_OK = 0
EXIT_CORRUPT = 65
EXIT_INVARIANT = 70
EXIT_LOCKED = 73
EXIT_IO = 74
EXIT_CONFIG = 78
FATAL_EXIT_CODES = (EXIT_CORRUPT, EXIT_INVARIANT, EXIT_LOCKED, EXIT_CONFIG)

Core = Acceptor | Proposer | Learner


class Fatal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def build_core(config: ClusterConfig, name: str, rng: random.Random) -> Core:
    spec = config.actor(name)
    acceptors = [a.name for a in config.acceptors]
    learners = [lr.name for lr in config.learners]
    if spec.role == "acceptor":
        return Acceptor(name, config.proposer_ids, learners, config.reply_bytes_max,
                        config.protocol.fetch_slots_max)
    if spec.role == "proposer":
        return Proposer(name, spec.id, config.proposer_ids, acceptors, learners,
                        config.proposer_params(), rng)
    kv = KVStore(config.limits.key_bytes_max, config.limits.value_bytes_max,
                 config.limits.sessions_max)
    return Learner(name, acceptors, codec.decode_client_batch, kv,
                   fetch_ticks=config.protocol.fetch_ticks,
                   fetch_slots_max=config.protocol.fetch_slots_max, proposer_ids=config.proposer_ids)


class ActorShell:
    def __init__(self, config: ClusterConfig, name: str, console: bool) -> None:
        self.config = config
        self.spec = config.actor(name)
        self.name = name
        self.role = self.spec.role
        self.logger = logs.configure(name, self.role, config.log_path(name), console,
                                     config.cluster.log_level)
        self.debug = logs.is_debug(self.logger)
        self.peers = {s.name: s.endpoint for s in config.actors.values() if s.name != name}
        self.core: Core = build_core(config, name, random.Random(int.from_bytes(os.urandom(8), "big")))
        self.core.verbose = self.debug
        # Tests only: planted bugs (actors/bugs.py), named in the environment.
        self.bugs = planted.parse(os.environ.get("PAXOS_PLANTED_BUGS"))
        self.core.bugs = self.bugs
        if self.bugs:
            self.logger.warning("planted_bugs_enabled", bugs=sorted(self.bugs))
        self.links: Any = None  # test mode: runtime.faults.FaultyLinks
        self.wal: Wal | None = None
        self.transport: Any = None
        self.started = time.monotonic()
        self.frames_rejected = 0
        self.turns = 0
        self._stop = asyncio.Event()
        self._flush = getattr(self.core, "flush", None)
        self._send_peer: Callable[[str, bytes], None] = lambda dest, frame: None
        self._client_sent = False
        self._encoder = codec.FrameEncoder(name)
        # Records written without waiting for the disk become durable on a timer: a learner's
        # every ten ticks; with a planted bug (reply_before_fsync), one tick late.
        self._replies_wait_for_disk = self.core.replies_wait_for_disk
        self._sync_every_ticks = 1 if self.bugs else 0 if self._replies_wait_for_disk else 10
        self.ticks = 0
        self._tick_s = config.cluster.tick_ms / 1000.0

    # --- recovery --------------------------------------------------------------------------

    def recover(self) -> None:
        path = self.config.wal_path(self.name)
        marker = self.config.data_dir / "state" / f"{self.name}.voted"
        if self.role == "acceptor" and marker.exists() and not path.exists():
            # It promised and accepted before: a fresh file would forget those promises.
            raise Fatal(EXIT_CORRUPT, f"{path}: missing, but {self.name} has voted before "
                        f"({marker} exists); restore the file, or delete the marker to rejoin "
                        f"as a new acceptor (unsafe if a majority lost their files)")
        t0 = time.perf_counter()
        with gc_paused():
            recovery = self._replay(path)
        # What replay built lives as long as the process: keep the collector from rescanning it.
        gc.freeze()
        if self.role == "acceptor":
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        if self.config.testing.enabled:
            self._publish_synced()
        elapsed = time.perf_counter() - t0
        self.logger.info("recovered", records=recovery.count, frames=recovery.frames,
                         wal_bytes=recovery.bytes, created=recovery.created,
                         seconds=round(elapsed, 4), **_summary(self.core.status()))

    def _replay(self, path: Path) -> Recovery:
        """Open the wal and apply every record through the live path's `apply`."""
        try:
            self.wal, recovery = Wal.open(path, self.role, self.name, self.config.cluster.fsync, self.bugs,
                                          apply=self.core.apply)
        except WalLocked as exc:
            raise Fatal(EXIT_LOCKED, str(exc)) from None
        except (WalCorrupt, WalFormatError) as exc:
            self.logger.critical("wal_corrupt", path=str(path), error=str(exc),
                                 offset=getattr(exc, "offset", None))
            raise Fatal(EXIT_CORRUPT, str(exc)) from None
        except (InvariantViolation, TypeError) as exc:
            self.logger.critical("wal_corrupt", path=str(path), error=str(exc))
            raise Fatal(EXIT_CORRUPT, f"{path}: records contradict each other: {exc}") from None
        if recovery.truncated_at is not None:
            self.logger.warning("wal_tail_truncated", path=str(path), offset=recovery.truncated_at,
                                bytes_cut=recovery.truncated_bytes, backup=str(recovery.backup))
        return recovery

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.recover()
        ctx = zmq.Context.instance()
        from runtime.transport import Transport

        self.transport = Transport(ctx, self.name, self.spec.endpoint, self.peers, self._on_frames,
                                   self.config.limits.message_bytes_max)
        try:
            self.transport.start()
        except zmq.ZMQError as exc:
            raise Fatal(EXIT_CONFIG, f"cannot bind {self.spec.endpoint}: {exc}") from None
        self._send_peer = self.transport.send_peer
        if self.config.testing.enabled:
            from runtime.faults import FaultyLinks

            self.links = FaultyLinks(self.name, self.config.run_dir / "faults.json", self.transport.send_peer)
            self.links.reload()
            self._send_peer = self.links.send_peer
        self.logger.info("actor_started", endpoint=self.spec.endpoint, pid=os.getpid(),
                         tick_ms=self.config.cluster.tick_ms, fsync=self.config.cluster.fsync)
        loop.call_later(self._tick_s, self._tick)
        try:
            await self._stop.wait()
        finally:
            self.logger.info("actor_stopping", turns=self.turns, frames_in=self.transport.frames_in,
                             frames_out=self.transport.frames_out, dropped=self.transport.dropped)
            self.transport.close()
            if self.wal is not None:
                self.wal.close()
            logs.flush()
        return EXIT_OK

    def _tick(self) -> None:
        if self._stop.is_set():
            return
        asyncio.get_running_loop().call_later(self._tick_s, self._tick)
        out = Output()
        self.core.tick(out)
        self._commit(out)
        if self.links is not None and self.links.reload():
            self.logger.warning("fault_rules_loaded", rules={d: str(r) for d, r in self.links.rules.items()})
        self.ticks += 1
        if self._sync_every_ticks and self.ticks % self._sync_every_ticks == 0 and self.wal is not None:
            self.wal.sync()

    def _on_frames(self, batch: list[list[bytes]]) -> None:
        out = Output()
        step = self.core.step
        debug = self.debug
        limit = self.config.limits.message_bytes_max
        for parts in batch:
            if len(parts) != 2:
                self._reject(b"?", "framing", f"{len(parts)} frame parts, expected 2")
                continue
            identity, frame = parts
            if len(frame) > limit:
                self._reject(identity, "oversized", f"{len(frame)} bytes > {limit}")
                continue
            try:
                sender, messages = codec.decode_frame(frame)
            except codec.DecodeError as exc:
                self._reject(identity, exc.reason, exc.detail)
                continue
            if sender.encode() != identity:
                self._reject(identity, "sender_mismatch", f"frame claims to be from {sender!r}")
                continue
            known = sender in self.peers
            for message in messages:
                kind = type(message)
                if debug:
                    self.logger.debug("message_received", peer=sender, type=kind.TYPE,
                                      **_fields(message))
                if kind is StatusQuery:
                    self._answer_status(identity)
                elif kind is Hello:
                    self.transport.send_client(identity, codec.encode_frame(self.name, [Hello()]))
                elif known or (kind is Submit and self.role == "proposer"):
                    try:
                        step(sender, message, out)
                    except InvariantViolation as exc:
                        self._die(exc)
                else:
                    self._reject(identity, "unknown_sender", f"{kind.TYPE} from {sender!r}, "
                                 f"which is not in {self.config.path.name}")
        if self._flush is not None:
            self._flush(out)
        self._commit(out)

    def _persist(self, records: list[Any], durable: bool) -> None:
        try:
            self.wal.append(records, sync=durable)  # type: ignore[union-attr]
        except WalFatal as exc:
            self.logger.critical("wal_write_failed", error=str(exc))
            logs.flush()
            os._exit(EXIT_IO)

    def _send(self, dest: str, msgs: list[Message]) -> None:
        frame = self._encoder.encode(msgs)
        if dest in self.peers:
            self._send_peer(dest, frame)
        else:
            self.transport.send_client(dest.encode(), frame)
            self._client_sent = True
        if self.debug:
            for m in msgs:
                self.logger.debug("message_sent", peer=dest, type=m.TYPE, **_fields(m))

    def _commit(self, out: Output) -> None:
        """Persist, then send, then log: nothing leaves before the records that justify it are
        on disk (runtime/commit.py)."""
        self.turns += 1
        self._client_sent = False
        self._encoder.reset()  # per turn: a message is packed once
        commit(out, self._persist, self._send, self.bugs, durable=self._replies_wait_for_disk)
        if self._client_sent:
            self.transport.after_sends()
        if out.events:
            log = self.logger
            for level, event, fields in out.events:
                getattr(log, level)(event, **fields)
        logs.flush()

    def _reject(self, identity: bytes, reason: str, detail: str) -> None:
        self.frames_rejected += 1
        self.logger.warning("frame_rejected", peer=identity.decode("utf-8", "replace")[:64],
                            reason=reason, detail=detail[:200])

    def _publish_synced(self) -> None:
        """Test mode: keep the durable wal length in a shared 8-byte file (runtime/faults.py),
        updated after every fsync and before anything is sent, so a power-loss test can cut the
        file back to it after a kill -9 (the page cache keeps what a killed process wrote to a
        shared map)."""
        from runtime.faults import synced_path, write_synced

        path = synced_path(self.config, self.name)
        wal = self.wal
        assert wal is not None

        def publish(offset: int) -> None:
            write_synced(path, offset)

        wal.on_synced = publish
        publish(wal.synced_offset)

    def _answer_status(self, identity: bytes) -> None:
        info = dict(self.core.status())
        info.update(name=self.name, pid=os.getpid(), uptime_s=round(time.monotonic() - self.started, 3),
                    wal_bytes=self.wal.offset if self.wal else 0,
                    wal_synced_bytes=self.wal.synced_offset if self.wal else 0,
                    fsyncs=self.wal.fsyncs if self.wal else 0,
                    frames_rejected=self.frames_rejected, frames_dropped=self.transport.dropped)
        reply = StatusReply(tuple((k, v) for k, v in info.items()))
        self.transport.send_client(identity, codec.encode_frame(self.name, [reply]))
        self.transport.after_sends()

    def _die(self, exc: InvariantViolation) -> None:
        self.logger.critical("invariant_violated", rule=exc.rule, **{k: str(v) for k, v in exc.state.items()})
        logs.flush()
        print(f"{self.name}: invariant violated: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_INVARIANT)


def _fields(message: Message) -> dict[str, Any]:
    """A short, log-friendly view of a message (no payloads)."""
    out: dict[str, Any] = {}
    for name in getattr(message, "__slots__", ()):
        value = getattr(message, name)
        if name in ("entries",):
            out["slots"] = f"{value[0][0]}..{value[-1][0]}" if value else ""
            out["count"] = len(value)
        elif name in ("votes",):
            out["votes"] = len(value)
        elif name == "slots":
            out["slots"] = f"{value[0]}..{value[-1]}" if value else ""
        elif name in ("values", "batch", "info", "results"):
            out[name] = len(value)
        else:
            out[name] = str(value) if not isinstance(value, (int, str, bool)) else value
    return out


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    keep = ("promised", "highest_slot", "chosen_through", "delivered", "round", "epoch")
    return {k: v for k, v in status.items() if k in keep}


def _set_parent_death_signal() -> None:
    """Under the supervisor: die with it, so no actor outlives a killed supervisor."""
    parent = os.environ.get("PAXOS_SUPERVISOR_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != int(parent):
        os._exit(EXIT_OK)  # the supervisor is already gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.actor",
                                     description="Run one actor of a Paxos cluster in the foreground.")
    parser.add_argument("--config", default="cluster.toml", help="cluster config (default: ./cluster.toml)")
    parser.add_argument("--name", required=True, help="the actor's name in the config")
    parser.add_argument("--no-console", action="store_true", help="log to the JSON file only")
    args = parser.parse_args(argv)
    _set_parent_death_signal()
    try:
        config = load(args.config)
        config.actor(args.name)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is a fallback
        runner = asyncio.run
    shell = ActorShell(config, args.name, console=not args.no_console)
    profile_dir = os.environ.get("PAXOS_PROFILE")  # diagnostics: cProfile stats at shutdown
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        return runner(shell.run())
    except Fatal as exc:
        logs.flush()
        print(f"{args.name}: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except WalError as exc:
        logs.flush()
        print(f"{args.name}: {exc}", file=sys.stderr, flush=True)
        return EXIT_CORRUPT
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.path.join(profile_dir, f"{args.name}.prof"))


if __name__ == "__main__":
    sys.exit(main())
