"""Command line: `python -m runtime.harness.check HISTORY.jsonl [--budget-s S]` checks a recorded history
for linearizability, one line per key and a summary line last.

Exit status: 0 every key valid, 1 a violation found (even if other keys are unknown),
2 no violation but some key unknown (time budget ran out), 3 the history is malformed or
unreadable (nothing was checked).
"""

from __future__ import annotations

import argparse
import sys

from runtime.harness.check.history import HistoryError, load
from runtime.harness.check.linearizability import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.harness.check", description=__doc__.splitlines()[0])
    parser.add_argument("history", help="JSON-lines history file")
    parser.add_argument("--budget-s", type=float, default=10.0, help="search time budget per key, seconds")
    args = parser.parse_args(argv)
    try:
        ops = load(args.history)
    except (HistoryError, OSError) as exc:
        print(f"{args.history}: {exc}", file=sys.stderr)
        return 3
    report = check(ops, budget_s_per_key=args.budget_s)
    width = max([len(repr(r.key)) for r in report.results] + [3])
    for r in report.results:
        verdict = {True: "valid", False: "INVALID", None: "UNKNOWN"}[r.valid]
        print(f"{r.key!r:<{width}}  ops={r.ops:<6} {verdict:<8} states={r.states:<9} seconds={r.seconds:.3f}")
        if r.valid is not True:
            for line in r.detail.splitlines():
                print(f"    {line}")
    print(
        f"keys={report.keys} ops={report.ops} valid={report.valid_keys} "
        f"invalid={report.invalid_keys} unknown={report.unknown_keys}"
    )
    if report.invalid_keys:
        return 1
    if report.unknown_keys:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
