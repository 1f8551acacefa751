"""The page's chart, explain and plot routes (runtime/web/chart.py) without a cluster: the chart of
crafted trace files (tests/charts/write_one.json, one file per actor as the actors write them)
with paxos trace's labels, flags and marks; only the files' tails read, and the rows cut where
every file's tail reaches; tracing off or no files said as such; the explain of crafted wals,
the very JSON of `paxos explain --json`; every bad query value a 400 logged with its reason; the
plot's rings bounded, its rate from the learners' counts and its latency from the traces."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from actors.records import DecidedRecord
from runtime.config import load, render
from runtime.explain import explain, to_json
from runtime.tracechart import model
from runtime.watch import Sample
from runtime.web import chart, follow
from tests.test_explain import B11, B22, cluster_of, cmd, make_config, vote, write
from tests.test_web import PORTS, Call, bearer, run_server, status

pytestmark = pytest.mark.fast

CRAFTED = Path(__file__).parent / "charts" / "write_one.json"


def write_traces(data_dir: Path, events: list[dict[str, Any]]) -> Path:
    """One trace file per actor, in the order given, as the actors write them."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    per_actor: dict[str, list[str]] = {}
    for event in events:
        per_actor.setdefault(event["a"], []).append(json.dumps(event))
    for actor, lines in per_actor.items():
        (logs / f"{actor}.trace").write_text("\n".join(lines) + "\n")
    return logs


@pytest.fixture
def config(tmp_path: Path) -> Any:
    path = tmp_path / "cluster.toml"
    path.write_text(render(PORTS))
    return load(path)


@pytest.fixture
def crafted(config: Any) -> Any:
    write_traces(config.data_dir, json.loads(CRAFTED.read_text()))
    return config


def get_chart(config: Any, query: str = "") -> dict[str, Any]:
    got: dict[str, Any] = {}

    async def test(base: str, token: str, call: Call) -> None:
        got["status"], got["body"] = await call("GET", f"/api/chart{query}", headers=bearer(token))

    run_server(config, test)
    assert got["status"] == 200, got
    return got["body"]


# --- the chart ---------------------------------------------------------------------------------


def test_the_chart_of_crafted_traces_has_paxos_traces_rows(crafted: Any) -> None:
    body = get_chart(crafted)
    assert body["tracing"] is True and body["message"] == ""
    assert body["columns"] == ["clients", "p1", "p2", "a1", "a2", "a3", "l1"]  # column_order, clients first
    arrows = [r for r in body["rows"] if r["kind"] == "arrow"]
    marks = [r for r in body["rows"] if r["kind"] == "mark"]
    accepts = [r for r in arrows if r["label"].startswith("Accept b=1.1 s=1")]
    assert {(r["from"], r["to"]) for r in accepts} >= {("p1", "a1"), ("p1", "a2"), ("p1", "a3")}
    assert all(r["slots"] == [1, 1] for r in accepts)
    [lost] = [r for r in accepts if r["to"] == "a3"]
    assert lost["lost"] and lost["label"].endswith("(lost)")  # a3 crashed before it took it
    accepted = [r for r in arrows if r["label"] == "Accepted b=1.1 s=1"]
    assert {r["from"] for r in accepted} == {"a1", "a2"} and not any(r["lost"] for r in accepted)
    [nack] = [r for r in arrows if r["nack"]]
    assert nack["label"] == "Nack promised=4.2"
    styles: dict[str, dict[str, Any]] = {}
    for r in marks:
        styles.setdefault(r["style"], r)  # the first of each
    assert styles["fsync"]["text"] == "fsync 480µs"
    assert styles["decide"]["text"] == "chosen s=1 b=1.1" and styles["decide"]["slots"] == [1, 1]
    assert styles["deliver"]["actor"] == "l1" and styles["crash"]["text"] == "crash at before_fsync"
    assert styles["start"]["text"] == "restart pid=4242"
    submit = [r for r in arrows if r["label"] == "Submit n=1"]
    assert submit and submit[0]["from"] == "clients"  # the session's own name stays in the ops
    times = [r["t_ms"] for r in body["rows"]]
    assert times == sorted(times) and times[0] == 0.0


def test_rows_are_the_latest_and_at_most_asked(crafted: Any) -> None:
    every = get_chart(crafted)["rows"]
    body = get_chart(crafted, "?rows=5")
    assert len(body["rows"]) == 5 and body["earlier"] is True
    assert [r["kind"] for r in body["rows"]] == [r["kind"] for r in every[-5:]]


def test_tracing_off_and_no_files_are_said(tmp_path: Path, config: Any) -> None:
    assert "no trace files" in get_chart(config)["message"]
    path = tmp_path / "off.toml"
    path.write_text(render(PORTS, extra="[trace]\nenabled = false\n"))
    off = load(path)
    body = get_chart(off)
    assert body["tracing"] is False and "tracing is off" in body["message"] and body["rows"] == []


