#!/usr/bin/env python3
"""How long `paxos trace` takes to read big trace files, against the floor of json-parsing
every line, in the same run: synthetic files of a leader, three acceptors and a learner (the
writer's layout, `--slots` slots of 20 lines each) in a temporary directory, then each way of
reading, in alternating rounds.

    python scripts/trace_read_bench.py [--slots 6000] [--rounds 3]

The last line is machine-readable (medians, seconds).
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.tracechart import files, model, text
from runtime.tracechart.command import _load
from runtime.tracechart.select import Selection, select

ACCEPTORS = ("a1", "a2", "a3")


def write(data_dir: Path, slots: int) -> int:
    logs = data_dir / "logs"
    logs.mkdir(parents=True)
    out = {a: open(logs / f"{a}.trace", "w") for a in ("p1", *ACCEPTORS, "l1")}  # noqa: SIM115
    lc = dict.fromkeys(out, 0)
    ts = 1_764_694_000.0
    n = 0

    def put(actor: str, **fields: object) -> None:
        nonlocal n
        out[actor].write(json.dumps({"ts": ts, "a": actor, **fields}, separators=(",", ":")) + "\n")
        n += 1

    for s in range(1, slots + 1):
        op = [f"c1:{s}"]
        for a in ACCEPTORS:
            ts += 0.0001
            lc["p1"] += 1
            sent = lc["p1"]
            put("p1", e="send", lc=sent, to=a, m=[f"Accept b=1.1 s={s}"], ops=op)
            ts += 0.0001
            lc[a] = max(lc[a], sent) + 1
            put(a, e="recv", lc=lc[a], slc=sent, m=[f"Accept b=1.1 s={s}"], ops=op, **{"from": "p1"})
            put(a, e="persist", lc=lc[a], m=[f"accept b=1.1 s={s}"], bytes=64, durable=True)
            put(a, e="fsync", lc=lc[a], dur_us=500)
            lc[a] += 1
            put(a, e="send", lc=lc[a], to="l1", m=[f"Accepted b=1.1 s={s}"])
            lc["l1"] = max(lc["l1"], lc[a]) + 1
            put("l1", e="recv", lc=lc["l1"], slc=lc[a], m=[f"Accepted b=1.1 s={s}"], **{"from": a})
        put("l1", e="decide", lc=lc["l1"], s=s, b="1.1")
        put("l1", e="deliver", lc=lc["l1"], s=s, ops=op)
    for f in out.values():
        f.close()
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        lines = write(data, args.slots)
        mid = args.slots // 2
        stamps = [json.loads(line)["ts"] for line in open(data / "logs" / "l1.trace")]  # noqa: SIM115
        since = max(stamps) - (max(stamps) - min(stamps)) * 0.01

        def floor() -> None:
            for p in glob.glob(str(data / "logs" / "*.trace")):
                with open(p, "rb") as f:
                    for line in f:
                        json.loads(line)

        def draw(sel: Selection, events: list[model.TraceEvent]) -> None:
            text.plain(model.limit(model.build(select(events, sel)), 300, "first" if sel.narrowed else "last"), 160)

        def op() -> None:
            ns = argparse.Namespace(op=f"c1:{mid}", slot=None, since=None, until=None)
            draw(Selection(op=f"c1:{mid}"), _load(data, None, ns, None).events)

        cases: dict[str, Callable[[], None]] = {
            "floor": floor,
            "slot": lambda: draw(Selection(slots=(mid, mid)), files.load(data, slots=(mid, mid)).events),
            "slot_unfiltered": lambda: draw(Selection(slots=(mid, mid)), files.load(data).events),
            "op": op,
            "since_1pct": lambda: draw(Selection(since=since), files.load(data, since=since).events),
            "latest": lambda: draw(Selection(), files.load(data, tail_lines=1200).events),
        }
        took: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(args.rounds):
            for name, fn in cases.items():
                t = time.perf_counter()
                fn()
                took[name].append(time.perf_counter() - t)
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in took.items()), flush=True)
        medians = {k: round(statistics.median(v), 3) for k, v in took.items()}
        print(f"trace-read lines={lines} " + " ".join(f"{k}={v}" for k, v in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
