"""Named crash points (`paxos kill NAME --at POINT`): where in its persist-then-reply path an
actor ends itself, and how the request reaches it.

A point names a place around the next turn that persists records (the only turns whose crash
can lose or tear something):

  before-persist            the records are not written at all
  after-write-before-fsync  the frame is written (in the page cache), not fsynced
  after-fsync-before-reply  the frame is durable; none of the turn's messages has left
  after-reply               the turn's messages were handed to ZeroMQ and flushed
  torn-write                only part of the frame is written (recovery keeps the torn bytes in
                            `<name>.wal.torn-N`, then cuts the tail)

Every point applies to acceptors and proposers (they persist, fsync, then reply). A learner
persists without waiting for the disk (its replies never rest on an fsync; it syncs on a timer),
so `after-fsync-before-reply` does not apply to it: asking for it is refused, with that reason.

The request travels as a file: the supervisor writes `<data_dir>/run/crash/<name>.point` (in the
0700 run directory: only the cluster's owner can arm a crash) and waits, bounded, for the actor to
take it; the actor looks for it every ten ticks (one stat), deletes it and arms the point (`crash_point_armed`).
At the point it logs `crash_point_reached` (flushed), says so on stderr and ends with
`os._exit(EXIT_CRASH_POINT)`, which the supervisor treats as a crash to restart by policy.

Pure apart from the small file helpers at the end (no sockets, no clocks).
"""

from __future__ import annotations

import os
from pathlib import Path

BEFORE_PERSIST = "before-persist"
AFTER_WRITE = "after-write-before-fsync"
AFTER_FSYNC = "after-fsync-before-reply"
AFTER_REPLY = "after-reply"
TORN_WRITE = "torn-write"
POINTS: tuple[str, ...] = (BEFORE_PERSIST, AFTER_WRITE, AFTER_FSYNC, AFTER_REPLY, TORN_WRITE)
ROLES_POINTS: dict[str, tuple[str, ...]] = {
    "acceptor": POINTS,
    "proposer": POINTS,
    "learner": tuple(p for p in POINTS if p != AFTER_FSYNC),
}
# Why a point does not apply to a role (said with the refusal).
NOT_FOR: dict[tuple[str, str], str] = {
    ("learner", AFTER_FSYNC): "a learner's replies do not wait for an fsync (it writes without waiting "
                              "and syncs on a timer), so there is no moment after the fsync and before "
                              "the reply",
}
# The exit code of an actor that ended itself at a crash point (runtime/actor.py's list): a
# crash like any other to the supervisor (restarted by policy), told apart in its log.
EXIT_CRASH_POINT = 72
REQUEST_SUFFIX = ".point"
# A torn write keeps the frame's header and this share of its payload.
TORN_SHARE = 0.5


class CrashPointError(ValueError):
    """A point that does not exist, or does not apply to the actor's role."""


def check(point: str, role: str) -> str:
    """The point, if `role` has it; else CrashPointError with the valid ones."""
    if point not in POINTS:
        raise CrashPointError(f"unknown crash point {point!r} (valid: {', '.join(POINTS)})")
    if point not in ROLES_POINTS.get(role, ()):
        why = NOT_FOR.get((role, point), f"a {role} has no such point")
        raise CrashPointError(f"crash point {point!r} does not apply to a {role}: {why} "
                              f"(valid for a {role}: {', '.join(ROLES_POINTS.get(role, ()))})")
    return point


def torn_length(frame_bytes: int, header_bytes: int) -> int:
    """How many bytes of a frame a torn write leaves: the header and part of the payload, never
    the whole frame (else it would not be torn) and never nothing."""
    payload = frame_bytes - header_bytes
    return max(1, min(frame_bytes - 1, header_bytes + int(payload * TORN_SHARE)))


def request_path(run_dir: Path, name: str) -> Path:
    return run_dir / "crash" / f"{name}{REQUEST_SUFFIX}"


def write_request(run_dir: Path, name: str, point: str) -> Path:
    """The supervisor's side: the request file, written whole (temporary file, rename)."""
    path = request_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(point + "\n")
    os.replace(tmp, path)
    return path


def take_request(run_dir: Path, name: str) -> str | None:
    """The actor's side, when it looks: the point asked for (the file is removed), or None."""
    path = request_path(run_dir, name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        path.unlink()
    except FileNotFoundError:
        return None  # the supervisor gave up on it meanwhile: it was not delivered
    return text.strip()


def withdraw_request(run_dir: Path, name: str) -> bool:
    """The supervisor's side: remove a request the actor did not take; False if it took it."""
    try:
        request_path(run_dir, name).unlink()
    except FileNotFoundError:
        return False
    return True
