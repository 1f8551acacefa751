"""Supervision as data, in the manner of Erlang/OTP supervisors: declarative child specs, a child
state machine with guarded transitions, and a restart policy, all pure (time is an argument).
The process handling (`runtime/supervisor.py`) is a thin shell around them.

Like OTP's `one_for_one` strategy: a child that dies is restarted alone. Children start in the
order of their specs (acceptors, then learners, then proposers: a leader that comes up finds
acceptors to talk to and learners to tell) and stop in the reverse order, one at a time, each
with SIGTERM and then SIGKILL after its `shutdown_s`. Where we differ from OTP, on purpose:
- the restart intensity is per child, not per supervisor: one crash-looping acceptor must not
  take the healthy rest of the cluster down with it;
- giving up marks the child `failed` and leaves it for an operator (`paxos start`), instead of
  ending the supervisor: the cluster keeps serving with the children it has;
- exit codes that a restart cannot mend (a corrupt file, a broken invariant) fail the child at
  once, whatever the policy;
- so does a full disk (exit 75, `NO_SPACE_EXIT`): a restart would only fail again, and a loop of
  them would fill the logs of the very disk that is full. The child waits, failed, with the
  path of the full disk in its reason, until an operator frees space and starts it.
"""

from __future__ import annotations

import enum
import signal
from collections import deque
from dataclasses import dataclass, field

# Exit codes after which a restart cannot help (see runtime/actor.py): fail-stop.
FATAL_EXIT_REASONS = {
    65: "its wal is corrupt or not its own",
    70: "an invariant broke",
    73: "its wal is locked by another process",
    78: "bad configuration",
}
# A file system (or quota) holding the child's files is full: fail until space is freed.
NO_SPACE_EXIT = 75
NO_SPACE = "no space left on device"
# Exit codes a restart is meant to mend, said in words.
EXIT_REASONS = {
    71: "crashed on an unexpected error (see its log: actor_crashed)",
    72: "ended itself at the crash point it was asked for (paxos kill --at; its log: crash_point_reached)",
    74: "a write or fsync failed",
    NO_SPACE_EXIT: NO_SPACE,
}
START_ORDER = ("acceptor", "learner", "proposer")


@dataclass(frozen=True)
class ChildSpec:
    """What to run and how to treat it (OTP's child_spec)."""

    id: str
    role: str
    argv: tuple[str, ...]
    restart: str = "permanent"  # permanent: always; transient: unless it exited 0; temporary: never
    shutdown_s: float = 5.0  # SIGTERM, then SIGKILL after this long


def start_order(specs: list[ChildSpec]) -> list[ChildSpec]:
    """Acceptors, then learners, then proposers; config order within a role."""
    return sorted(specs, key=lambda s: START_ORDER.index(s.role))


class ChildState(enum.Enum):
    STOPPED = "stopped"  # not running, on request (or never started)
    RUNNING = "running"
    PAUSED = "paused"  # SIGSTOP
    RESTARTING = "restarting"  # exited; a restart is scheduled
    FAILED = "failed"  # exited; no restart until an operator starts it


_ALLOWED: dict[ChildState, frozenset[ChildState]] = {
    ChildState.STOPPED: frozenset({ChildState.RUNNING, ChildState.FAILED}),
    ChildState.RUNNING: frozenset({ChildState.PAUSED, ChildState.RESTARTING, ChildState.STOPPED, ChildState.FAILED}),
    ChildState.PAUSED: frozenset({ChildState.RUNNING, ChildState.RESTARTING, ChildState.STOPPED, ChildState.FAILED}),
    ChildState.RESTARTING: frozenset({ChildState.RUNNING, ChildState.STOPPED, ChildState.FAILED}),
    ChildState.FAILED: frozenset({ChildState.RUNNING, ChildState.FAILED}),
}


class BadTransition(RuntimeError):
    """The supervisor tried to move a child along an edge that does not exist (our bug)."""


@dataclass(frozen=True)
class Restart:
    delay_s: float


@dataclass(frozen=True)
class Stop:
    reason: str


@dataclass(frozen=True)
class Fail:
    reason: str


Decision = Restart | Stop | Fail


@dataclass
class RestartPolicy:
    mode: str = "permanent"
    restart_max: int = 5  # at most this many restarts within window_s ...
    window_s: float = 30.0  # ... else give up (a crash loop stops with a clear error)
    delay_s: float = 0.05  # first restart delay; doubles with each recent restart, up to 2 s
    restarts: deque[float] = field(default_factory=deque)
    total_restarts: int = 0  # since an operator last started the child

    def on_exit(self, now: float, exit_code: int | None, requested: bool) -> Decision:
        """`exit_code` is negative for a signal (as subprocess reports it); `requested` is
        true when an operator asked for this stop (`down`, `kill --no-restart`)."""
        if requested:
            return Stop("stopped on request")
        if exit_code in FATAL_EXIT_REASONS:
            return Fail(f"exit code {exit_code}: {FATAL_EXIT_REASONS[exit_code]}")
        if exit_code == NO_SPACE_EXIT:
            return Fail(f"{NO_SPACE} (exit code {exit_code}); free space, then start it again")
        if self.mode == "temporary":
            return Stop(f"exited ({describe_exit(exit_code)}); policy is temporary")
        if self.mode == "transient" and exit_code == 0:
            return Stop("exited normally; policy is transient")
        while self.restarts and now - self.restarts[0] > self.window_s:
            self.restarts.popleft()
        if len(self.restarts) >= self.restart_max:
            return Fail(f"restart budget exhausted: {len(self.restarts)} restarts within "
                        f"{self.window_s:g}s (last exit: {describe_exit(exit_code)})")
        delay = min(self.delay_s * (2 ** len(self.restarts)), 2.0)
        self.restarts.append(now)
        self.total_restarts += 1
        return Restart(delay)

    def reset(self) -> None:
        """An operator started the child by hand: the budget and the count start afresh."""
        self.restarts.clear()
        self.total_restarts = 0


@dataclass
class ChildRecord:
    """A child's supervision state: where it stands, why, and its restart budget."""

    spec: ChildSpec
    policy: RestartPolicy
    state: ChildState = ChildState.STOPPED
    reason: str = ""

    def to(self, new: ChildState, reason: str = "") -> None:
        if new not in _ALLOWED[self.state]:
            raise BadTransition(f"{self.spec.id}: {self.state.value} -> {new.value} is not a transition")
        self.state = new
        self.reason = reason


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    reason = EXIT_REASONS.get(code) or FATAL_EXIT_REASONS.get(code)
    return f"exit code {code}" + (f" ({reason})" if reason else "")
