"""The metrics without a cluster (runtime/metrics.py): an actor's bucket counts, its rejections by
reason (counted by the turn driver), the collector's families and labels as Prometheus's own
parser reads them, the HTTP endpoint, and the [metrics] section's checks (runtime/config.py)."""

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.messages import Accept, Submit
from runtime import codec, metrics
from runtime.config import ConfigError, load, render
from runtime.turn import Turn

PORTS = {n: 7000 + i for i, n in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"])}


def test_buckets_count_per_bucket_and_sum() -> None:
    b = metrics.Buckets((0.001, 0.01))
    for v in (0.0005, 0.001, 0.002, 5.0):
        b.observe(v)
    assert b.counts == [2, 1, 1]  # le=0.001 includes its bound, then le=0.01, then +Inf
    assert b.count == 4 and b.total == pytest.approx(5.0035)


def test_rejection_reasons_are_bounded() -> None:
    counts: dict[str, int] = {}
    for i in range(metrics.REASONS_MAX + 10):
        metrics.count_reason(counts, f"r{i}")
    assert len(counts) == metrics.REASONS_MAX + 1 and counts["other"] == 10


class Quiet:
    def persist(self, records, durable) -> None: ...
    def send(self, dest, messages) -> None: ...
    def sync(self) -> None: ...
    def log(self, events) -> None: ...
    def act(self, actions) -> None: ...
    def status(self) -> dict:
        return {}


def test_the_turn_driver_counts_every_rejection_by_reason_even_those_it_does_not_log() -> None:
    turn = Turn(Acceptor("a1", {"p1": 1}, ["l1"], 1 << 20), Quiet(), ["p1", "l1"])
    mallory = [b"mallory", codec.encode_frame("mallory", [Accept(Ballot(9, 1), 0, ())])]
    for _ in range(5):  # logged once per interval; counted every time
        turn.frames([mallory, [b"p1", b"\xc1garbage"], [b"p1", codec.encode_frame("p1", [Submit(b"x")])]])
    assert turn.rejected["unknown_sender"] == 5
    assert sum(turn.rejected.values()) == turn.frames_rejected + turn.messages_rejected
    assert len(turn.rejected) >= 2


def sample() -> list[dict]:
    fsync = metrics.Buckets(metrics.FSYNC_BOUNDS_S)
    for v in (0.0004, 0.002, 0.002):
        fsync.observe(v)
    batch = metrics.Buckets(metrics.BATCH_BOUNDS)
    batch.observe(3)
    nbytes = metrics.Buckets(metrics.BATCH_BYTES_BOUNDS)
    nbytes.observe(5000)
    leader = metrics.encode({"fsync_seconds": fsync, "batch_size": batch, "batch_bytes": nbytes}, {})
    acceptor = metrics.encode({"fsync_seconds": fsync}, {"unknown_sender": 4, "malformed": 1})
    return [
        {"name": "p1", "role": "proposer", "restarts": 2,
         "info": {"state": "leader", "serving": True, "chosen_through": 17, "elections": 3, "fsyncs": 3,
                  "metrics": leader}},
        {"name": "a1", "role": "acceptor", "restarts": 0,
         "info": {"chosen_through": 17, "fsyncs": 3, "metrics": acceptor}},
        {"name": "l1", "role": "learner", "restarts": 0, "info": {"delivered": 18, "metrics": "{not json"}},
        {"name": "a2", "role": "acceptor", "restarts": 1, "info": {}},  # did not answer
    ]


def scrape(collector: metrics.ClusterCollector) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {f.name: f for f in families}


def values(family, name: str | None = None) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if name is None or s.name == name}


def test_the_collector_exports_the_cluster_with_actor_and_role_labels() -> None:
    fam = scrape(metrics.ClusterCollector(sample))
    for name in ("paxos_actor_up", "paxos_restarts", "paxos_slots_chosen", "paxos_elections", "paxos_leader",
                 "paxos_rejected_messages", "paxos_fsync_seconds", "paxos_batch_size", "paxos_batch_bytes"):
        assert name in fam, name
    p1, a1, a2, l1 = ((("actor", n), ("role", r)) for n, r in
                      (("p1", "proposer"), ("a1", "acceptor"), ("a2", "acceptor"), ("l1", "learner")))
    assert values(fam["paxos_restarts"])[p1] == 2 and values(fam["paxos_restarts"])[a2] == 1
    assert values(fam["paxos_actor_up"])[a2] == 0 and values(fam["paxos_actor_up"])[l1] == 1
    assert values(fam["paxos_slots_chosen"])[l1] == 18 and values(fam["paxos_slots_chosen"])[p1] == 17
    assert values(fam["paxos_elections"]) == {p1: 3}
    assert values(fam["paxos_leader"]) == {p1: 1}
    assert values(fam["paxos_rejected_messages"]) == {(a1[0], ("reason", "malformed"), a1[1]): 1,
                                                      (a1[0], ("reason", "unknown_sender"), a1[1]): 4}
    fsync = fam["paxos_fsync_seconds"]
    assert values(fsync, "paxos_fsync_seconds_count") == {p1: 3, a1: 3}  # l1's damaged metrics: skipped
    buckets = {s.labels["le"]: s.value for s in fsync.samples
               if s.name == "paxos_fsync_seconds_bucket" and s.labels["actor"] == "a1"}
    assert buckets["0.0005"] == 1 and buckets["0.0025"] == 3 and buckets["+Inf"] == 3  # cumulative
    assert values(fam["paxos_batch_size"], "paxos_batch_size_sum") == {p1: 3}


