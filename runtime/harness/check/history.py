"""Histories: the JSON-lines event format, its strict validation and the pairing of each
`invoke` with its completion into an `Operation`.

One event per line:
`{"process": int, "type": "invoke"|"ok"|"fail"|"info", "f": "get"|"put"|"cas"|"append",
"key": str, "value": ..., "time": float_seconds}`.
A process has at most one outstanding operation. An invoke with no completion (the history was
cut short) is treated like `info`: outcome unknown, completion time +infinity. Events are paired
in file order; times only decide real-time precedence between operations.

This module owns the format. Deciding which operations matter to a check (a failed put is
dropped, a failed cas is kept as "did not swap") is the checkers' job, so `parse` returns every
paired operation, failed ones included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FUNCTIONS = ("get", "put", "cas", "append")
TYPES = ("invoke", "ok", "fail", "info")

# put/append: the string written; cas: (expected, new) with expected None meaning "key absent";
# get: None (what a get read is in `Operation.result`).
Value = str | tuple[str | None, str] | None


class HistoryError(ValueError):
    """A malformed history; `line` is the 1-based line (or item) number of the offending event."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Operation:
    """One invoke paired with its completion.

    `status` is "ok", "fail" or "info" (unknown outcome, including an invoke never completed);
    `complete_time` is `math.inf` for info. `result` is what an ok get read (None: key absent)
    and None for everything else. `index` is the operation's position in invoke order.
    """

    process: int
    f: str
    key: str
    value: Value
    result: str | None
    status: str
    invoke_time: float
    complete_time: float
    index: int

    def describe(self) -> str:
        """A short human-readable form for reports, e.g. `#7 p3 get -> 'x' ok [1.200, 1.450]`."""
        if self.f == "get":
            what = f"get -> {self.result!r}" if self.status == "ok" else "get"
        elif self.f == "cas":
            assert isinstance(self.value, tuple)
            what = f"cas {self.value[0]!r} -> {self.value[1]!r}"
        else:
            what = f"{self.f} {self.value!r}"
        end = "inf" if math.isinf(self.complete_time) else f"{self.complete_time:.3f}"
        return f"#{self.index} p{self.process} {what} {self.status} [{self.invoke_time:.3f}, {end}]"


def load(path: str | Path) -> list[Operation]:
    """Read and parse a JSON-lines history file."""
    with open(path, encoding="utf-8") as fh:
        return parse(fh)


def parse(lines: Iterable[str | dict[str, Any]]) -> list[Operation]:
    """Validate events (JSON strings or already-decoded dicts) and pair them into operations,
    returned in invoke order. Blank string lines are skipped but still counted for line numbers.
    Raises `HistoryError` naming the line and the problem."""
    pending: dict[int, tuple[dict[str, Any], int, int]] = {}  # process -> (invoke event, line, index)
    done: list[Operation] = []
    next_index = 0
    for line_no, item in enumerate(lines, 1):
        if isinstance(item, str):
            if not item.strip():
                continue
            try:
                event = json.loads(item)
            except json.JSONDecodeError as exc:
                raise HistoryError(line_no, f"not valid JSON ({exc.msg})") from None
        else:
            event = item
        _validate(event, line_no)
        process: int = event["process"]
        if event["type"] == "invoke":
            if process in pending:
                other = pending[process][1]
                raise HistoryError(
                    line_no, f"process {process} invokes again while its invoke on line {other} is outstanding"
                )
            pending[process] = (event, line_no, next_index)
            next_index += 1
            continue
        if process not in pending:
            raise HistoryError(
                line_no, f"{event['type']} completion for process {process} without an outstanding invoke"
            )
        invoke, invoke_line, index = pending.pop(process)
        done.append(_pair(invoke, invoke_line, index, event, line_no))
    # Invokes never completed: the history was cut short, so their outcome is unknown.
    for invoke, _, index in pending.values():
        done.append(_operation(invoke, index, "info", None, math.inf))
    done.sort(key=lambda op: op.index)
    return done


