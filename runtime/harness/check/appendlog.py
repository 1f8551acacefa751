"""Checks for the append workload that need no search, because every appended element is
unique and the final value of a key lists, in order, everything that was applied to it.

Given the parsed history, the final value of each append key (read after the run) and
optionally each learner's ordered log of applied (key, element) appends, `check` reports:
(a) learner logs that are not prefixes of one another (first differing index, pairwise);
(b) acknowledged (ok) appends missing from, or repeated in, the final value of their key;
(c) info appends (outcome unknown) that appear more than once;
(d) elements in a final value that were never invoked on that key, or whose append failed
    (a `fail` is definite: it did not happen);
(e) real-time order broken: an append that completed (ok) before another was invoked appears
    after it in the final value.
Elements end with a separator (default ";"), which is how a final value splits into elements.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from runtime.harness.check.history import Operation, by_key


@dataclass(slots=True)
class AppendReport:
    """`violations` is empty when every check passes; the counts say what was checked."""

    violations: list[str] = field(default_factory=list)
    keys: int = 0
    ok: int = 0
    info: int = 0
    fail: int = 0
    elements: int = 0  # elements found in the final values
    learners: int = 0

    @property
    def valid(self) -> bool:
        return not self.violations


def check(
    ops: Sequence[Operation],
    final: Mapping[str, str | None],
    learner_logs: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    separator: str = ";",
) -> AppendReport:
    """Check an append workload. Raises ValueError if the workload broke the assumptions the
    checks rest on: an element that does not end with the separator (or contains it twice), or
    the same element appended twice (elements must be unique to be counted)."""
    if not separator:
        raise ValueError("separator must not be empty")
    report = AppendReport()
    if learner_logs:
        report.learners = len(learner_logs)
        report.violations += _check_learners(learner_logs)

    appends = [op for op in ops if op.f == "append"]
    report.ok = sum(1 for op in appends if op.status == "ok")
    report.info = sum(1 for op in appends if op.status == "info")
    report.fail = sum(1 for op in appends if op.status == "fail")
    # element -> its append; the element is stored without its trailing separator, as split gives it.
    invoked: dict[str, Operation] = {}
    for op in appends:
        assert isinstance(op.value, str)
        element = _strip(op.value, separator, op)
        if element in invoked:
            raise ValueError(
                f"element {op.value!r} is appended by both {invoked[element].describe()} and {op.describe()}; "
                "the append checks need unique elements"
            )
        invoked[element] = op

    element_of = {op.index: element for element, op in invoked.items()}
    per_key = by_key(appends)
    keys = list(dict.fromkeys([*per_key, *final]))
    report.keys = len(keys)
    for key in keys:
        if key not in final:
            if any(op.status == "ok" for op in per_key.get(key, [])):
                report.violations.append(f"(b) key {key!r} has acknowledged appends but no final value was given")
            continue
        elements = _split(key, final[key], separator, report.violations)
        report.elements += len(elements)
        report.violations += _check_key(key, elements, per_key.get(key, []), invoked, element_of)
    return report


def _strip(value: str, separator: str, op: Operation) -> str:
    if not value.endswith(separator) or value.count(separator) != 1:
        raise ValueError(f"append element {value!r} of {op.describe()} must end with, and contain once, {separator!r}")
    return value[: -len(separator)]


def _split(key: str, value: str | None, separator: str, violations: list[str]) -> list[str]:
    if not value:
        return []
    parts = value.split(separator)
    if parts[-1]:
        # Every element ends with the separator, so a value that does not is a torn element.
        violations.append(f"(d) final value of key {key!r} ends with {parts[-1]!r}, a fragment no append wrote")
    return parts[:-1]


def _check_learners(logs: Mapping[str, Sequence[tuple[str, str]]]) -> list[str]:
    out: list[str] = []
    for (name_a, log_a), (name_b, log_b) in combinations(sorted(logs.items()), 2):
        for index, (x, y) in enumerate(zip(log_a, log_b, strict=False)):
            if tuple(x) != tuple(y):
                out.append(
                    f"(a) learner logs {name_a!r} and {name_b!r} differ at index {index}: "
                    f"{name_a!r} applied {tuple(x)!r}, {name_b!r} applied {tuple(y)!r}"
                )
                break
    return out


def _check_key(
    key: str,
    elements: list[str],
    appends: list[Operation],
    invoked: dict[str, Operation],
    element_of: dict[int, str],
) -> list[str]:
    out: list[str] = []
    counts = Counter(elements)
    for op in appends:
        seen = counts[element_of[op.index]]
        if op.status == "ok" and seen != 1:
            what = "is missing from" if seen == 0 else f"appears {seen} times in"
            out.append(f"(b) acknowledged {op.describe()} {what} the final value of key {key!r}")
        elif op.status == "info" and seen > 1:
            out.append(f"(c) {op.describe()} (outcome unknown) appears {seen} times in the final value of key {key!r}")
        elif op.status == "fail" and seen:
            out.append(f"(d) failed {op.describe()} appears in the final value of key {key!r}")
    for element in counts:
        appended = invoked.get(element)
        if appended is None:
            out.append(f"(d) element {element!r} in the final value of key {key!r} was never appended")
        elif appended.key != key:
            out.append(f"(d) element {element!r} in the final value of key {key!r} was appended to key "
                       f"{appended.key!r}")

    # (e) Walk the final value from the end, keeping the append with the earliest completion
    # seen so far (i.e. placed later): if it completed before the current element's append was
    # invoked, the later-placed append really came first. One report per misplaced element.
    first_at: dict[str, int] = {}
    for position, element in enumerate(elements):
        first_at.setdefault(element, position)
    placed = sorted(
        ((pos, invoked[el]) for el, pos in first_at.items() if el in invoked and invoked[el].key == key),
        key=lambda item: item[0],
    )
    earliest: Operation | None = None
    for _, op in reversed(placed):
        if earliest is not None and earliest.complete_time < op.invoke_time:
            out.append(
                f"(e) {earliest.describe()} completed before {op.describe()} was invoked, "
                f"but appears after it in the final value of key {key!r}"
            )
        if op.status == "ok" and (earliest is None or op.complete_time < earliest.complete_time):
            earliest = op
    return out

