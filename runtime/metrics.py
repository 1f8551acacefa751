"""Prometheus metrics for the whole cluster (issue 14): one endpoint, served by the supervisor.

Two halves, so that an actor's hot path stays cheap and never imports prometheus_client:

- in each actor (runtime/actor.py), `Buckets`: a histogram as plain bucket counts, one bisect
  per observation (fsync latency in the acceptors and proposers, the leader's batch size).
  The actor sends them, with its counters, as one JSON string in its StatusReply (`metrics`),
  since status values are scalars on the wire (runtime/codec.py);
- in the supervisor, `ClusterCollector`: a custom collector that, on each scrape, asks every
  running actor for its status (through the supervisor's loop) and turns the answers into
  metric families labelled actor and role. `serve` runs prometheus_client's HTTP server on a
  thread of its own.

Counters come from the actors' own counts since they started (a restart starts them afresh,
which Prometheus's `rate()` takes as a counter reset) and from the supervisor (restarts).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Upper bounds of the buckets. fsync: 50 us (a page-cache-only file system) to 1 s (a
# struggling disk). Batch size: client batches per slot the leader proposed, 1 to the default
# batch_count_max and beyond.
FSYNC_BOUNDS_S: tuple[float, ...] = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BOUNDS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_BYTES_BOUNDS: tuple[float, ...] = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
# The histograms an actor may report (its StatusReply's `metrics` keys), with their help text.
HISTOGRAMS = {
    "fsync_seconds": "wal fsync latency (acceptors, proposers; learners' deferred syncs)",
    "batch_size": "client batches per slot the leader proposed",
    "batch_bytes": "bytes of client batches per slot the leader proposed",
}
REASONS_MAX = 64  # distinct rejection reasons an actor reports; more go under "other"


@dataclass
class Buckets:
    """A histogram kept as counts per bucket (not cumulative) plus a sum: what an actor keeps."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def as_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total}


def count_reason(counts: dict[str, int], reason: str) -> None:
    """One more rejection for `reason`, with the number of reasons bounded: a reason comes from our
    own code, but a bound costs nothing and keeps a surprise from growing the map."""
    if reason not in counts and len(counts) >= REASONS_MAX:
        reason = "other"
    counts[reason] = counts.get(reason, 0) + 1


def encode(histograms: dict[str, Buckets], rejected: dict[str, int]) -> str:
    """An actor's metrics as the one JSON string its StatusReply carries (`metrics`): its
    histograms (keys of HISTOGRAMS) and its rejections by reason."""
    out: dict[str, Any] = {"rejected": rejected, **{k: h.as_dict() for k, h in histograms.items()}}
    return json.dumps(out, separators=(",", ":"))


def decode(text: Any) -> dict[str, Any]:
    """The metrics of a StatusReply; {} for anything that is not what `encode` writes (an older
    actor, a damaged answer): a scrape must never fail on one actor."""
    if not isinstance(text, str):
        return {}
    try:
        out = json.loads(text)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _buckets(raw: Any) -> tuple[list[tuple[str, float]], float] | None:
    """A histogram from `Buckets.as_dict` as prometheus_client wants it: cumulative (le, count)
    pairs ending at +Inf, and the sum. None if malformed."""
    if not isinstance(raw, dict):
        return None
    bounds, counts, total = raw.get("bounds"), raw.get("counts"), raw.get("sum")
    if not (isinstance(bounds, list) and isinstance(counts, list) and len(counts) == len(bounds) + 1
            and isinstance(total, (int, float)) and all(isinstance(c, int) and c >= 0 for c in counts)
            and all(isinstance(b, (int, float)) for b in bounds)):
        return None
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip([*bounds, math.inf], counts, strict=True):
        running += n
        out.append(("+Inf" if bound == math.inf else repr(float(bound)), float(running)))
    return out, float(total)


def _int(info: dict[str, Any], key: str) -> int | None:
    value = info.get(key)
    return value if type(value) is int else None


class ClusterCollector:
    """prometheus_client's custom collector for the cluster. `sample()` returns the actors as the
    supervisor sees them: `[{"name", "role", "state", "restarts", "info"}]`, `info` being the
    actor's StatusReply ({} when it did not answer)."""

    def __init__(self, sample: Callable[[], list[dict[str, Any]]]) -> None:
        self.sample = sample

    def describe(self) -> list[Any]:
        return []  # unchecked collector: the families depend on what the actors answer

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        actors = self.sample()
        labels = ["actor", "role"]
        up = GaugeMetricFamily("paxos_actor_up", "1 if the actor is running and answered this scrape", labels=labels)
        restarts = CounterMetricFamily("paxos_restarts", "restarts of the actor by the supervisor", labels=labels)
        chosen = CounterMetricFamily("paxos_slots_chosen",
                                     "slots this actor knows chosen (a proposer's chosen watermark, a learner's "
                                     "delivered slots)", labels=labels)
        elections = CounterMetricFamily("paxos_elections", "elections this proposer started", labels=labels)
        leader = GaugeMetricFamily("paxos_leader", "1 if this proposer leads and serves", labels=labels)
        fsyncs = CounterMetricFamily("paxos_fsyncs", "fsyncs of the actor's wal", labels=labels)
        rejected = CounterMetricFamily("paxos_rejected_messages", "frames and messages rejected, by reason",
                                       labels=[*labels, "reason"])
        histograms = {key: HistogramMetricFamily(f"paxos_{key}", text, labels=labels)
                      for key, text in HISTOGRAMS.items()}
        for a in actors:
            info = a.get("info") or {}
            lv = [str(a.get("name")), str(a.get("role"))]
            up.add_metric(lv, 1.0 if info else 0.0)
            restarts.add_metric(lv, float(a.get("restarts") or 0))
            if not info:
                continue
            watermark = _int(info, "delivered") if a.get("role") == "learner" else _int(info, "chosen_through")
            if watermark is not None:
                chosen.add_metric(lv, float(watermark))
            if a.get("role") == "proposer":
                if (n := _int(info, "elections")) is not None:
                    elections.add_metric(lv, float(n))
                leader.add_metric(lv, 1.0 if info.get("state") == "leader" and info.get("serving") else 0.0)
            if (n := _int(info, "fsyncs")) is not None:
                fsyncs.add_metric(lv, float(n))
            m = decode(info.get("metrics"))
            reasons = m.get("rejected")
            if isinstance(reasons, dict):
                for reason, n in sorted(reasons.items()):
                    if isinstance(n, int):
                        rejected.add_metric([*lv, str(reason)[:64]], float(n))
            for key, family in histograms.items():
                h = _buckets(m.get(key))
                if h is not None:
                    family.add_metric(lv, h[0], h[1])
        yield from (up, restarts, chosen, elections, leader, fsyncs, rejected, *histograms.values())


def serve(collector: ClusterCollector, host: str, port: int) -> tuple[Any, str]:
    """Serve /metrics on host:port (0: any free port) from a daemon thread, with only the
    cluster's collector (no process metrics of the supervisor's own). Returns the server (its
    `shutdown()` stops it) and the URL. Raises OSError when the port cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{bound}/metrics"
