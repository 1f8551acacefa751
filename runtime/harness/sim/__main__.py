"""`python -m runtime.harness.sim --seeds A:B [--jobs N]`: run a range of seeds; the last line is
`seeds=N failures=F events=E`. `--seed N` runs one seed and prints its details. `--mode fast
[--fast-recovery coordinated|uncoordinated]` runs Fast Paxos (actors/fast.py)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any

from actors.fast import MODES, RECOVERIES
from runtime.harness import bugs as planted
from runtime.harness.sim.sim import SimConfig, SimResult, Simulation


def run_one(args: tuple[Any, ...]) -> SimResult:
    """One seed: (seed, bugs, faults, linearizability[, byzantine[, membership[, mode[, fast_recovery]]]])."""
    seed, bugs, faults, lin = args[:4]
    byzantine = len(args) > 4 and bool(args[4])
    membership = len(args) > 5 and bool(args[5])
    mode = str(args[6]) if len(args) > 6 else "classic"
    recovery = str(args[7]) if len(args) > 7 else "coordinated"
    result = Simulation(seed, SimConfig(faults=faults, byzantine=byzantine, membership=membership, mode=mode,
                                        fast_recovery=recovery),
                        planted.kinds(bugs),
                        check_linearizability=lin).run()
    result.history = []  # keep what crosses process boundaries small
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.harness.sim", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--seeds", help="a range A:B (B excluded)")
    group.add_argument("--seed", type=int, help="one seed, with details")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--bugs", default="", help="planted bugs to switch on (tests of the tests)")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--no-linearizability", action="store_true", help="skip the history check (faster)")
    parser.add_argument("--byzantine", action="store_true",
                        help="mix forged out-of-bound frames into the run; each must change nothing")
    parser.add_argument("--membership", action="store_true",
                        help="an operator grows, shrinks and replaces acceptors through the log mid-run")
    parser.add_argument("--mode", choices=MODES, default="classic",
                        help="fast: Fast Paxos (4 or 5 acceptors, clients straight to the acceptors)")
    parser.add_argument("--fast-recovery", choices=RECOVERIES, default="coordinated",
                        help="fast mode: who recovers a collision, the leader or the acceptors")
    args = parser.parse_args(argv)
    bugs = planted.parse(args.bugs)
    lin = not args.no_linearizability
    if args.seed is not None:
        result = run_one((args.seed, bugs, not args.no_faults, lin, args.byzantine, args.membership, args.mode,
                          args.fast_recovery))
        print(f"seed={result.seed} ok={result.ok} events={result.events} virtual_ms={result.virtual_ms:.0f} "
              f"acked={result.acked} crashes={result.crashes} partitions={result.partitions} trace={result.trace_hash}"
              + (f" forged={result.forged} rejected={result.forged_reasons}" if args.byzantine else "")
              + (f" honest_rejected={result.rejected}" if result.rejected else "")
              + (f" fast={result.fast_events}" if result.fast_events else ""))
        if not result.ok:
            print(f"violation {result.rule}: {result.detail}")
            print("last events:\n  " + "\n  ".join(result.last_events))
        return 0 if result.ok else 1
    try:
        first, last = (int(x) for x in args.seeds.split(":"))
    except ValueError:
        parser.error("--seeds takes A:B")
    seeds = range(first, last)
    t0 = time.perf_counter()
    failures = 0
    events = 0
    work = [(s, bugs, not args.no_faults, lin, args.byzantine, args.membership, args.mode, args.fast_recovery)
            for s in seeds]
    fast: dict[str, int] = {}
    fast_seeds: dict[str, int] = {}
    forged = 0
    honest: dict[str, int] = {}
    with ExitStack() as stack:
        if args.jobs > 1:
            pool = stack.enter_context(ProcessPoolExecutor(args.jobs))
            results: Iterable[SimResult] = pool.map(run_one, work, chunksize=4)
        else:
            results = map(run_one, work)
        for r in results:
            events += r.events
            forged += r.forged
            for reason, n in r.rejected.items():
                honest[reason] = honest.get(reason, 0) + n
            for key, n in r.fast_events.items():
                fast[key] = fast.get(key, 0) + n
                fast_seeds[key] = fast_seeds.get(key, 0) + 1
            if not r.ok:
                failures += 1
                print(f"FAIL seed={r.seed} {r.rule}: {r.detail[:300]}\n  reproduce: {r.repro(bugs)}"
                      + (" --byzantine" if args.byzantine else "")
                      + (" --membership" if args.membership else ""), flush=True)
    elapsed = time.perf_counter() - t0
    print(f"# {elapsed:.1f}s, {events / max(elapsed, 1e-9):.0f} events/s", file=sys.stderr)
    if honest:
        print(f"# honest traffic rejected: {honest}", file=sys.stderr)
    for key in sorted(fast):
        print(f"# fast {key}: {fast[key]} events in {fast_seeds[key]} seeds", file=sys.stderr)
    print(f"seeds={len(seeds)} failures={failures} events={events}" + (f" forged={forged}" if args.byzantine else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
