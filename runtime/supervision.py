"""Restart policy as data, in the manner of Erlang/OTP supervisors: a small pure object that
takes the time as an argument and says what to do when a child exits. The process handling
(`runtime/supervisor.py`) is a thin shell around it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Exit codes after which a restart cannot help (see runtime/actor.py): fail-stop.
FATAL_EXIT_REASONS = {
    65: "its wal is corrupt or not its own",
    70: "an invariant broke",
    73: "its wal is locked by another process",
    78: "bad configuration",
}


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
    mode: str = "permanent"  # permanent: always; transient: unless it exited 0; temporary: never
    restart_max: int = 5  # at most this many restarts within window_s ...
    window_s: float = 30.0  # ... else give up (a crash loop stops with a clear error)
    delay_s: float = 0.05  # first restart delay; doubles with each recent restart, up to 2 s
    restarts: deque[float] = field(default_factory=deque)
    total_restarts: int = 0

    def on_exit(self, now: float, exit_code: int | None, requested: bool) -> Decision:
        """`exit_code` is negative for a signal (as subprocess reports it); `requested` is
        true when an operator asked for this stop (`down`, `kill --no-restart`)."""
        if requested:
            return Stop("stopped on request")
        if exit_code in FATAL_EXIT_REASONS:
            return Fail(f"exit code {exit_code}: {FATAL_EXIT_REASONS[exit_code]}")
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
        """An operator started the child by hand: the budget starts afresh."""
        self.restarts.clear()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
