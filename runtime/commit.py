"""The one safe order in which a turn's output takes effect, shared by the real actor process and
the simulator, so that the simulator checks the order the processes really use.

Persist (and make durable) first, then send, grouped per destination: nothing a peer or client
sees may depend on a record that a crash could still lose. The planted bug `reply_before_fsync`
inverts this (tests only).
"""

from __future__ import annotations

from collections.abc import Callable

from actors.messages import Message
from actors.output import Output
from actors.records import Record


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


def commit(
    out: Output,
    persist: Callable[[list[Record], bool], None],
    send: Callable[[str, list[Message]], None],
    bugs: frozenset[str],
    durable: bool = True,
) -> None:
    """`persist(records, durable)` must return only once the records are durable when `durable`
    is true; `send(dest, messages)` hands one frame to the network. A core whose
    `replies_wait_for_disk` is false (the learner) commits with `durable=False`."""
    if "reply_before_fsync" in bugs:
        for dest, msgs in by_destination(out.send).items():
            send(dest, msgs)
        if out.persist:
            persist(out.persist, False)  # made durable later, by a timer
        return
    if out.persist:
        persist(out.persist, durable)
    if out.send:
        for dest, msgs in by_destination(out.send).items():
            send(dest, msgs)
