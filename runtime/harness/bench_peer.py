"""The benchmark's peer: PySyncObj (Raft in Python, from PyPI), one node per process on loopback,
with a replicated dict, driven through its own client path: commands submitted to a node and
acknowledged by callback. Note: PySyncObj does not fsync before acknowledging.

    python -m runtime.harness.bench_peer --self 127.0.0.1:P1 --partners 127.0.0.1:P2,127.0.0.1:P3 \\
        --mode saturate|sequential --duration-s 5 --value-size 16 [--outstanding 2000] [--no-batch]

Every node runs until killed; the node that is the leader once the cluster is ready drives the
load (the fastest place to submit from) and writes its results as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.harness.bench_peer")
    parser.add_argument("--self", dest="me", required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--mode", choices=["saturate", "sequential", "mixed"], default="saturate")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--value-size", type=int, default=16)
    parser.add_argument("--outstanding", type=int, default=2000)
    parser.add_argument("--no-batch", action="store_true", help="appendEntriesUseBatch=False (lower latency)")
    parser.add_argument("--out", required=True, help="where the leader writes its JSON results")
    args = parser.parse_args(argv)
    try:
        from pysyncobj import SyncObj, SyncObjConf
        from pysyncobj.batteries import ReplDict
    except ImportError:
        print("pysyncobj is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return 1
    d = ReplDict()
    conf = SyncObjConf(appendEntriesUseBatch=not args.no_batch, commandsQueueSize=1_000_000,
                       dynamicMembershipChange=False)
    obj = SyncObj(args.me, args.partners.split(","), conf=conf, consumers=[d])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = obj.getStatus()
        if status.get("leader") is not None and obj.isReady():
            break
        time.sleep(0.05)
    else:
        print("no leader within 30 s", file=sys.stderr)
        return 1
    if str(obj.getStatus().get("leader")) != args.me:
        while True:  # a follower: serve until killed
            time.sleep(1)
    value = "x" * args.value_size
    lock = threading.Condition()
    state = {"outstanding": 0, "acked": 0, "errors": 0}
    latencies: list[float] = []

    def done(result: object, error: object, started: float) -> None:
        with lock:
            state["outstanding"] -= 1
            if error:
                state["errors"] += 1
            else:
                state["acked"] += 1
                if len(latencies) < 200_000:
                    latencies.append((time.perf_counter() - started) * 1000)
            lock.notify_all()

    time.sleep(0.5)  # let followers settle
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    end = t0 + args.duration_s
    n = 0
    limit = 1 if args.mode == "sequential" else args.outstanding
    while time.perf_counter() < end:
        with lock:
            while state["outstanding"] >= limit:
                lock.wait(0.5)
            state["outstanding"] += 1
        n += 1
        started = time.perf_counter()
        key = f"k{n % 1000}"
        if args.mode == "mixed" and n % 2:
            # PySyncObj reads are local (not through the log, so not linearizable): acknowledged
            # at once. Ours go through the log.
            d.get(key)
            done(None, None, started)
        else:
            d.set(key, value, callback=lambda r, e, s=started: done(r, e, s))
    elapsed = time.perf_counter() - t0
    with lock:
        acked = state["acked"]
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"acked": acked, "errors": state["errors"], "seconds": elapsed, "latencies": latencies,
                   "cpu_s": cpu_seconds() - cpu0}, f)
    os.replace(tmp, args.out)
    os._exit(0)  # PySyncObj's threads would keep the process alive


if __name__ == "__main__":
    sys.exit(main())