def test_only_the_tails_are_read_and_rows_start_where_every_tail_reaches(config: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # p1 is busy: many lines, far more than the tail. a1 wrote one line long ago and one lately.
    events: list[dict[str, Any]] = []
    for i in range(5000):
        events.append({"ts": 1000.0 + i * 0.001, "a": "p1", "e": "send", "lc": i + 1, "to": "a1",
                       "m": [f"Accept b=1.1 s={i + 1}"]})
    events.append({"ts": 999.0, "a": "a1", "e": "fsync", "lc": 1, "dur_us": 10})
    events.append({"ts": 1004.999, "a": "a1", "e": "recv", "lc": 2, "from": "p1", "slc": 5000,
                   "m": ["Accept b=1.1 s=5000"]})
    logs = write_traces(config.data_dir, events)
    with open(logs / "p1.trace", "ab") as f:
        f.write(b'{"ts": 1005.0, "a": "p1", "e": "se')  # being written: left out
    monkeypatch.setattr(chart, "TAIL_BYTES", 20_000)  # p1's file is ~450 KB
    reads: list[int] = []
    real = follow.tail_lines
    monkeypatch.setattr(follow, "tail_lines", lambda p, n: (reads.append(n) if p.suffix == ".trace" else None,
                                                            real(p, n))[1])
    body = get_chart(config, "?rows=400")
    assert reads and max(reads) <= 20_000
    labels = [r["label"] for r in body["rows"] if r["kind"] == "arrow"]
    assert labels[-1] == "Accept b=1.1 s=5000" and len(labels) < 250  # only what 20 KB hold
    assert not any(r.get("lost") for r in body["rows"][-1:])  # the last send joined its receive
    # a1's old fsync is before p1's tail begins: not drawn (its peers' lines of then were not read).
    assert not any(r["kind"] == "mark" for r in body["rows"]) and body["earlier"] is True


def test_a_rotated_file_is_read_when_the_current_one_is_short(config: Any) -> None:
    logs = write_traces(config.data_dir, [{"ts": 10.0, "a": "p1", "e": "fsync", "lc": 2, "dur_us": 5}])
    (logs / "p1.trace.1").write_text(json.dumps({"ts": 9.0, "a": "p1", "e": "start", "lc": 0, "pid": 7}) + "\n")
    body = get_chart(config)
    assert [r["text"] for r in body["rows"]] == ["start pid=7", "fsync 5µs"]


def test_a_line_that_is_not_an_event_is_left_out_and_counted(config: Any) -> None:
    logs = write_traces(config.data_dir, [{"ts": 10.0, "a": "p1", "e": "fsync", "lc": 2, "dur_us": 5}])
    with open(logs / "p1.trace", "a") as f:
        f.write("not json\n" + json.dumps({"ts": 11.0, "a": "a1", "e": "fsync", "lc": 3}) + "\n")
    (logs / "zz.trace").write_text(json.dumps({"ts": 10.0, "a": "zz", "e": "fsync", "lc": 1}) + "\n")
    body = get_chart(config)
    assert [r["text"] for r in body["rows"]] == ["fsync 5µs"]
    assert any("2 line(s)" in w for w in body["warnings"]) and any("zz.trace" in w for w in body["warnings"])


def test_keep_alives_are_left_out_unless_asked(config: Any) -> None:
    write_traces(config.data_dir, [
        {"ts": 1.0, "a": "p1", "e": "send", "lc": 1, "to": "a1", "m": ["Accept b=1.1 keep-alive"]},
        {"ts": 1.1, "a": "a1", "e": "recv", "lc": 2, "from": "p1", "slc": 1, "m": ["Accept b=1.1 keep-alive"]},
        {"ts": 1.2, "a": "p1", "e": "send", "lc": 2, "to": "a1", "m": ["Accept b=1.1 s=3"]},
        {"ts": 1.3, "a": "a1", "e": "recv", "lc": 3, "from": "p1", "slc": 2, "m": ["Accept b=1.1 s=3"]}])
    assert [r["label"] for r in get_chart(config)["rows"]] == ["Accept b=1.1 s=3"]
    assert [r["label"] for r in get_chart(config, "?keepalive=1")["rows"]] == ["Accept b=1.1 keep-alive",
                                                                               "Accept b=1.1 s=3"]


def test_the_chart_is_read_once_however_often_it_is_asked(crafted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = chart.chart_json
    monkeypatch.setattr(chart, "chart_json", lambda *a: (calls.append(1), real(*a))[1])

    async def test(base: str, token: str, call: Call) -> None:
        import asyncio

        answers = await asyncio.gather(*(call("GET", "/api/chart", headers=bearer(token)) for _ in range(10)))
        assert all(code == 200 for code, _ in answers)

    run_server(crafted, test)
    assert len(calls) == 1


# --- bad input ---------------------------------------------------------------------------------


def test_bad_values_are_400_with_the_reason_logged_and_nothing_read(crafted: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chart, "chart_json", lambda *a: pytest.fail("read on a bad request"))
    monkeypatch.setattr(chart, "SLOT_MAX", 1 << 62)
    bad = ["/api/chart?rows=0", "/api/chart?rows=401", "/api/chart?rows=abc", "/api/chart?rows=-1",
           "/api/chart?keepalive=2", "/api/explain/0", "/api/explain/-1", "/api/explain/abc", "/api/explain/1.5",
           f"/api/explain/{(1 << 62) + 1}", "/api/explain/99999999999999999999999"]

    async def test(base: str, token: str, call: Call) -> None:
        for path in bad:
            code, body = await call("GET", path, headers=bearer(token))
            assert code == 400 and body["error"], (path, code, body)
        assert (await call("GET", "/api/chart"))[0] == 401  # the guard: no token
        assert (await call("GET", "/api/explain/1", headers={**bearer(token), "Origin": "http://evil.example"}))[0] \
            == 403

    lines = run_server(crafted, test)
    refused = [ln for ln in lines if ln["event"] == "web_request_refused" and ln["status"] == 400]
    assert len(refused) >= 5 and "rows must be 1 to 400" in refused[0]["reason"]


# --- explain -----------------------------------------------------------------------------------


def test_explain_is_paxos_explains_json(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    got: dict[str, Any] = {}

    async def test(base: str, token: str, call: Call) -> None:
        for slot in (3, 9):
            got[slot] = await call("GET", f"/api/explain/{slot}", headers=bearer(token))

    run_server(config, test)
    code, body = got[3]
    assert code == 200 and body == json.loads(to_json(explain(config, 3)))
    assert body["verdict"] == "chosen" and body["chosen"][0]["ballot"] == "1.1"
    code, body = got[9]
    assert code == 200 and body["verdict"] == "beyond_log" and "beyond the log" in body["summary"]
    assert body["exit_code"] == 5


def test_a_violation_is_explained_as_such(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    first, second = cmd(B11, "c1", 1, "x"), cmd(B22, "c2", 1, "y")
    write(config, "a1", [vote(B11, 1, first)])
    write(config, "a2", [vote(B11, 1, first), vote(B22, 1, second)])  # P2c broken: a second value
    write(config, "a3", [vote(B22, 1, second)])
    write(config, "l1", [[DecidedRecord(1, first)]])
    write(config, "l2", [])
    got: dict[str, Any] = {}

    async def test(base: str, token: str, call: Call) -> None:
        got["r"] = await call("GET", "/api/explain/1", headers=bearer(token))

    run_server(config, test)
    code, body = got["r"]
    assert code == 200 and body["verdict"] == "violation" and body["exit_code"] == 3
    assert [c["ballot"] for c in body["chosen"]] == ["1.1", "2.2"]
    assert "2 different values chosen" in body["violations"][0]


def test_an_explain_that_fails_says_why(config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.explain

    def broken(c: Any, slot: int) -> Any:
        raise RuntimeError("a file state nobody foresaw")

    monkeypatch.setattr(runtime.explain, "explain", broken)
    got: dict[str, Any] = {}

    async def test(base: str, token: str, call: Call) -> None:
        got["r"] = await call("GET", "/api/explain/1", headers=bearer(token))

    run_server(config, test)
    code, body = got["r"]
    assert code == 500 and "nobody foresaw" in body["error"]


# --- the plot ----------------------------------------------------------------------------------


def applied(n: int, pid: int = 1005) -> dict[str, Any]:
    """A status whose learner l1 has applied `n` commands."""
    s = status()
    for a in s["actors"]:
        if a["name"] == "l1":
            a["pid"] = pid
            a["info"]["commands_applied"] = n
    return s


def test_the_rate_ring_is_bounded_and_computed_from_the_learners_counts() -> None:
    plot = chart.Plot(window_s=10.0, sample_interval_s=1.0)
    for i in range(50):
        plot.observe(1000.0 + i, Sample(float(i), applied(100 * i)))
    assert len(plot.rate) == 10
    assert {p["commands_per_s"] for p in plot.rate} == {100.0}
    assert [p["t"] for p in plot.as_json(1049.0)["rate"]] == [1040.0 + i for i in range(10)]
    plot.gap()  # nobody watched: no rate across the gap
    plot.observe(2000.0, Sample(100.0, applied(99_999)))
    assert len(plot.rate) == 10 and plot.rate[-1]["t"] == 1049.0
    plot.observe(2001.0, Sample(101.0, applied(99_999, pid=77)))  # l1 restarted: no rate from it
    assert plot.rate[-1]["t"] == 1049.0


def test_slot_latency_from_the_traces_each_slot_once() -> None:
    events = model.check_all([
        {"ts": 10.000, "a": "p1", "e": "assign", "lc": 1, "s": 5},
        {"ts": 10.004, "a": "l1", "e": "deliver", "lc": 2, "s": 5},
        {"ts": 10.003, "a": "l2", "e": "deliver", "lc": 2, "s": 5},  # the first delivery counts
        {"ts": 10.010, "a": "p1", "e": "assign", "lc": 3, "s": 6},  # not delivered yet
        {"ts": 10.020, "a": "p1", "e": "assign", "lc": 4, "s": 7},
        {"ts": 10.030, "a": "l1", "e": "deliver", "lc": 5, "s": 7}])
    by_slot = chart.slot_latencies_ms(events)
    assert by_slot.keys() == {5, 7} and by_slot[5] == pytest.approx(3.0) and by_slot[7] == pytest.approx(10.0)
    plot = chart.Plot(window_s=4.0, sample_interval_s=1.0)
    plot.latencies(100.0, by_slot)
    plot.latencies(101.0, by_slot)  # the same slots again: no new point
    assert [(p["ms"], p["slots"]) for p in plot.latency] == [(6.5, 2)]
    for i in range(10):
        plot.latencies(102.0 + i, {8 + i: 1.0})
    assert len(plot.latency) == 4 and plot.p50_ms(111.0) == 1.0
    body = plot.as_json(111.0)
    assert "slot latency from the traces" in body["latency_source"] and "commands applied" in body["rate_source"]


def test_the_sampler_takes_the_pollers_status_only_while_watched(crafted: Any) -> None:
    import asyncio

    from runtime.web.server import Hub

    class Server:
        def __init__(self) -> None:
            self.hub = Hub()
            self._samples: list[tuple[float, Any]] = []
            self.config = crafted

    async def main() -> None:
        srv = Server()
        plot = chart.Plot()
        sampler = chart.Sampler(srv, plot)  # type: ignore[arg-type]
        sampler.asked_at_s = 0.0  # a page showed the plot at t=0
        srv._samples.append((1.0, applied(10)))
        await sampler.tick(1.0, 1000.0)  # not watched
        srv.hub.watched.set()
        srv._samples.append((2.0, applied(20)))
        await sampler.tick(2.0, 1001.0)
        srv._samples.append((3.0, applied(40)))
        await sampler.tick(3.0, 1002.0)
        assert [p["commands_per_s"] for p in plot.rate] == [20.0]
        # the crafted traces' slot 1: p1's assign at 100.0001, l1's delivery at 100.0023
        assert [p["slots"] for p in plot.latency] == [1] and plot.latency[0]["ms"] == pytest.approx(2.2, abs=0.05)
        # Nobody has asked for the plot for a while: the rate goes on, the traces are not read.
        plot.latency.clear()
        plot._latest_slot = 0
        srv._samples.append((20.0, applied(60)))
        await sampler.tick(20.0, 1020.0)
        assert len(plot.rate) == 2 and not plot.latency

    asyncio.run(main())


def test_the_plot_route_starts_the_sampler_and_says_its_sources(config: Any) -> None:
    got: dict[str, Any] = {}

    async def test(base: str, token: str, call: Call) -> None:
        got["r"] = await call("GET", "/api/plot", headers=bearer(token))

    started = time.time()
    run_server(config, test)
    code, body = got["r"]
    assert code == 200 and body["rate"] == [] and body["latency"] == [] and body["window_s"] == chart.PLOT_WINDOW_S
    assert body["now"] >= started and body["latency_p50_ms"] is None


def test_an_actor_killed_from_outside_is_drawn_from_the_supervisors_log(config: Any) -> None:
    logs = write_traces(config.data_dir, [{"ts": 10.0, "a": "a2", "e": "fsync", "lc": 2, "dur_us": 5},
                                          {"ts": 12.0, "a": "a2", "e": "start", "lc": 0, "pid": 99}])
    (logs / "supervisor.jsonl").write_text("\n".join(json.dumps(x) for x in [
        {"ts": 9.0, "event": "child_exited", "child": "a1", "exit": "signal 9", "action": "restart"},  # before
        {"ts": 11.0, "event": "child_exited", "child": "a2", "exit": "signal 9", "action": "restart"},
        {"ts": 11.5, "event": "something_else", "child": "a2"}]) + "\n")
    body = get_chart(config)
    assert [(r["actor"], r["style"], r["text"]) for r in body["rows"]] == [
        ("a1", "crash", "exited: signal 9, restarting"), ("a2", "fsync", "fsync 5µs"),
        ("a2", "crash", "exited: signal 9, restarting"), ("a2", "start", "restart pid=99")]
