"""The test-mode actor: the product's actor process (`runtime.actor`) with the harness's hooks
passed in. The supervisor runs `python -m runtime.harness.actor` instead of `runtime.actor`
when the config says `[testing] enabled = true`; everything else is the same process.

Its hooks:
- link faults (`runtime/harness/faults.py`): every frame to a peer goes through `FaultyLinks`,
  whose rules the harness writes to `<data_dir>/run/faults.json`;
- the durable wal length, published after every fsync (`<data_dir>/run/<name>.synced`), so that
  a power-loss test can cut the file back to what a power failure would leave;
- planted bugs named in `PAXOS_PLANTED_BUGS` (runtime/harness/bugs.py);
- a clock fault: its ticks run `rate` times as fast as they should, from `PAXOS_CLOCK_RATE` at its
  start, then from `<data_dir>/run/clocks.json` ({name: rate}, `faults.set_clocks`), re-read every
  ten ticks (issue 12: a lease must survive clock-rate error within `[reads] clock_drift_max`);
- an injected crash, to test crash-only: after SIGUSR1, the next turn that would persist
  something raises `InjectedCrash` after its steps and before its commit, with the core's
  memory ahead of its file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from runtime.actor import ActorShell, Hooks
from runtime.actor import main as actor_main
from runtime.harness import bugs as planted
from runtime.harness.faults import FaultyLinks, clocks_path, read_clock, synced_path, write_synced
from runtime.turn import Kinds, Turn


class InjectedCrash(RuntimeError):
    """Raised on purpose by the test-mode actor (SIGUSR1)."""


_armed = [False]


class CrashingTurn(Turn):
    def _end(self, ready: Any) -> None:
        if _armed[0] and ready.persist:
            _armed[0] = False
            self.core.end_turn(ready)
            raise InjectedCrash(f"injected after the steps of a turn with {len(ready.persist)} records to persist")
        super()._end(ready)


def _with_crash(kinds: Kinds) -> Kinds:
    turn = kinds.turn if issubclass(kinds.turn, CrashingTurn) else type(
        f"Crashing{kinds.turn.__name__}", (CrashingTurn, kinds.turn), {})
    return replace(kinds, turn=turn)


class TestHooks(Hooks):
    def __init__(self, name: str, bug_names: frozenset[str]) -> None:
        self.name = name
        self.bug_names = bug_names
        self.kinds = _with_crash(planted.kinds(bug_names))
        self.links: FaultyLinks | None = None
        self.clock_rate = 1.0
        self.ticks = 0
        try:
            self.env_rate = float(os.environ.get("PAXOS_CLOCK_RATE", "") or 1.0)
        except ValueError:
            self.env_rate = 1.0

    def send_peer(self, send: Callable[[str, bytes], None]) -> Callable[[str, bytes], None]:
        self._send = send
        return self._send_through_links

    def _send_through_links(self, dest: str, frame: bytes) -> None:
        if self.links is None:
            self._send(dest, frame)
        else:
            self.links.send_peer(dest, frame)

    def started(self, shell: ActorShell) -> None:
        if self.bug_names:
            shell.logger.warning("planted_bugs_enabled", bugs=sorted(self.bug_names))
        self.links = FaultyLinks(self.name, shell.config.run_dir / "faults.json", self._send)
        self.base_tick_s = shell._tick_s
        self.set_clock(shell, self.env_rate if self.env_rate != 1.0 else read_clock(clocks_path(shell.config),
                                                                                    self.name))
        self.tick(shell)
        path = synced_path(shell.config, self.name)
        wal = shell.wal
        assert wal is not None

        def publish(offset: int) -> None:
            write_synced(path, offset, os.fstat(wal.fd).st_ino)

        wal.on_synced = publish
        publish(wal.synced_offset)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _armed.__setitem__, 0, True)

    def set_clock(self, shell: ActorShell, rate: float) -> None:
        if rate != self.clock_rate:
            self.clock_rate = rate
            shell._tick_s = self.base_tick_s / rate
            shell.logger.warning("clock_rate_set", rate=rate, tick_s=shell._tick_s)

    def tick(self, shell: ActorShell) -> None:
        self.ticks += 1
        if self.ticks % 10 == 0 and self.env_rate == 1.0:
            self.set_clock(shell, read_clock(clocks_path(shell.config), self.name))
        if self.links is not None and self.links.reload():
            shell.logger.warning("fault_rules_loaded", rules={d: str(r) for d, r in self.links.rules.items()})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    name = args[args.index("--name") + 1] if "--name" in args[:-1] else ""
    try:
        bug_names = planted.parse(os.environ.get("PAXOS_PLANTED_BUGS"))
    except ValueError as exc:
        print(f"PAXOS_PLANTED_BUGS: {exc}", file=sys.stderr)
        return 78
    return actor_main(args, hooks=TestHooks(name, bug_names))


if __name__ == "__main__":
    sys.exit(main())