def by_key(ops: Iterable[Operation]) -> dict[str, list[Operation]]:
    """Operations grouped by key, keys in order of first appearance, each list in invoke order."""
    out: dict[str, list[Operation]] = {}
    for op in ops:
        out.setdefault(op.key, []).append(op)
    return out


def _validate(event: Any, line: int) -> None:
    if not isinstance(event, dict):
        raise HistoryError(line, f"expected a JSON object, got {type(event).__name__}")
    for field in ("process", "type", "f", "key", "time"):
        if field not in event:
            raise HistoryError(line, f"missing field {field!r}")
    process = event["process"]
    # bool is an int subclass; `true` as a process id is a bug in the recorder, not a process.
    if not isinstance(process, int) or isinstance(process, bool):
        raise HistoryError(line, f"process must be an integer, got {process!r}")
    if event["type"] not in TYPES:
        raise HistoryError(line, f"type must be one of {', '.join(TYPES)}, got {event['type']!r}")
    if event["f"] not in FUNCTIONS:
        raise HistoryError(line, f"f must be one of {', '.join(FUNCTIONS)}, got {event['f']!r}")
    if not isinstance(event["key"], str):
        raise HistoryError(line, f"key must be a string, got {event['key']!r}")
    t = event["time"]
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        raise HistoryError(line, f"time must be a finite number of seconds, got {t!r}")
    value = event.get("value")
    f, kind = event["f"], event["type"]
    if f in ("put", "append"):
        if kind == "invoke" and not isinstance(value, str):
            raise HistoryError(line, f"{f} invoke needs a string value, got {value!r}")
        if value is not None and not isinstance(value, str):
            raise HistoryError(line, f"{f} value must be a string, got {value!r}")
    elif f == "cas":
        if kind == "invoke" or value is not None:
            ok = (
                isinstance(value, list)
                and len(value) == 2
                and (value[0] is None or isinstance(value[0], str))
                and isinstance(value[1], str)
            )
            if not ok:
                raise HistoryError(line, f"cas value must be [expected (string or null), new (string)], got {value!r}")
    else:  # get
        if kind == "invoke" and value is not None:
            raise HistoryError(line, f"get invoke must have a null value, got {value!r}")
        if value is not None and not isinstance(value, str):
            raise HistoryError(line, f"get value must be a string or null, got {value!r}")


def _pair(invoke: dict[str, Any], invoke_line: int, index: int, event: dict[str, Any], line: int) -> Operation:
    process = event["process"]
    if event["f"] != invoke["f"] or event["key"] != invoke["key"]:
        raise HistoryError(
            line,
            f"completion of process {process} is {event['f']} {event['key']!r} but its invoke on line "
            f"{invoke_line} is {invoke['f']} {invoke['key']!r}",
        )
    if event["time"] < invoke["time"]:
        raise HistoryError(line, f"completion time {event['time']} is before its invoke's time {invoke['time']}")
    if invoke["f"] != "get" and event.get("value") is not None and event["value"] != invoke["value"]:
        # A completion may echo its invoke's argument or leave it null, never change it.
        raise HistoryError(line, f"completion value {event['value']!r} differs from the invoke's {invoke['value']!r}")
    status = event["type"]
    result = event.get("value") if invoke["f"] == "get" and status == "ok" else None
    complete_time = math.inf if status == "info" else float(event["time"])
    return _operation(invoke, index, status, result, complete_time)


def _operation(invoke: dict[str, Any], index: int, status: str, result: str | None, complete_time: float) -> Operation:
    value: Any = invoke.get("value")
    if invoke["f"] == "cas":
        value = (value[0], value[1])
    return Operation(
        process=invoke["process"],
        f=invoke["f"],
        key=invoke["key"],
        value=value,
        result=result,
        status=status,
        invoke_time=float(invoke["time"]),
        complete_time=complete_time,
        index=index,
    )
