"""What a step of a core hands back to its shell: a `Ready` (the name etcd-raft gives it).

A `Ready` lists records to persist, actions for the shell (take a snapshot, compact the file,
fetch a snapshot), messages to send, decisions delivered and trace events to log. One `Ready`
collects everything a whole turn of the event loop produced, across many steps, so that the
shell persists it under one fsync (group commit) before anything leaves. The one safe order in
which it takes effect is defined here, on the type (`Ready.commit`): persist, then act, then
send, then deliver, then log. Every shell (the actor process, the simulator, the scenario world
and the model checker) commits through it, by way of `runtime.turn.Turn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.messages import Message, Value
from actors.records import Record

INFO = "info"
DEBUG = "debug"
WARNING = "warning"

Event = tuple[str, str, dict[str, Any]]  # (level, event, fields): a fact for the log, never text


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Write a snapshot of the state machine as it stands at the end of this turn (through
    `slot`); the shell answers with `SnapshotTaken` once it is durable."""

    slot: int


@dataclass(frozen=True, slots=True)
class Compact:
    """Rewrite the file so that it no longer holds what the durable snapshot through `slot`
    covers (atomically: the old file or the new one survives a crash, never neither). The new
    file holds the header and the core's `checkpoint()`, taken when the action runs: after the
    turn's records are persisted, so it includes them (the old file need not be read again)."""

    slot: int


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """Fetch the snapshot through `slot` from `source`, in chunks; the shell answers with
    `SnapshotInstalled` once it is here, checked and durable."""

    source: str
    slot: int
    size_bytes: int
    crc: int


Action = TakeSnapshot | Compact | FetchSnapshot


class Ready:
    __slots__ = ("actions", "deliver", "events", "persist", "send")

    def __init__(self) -> None:
        self.persist: list[Record] = []
        self.actions: list[Action] = []
        # (destination, message); a destination is a configured actor name or a client id.
        self.send: list[tuple[str, Message]] = []
        # (slot, value) in slot order: what a learner delivered to its state machine this turn.
        self.deliver: list[tuple[int, Value]] = []
        self.events: list[Event] = []

    def event(self, event: str, level: str = INFO, **fields: Any) -> None:
        self.events.append((level, event, fields))

    def __bool__(self) -> bool:
        return bool(self.persist or self.actions or self.send or self.deliver or self.events)

    def commit(
        self,
        persist: Callable[[list[Record], bool], None],
        send: Callable[[str, list[Message]], None],
        durable: bool,
        deliver: Callable[[list[tuple[int, Value]]], None] | None = None,
        log: Callable[[list[Event]], None] | None = None,
        act: Callable[[list[Action]], None] | None = None,
    ) -> None:
        """Take effect in the only safe order. `persist(records, durable)` must return only once
        the records are on disk when `durable` is true; nothing a peer or a client sees may
        depend on a record that a crash could still lose. `act(actions)` runs the shell's
        actions, after the records they may rest on. `send(dest, messages)` hands one frame per
        destination to the network. A core whose replies need not wait for the disk (the
        learner) commits with `durable=False`, and its shell syncs on a timer."""
        if self.persist:
            persist(self.persist, durable)
        if self.actions and act is not None:
            act(self.actions)
        if self.send:
            for dest, msgs in by_destination(self.send).items():
                send(dest, msgs)
        if self.deliver and deliver is not None:
            deliver(self.deliver)
        if self.events and log is not None:
            log(self.events)


def by_destination(sends: list[tuple[str, Message]]) -> dict[str, list[Message]]:
    """Everything for one destination travels in one frame, in the order the core produced it."""
    grouped: dict[str, list[Message]] = {}
    for dest, message in sends:
        msgs = grouped.get(dest)
        if msgs is None:
            grouped[dest] = [message]
        else:
            msgs.append(message)
    return grouped