def test_an_empty_sample_still_scrapes() -> None:
    assert "paxos_actor_up" in scrape(metrics.ClusterCollector(list))


def test_the_endpoint_serves_on_a_free_port_of_loopback() -> None:
    server, url = metrics.serve(metrics.ClusterCollector(sample), "127.0.0.1", 0)
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        assert 'paxos_restarts_total{actor="p1",role="proposer"} 2.0' in text
        assert "python_gc" not in text  # only the cluster's collector, not the supervisor's process
    finally:
        server.shutdown()
        server.server_close()


def test_decode_takes_only_what_encode_writes() -> None:
    assert metrics.decode(None) == {} and metrics.decode("[1]") == {} and metrics.decode("{") == {}
    assert json.loads(metrics.encode({}, {"x": 1})) == {"rejected": {"x": 1}}


# --- [metrics] in cluster.toml -------------------------------------------------------------------


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(render(PORTS, extra=extra))
    return path


def test_metrics_are_off_unless_asked_for_and_the_shipped_config_asks() -> None:
    root = Path(__file__).resolve().parent.parent
    shipped = load(root / "cluster.toml").metrics
    assert shipped.enabled and shipped.host == "127.0.0.1" and shipped.port == 9464


def test_a_config_without_the_section_has_them_off(tmp_path: Path) -> None:
    assert not load(write(tmp_path, "")).metrics.enabled


def test_port_zero_and_a_loopback_or_other_host_are_taken(tmp_path: Path) -> None:
    m = load(write(tmp_path, "[metrics]\nenabled = true\nport = 0\n")).metrics
    assert m.port == 0 and m.loopback
    m = load(write(tmp_path, '[metrics]\nenabled = true\nhost = "0.0.0.0"\n')).metrics
    assert not m.loopback  # taken, and the supervisor warns at start


@pytest.mark.parametrize(("extra", "message"), [
    ("[metrics]\nport = 70000\n", "metrics.port: must be from 0"),
    ("[metrics]\nport = -1\n", "metrics.port: must be from 0"),
    ('[metrics]\nport = "9464"\n', "metrics.port: must be int"),
    ('[metrics]\nhost = "metrics.example"\n', "metrics.host: must be an IP address or localhost"),
    ("[metrics]\nenabled = 1\n", "metrics.enabled: must be bool"),
    ("[metrics]\npath = '/m'\n", "metrics.path: unknown key"),
])
def test_bad_metrics_settings_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load(write(tmp_path, extra))


# --- the supervisor's endpoint (runtime/supervisor.py), without starting any actor ----------------


def supervisor(tmp_path: Path, port: int):
    from runtime.supervisor import Supervisor

    return Supervisor(load(write(tmp_path, f"[metrics]\nenabled = true\nport = {port}\n")))


def test_the_supervisor_serves_its_children_through_its_own_loop(tmp_path: Path) -> None:
    import asyncio

    sup = supervisor(tmp_path, 0)

    sup._keys()  # the operator's key, which the status queries use

    async def main() -> str:
        sup._start_metrics()
        try:
            # The scrape runs on another thread and asks this loop, which must stay free meanwhile.
            return await asyncio.to_thread(lambda: urllib.request.urlopen(sup.metrics_url, timeout=5).read().decode())
        finally:
            await asyncio.to_thread(sup._metrics_server.shutdown)
            sup._metrics_server.server_close()

    text = asyncio.run(main())
    assert sup.metrics_url.startswith("http://127.0.0.1:") and not sup.metrics_error
    fam = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["actor"] for s in fam["paxos_actor_up"].samples} == {"p1", "p2", "a1", "a2", "a3", "l1", "l2"}
    assert all(s.value == 0 for s in fam["paxos_actor_up"].samples)  # none was started


def test_a_port_in_use_is_said_and_the_supervisor_goes_on_without_metrics(tmp_path: Path) -> None:
    import asyncio
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        sup = supervisor(tmp_path, taken.getsockname()[1])

        async def main() -> None:
            sup._start_metrics()
        asyncio.run(main())
    finally:
        taken.close()
    assert sup.metrics_url == "" and sup._metrics_server is None
    assert "cannot serve metrics on 127.0.0.1:" in sup.metrics_error and "in use" in sup.metrics_error
