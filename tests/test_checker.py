"""The history checker: parsing and its errors, the linearizability search on hand-written
valid and invalid histories, the time budget, the append-workload checks, the command line,
and a property test on histories produced by executing random operations on the model."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.harness.check import appendlog
from runtime.harness.check.__main__ import main
from runtime.harness.check.history import HistoryError, Operation, by_key, load, parse
from runtime.harness.check.linearizability import check, check_key

# --- building histories -------------------------------------------------------------------

Spec = tuple[int, str, Any, float, float | None, str, Any]


def op(
    process: int,
    f: str,
    value: Any,
    start: float,
    end: float | None,
    status: str = "ok",
    result: Any = None,
) -> Spec:
    """One operation: invoked at `start`, completed with `status` at `end` (None: never)."""
    return (process, f, value, start, end, status, result)


def events(*specs: Spec, key: str = "k") -> list[dict[str, Any]]:
    out: list[tuple[float, int, dict[str, Any]]] = []
    for seq, (process, f, value, start, end, status, result) in enumerate(specs):
        out.append((start, 2 * seq, {"process": process, "type": "invoke", "f": f, "key": key,
                                     "value": None if f == "get" else value, "time": start}))
        if end is not None:
            done_value = result if f == "get" else value
            out.append((end, 2 * seq + 1, {"process": process, "type": status, "f": f, "key": key,
                                           "value": done_value, "time": end}))
    out.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in out]


def history(*specs: Spec, key: str = "k") -> list[Operation]:
    return parse(events(*specs, key=key))


def verdict(*specs: Spec) -> bool | None:
    return check_key(history(*specs), budget_s=5.0).valid


# --- parsing ------------------------------------------------------------------------------


def test_parse_pairs_events_and_keeps_failures() -> None:
    ops = history(
        op(1, "put", "a", 0, 1),
        op(2, "get", None, 0.5, 2, result="a"),
        op(3, "cas", ["a", "b"], 3, 4, status="fail"),
        op(1, "append", "x;", 5, None),
    )
    assert [(o.f, o.status, o.index) for o in ops] == [
        ("put", "ok", 0), ("get", "ok", 1), ("cas", "fail", 2), ("append", "info", 3)]
    assert ops[1].result == "a" and ops[2].value == ("a", "b")
    assert ops[3].complete_time == math.inf and ops[0].complete_time == 1.0


def test_info_completion_has_infinite_completion_time() -> None:
    ops = history(op(1, "put", "a", 0, 1, status="info"))
    assert ops[0].status == "info" and ops[0].complete_time == math.inf


def test_load_counts_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = [json.dumps(e) for e in events(op(1, "put", "a", 0, 1))]
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n" + '{"process": 1, "type": "ok"}\n')
    with pytest.raises(HistoryError) as err:
        load(path)
    assert err.value.line == 4 and "missing field" in str(err.value)
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n")
    assert len(load(path)) == 1


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 0}', "{not json"],
         2, "not valid JSON"),
        (['{"process": 1, "type": "ok", "f": "put", "key": "k", "value": "a", "time": 0}'],
         1, "without an outstanding"),
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 0}',
          '{"process": 2, "type": "invoke", "f": "get", "key": "k", "value": null, "time": 0}',
          '{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "b", "time": 1}'],
         3, "line 1 is outstanding"),
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 0}',
          '{"process": 1, "type": "ok", "f": "get", "key": "k", "value": "a", "time": 1}'], 2, "its invoke on line 1"),
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 0}',
          '{"process": 1, "type": "ok", "f": "put", "key": "j", "value": "a", "time": 1}'], 2, "its invoke on line 1"),
        (['{"process": "p1", "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 0}'], 1, "process"),
        (['{"process": 1, "type": "done", "f": "put", "key": "k", "value": "a", "time": 0}'], 1, "type must be"),
        (['{"process": 1, "type": "invoke", "f": "del", "key": "k", "value": "a", "time": 0}'], 1, "f must be"),
        (['{"process": 1, "type": "invoke", "f": "cas", "key": "k", "value": ["a"], "time": 0}'], 1, "cas value"),
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": 3, "time": 0}'], 1, "string value"),
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 5}',
          '{"process": 1, "type": "ok", "f": "put", "key": "k", "value": "a", "time": 4}'], 2, "before its invoke"),
        (['{"process": 1, "type": "invoke", "f": "put", "key": "k", "value": "a", "time": 0}',
          '{"process": 1, "type": "ok", "f": "put", "key": "k", "value": "b", "time": 1}'], 2, "differs"),
        (["[1, 2]"], 1, "JSON object"),
    ],
)
def test_parse_errors_name_the_line(lines: list[str], line: int, words: str) -> None:
    with pytest.raises(HistoryError) as err:
        parse(lines)
    assert err.value.line == line
    assert str(err.value).startswith(f"line {line}: ") and words in str(err.value)


def test_by_key_groups_in_invoke_order() -> None:
    ops = parse(events(op(1, "put", "a", 0, 1), key="x") + events(op(2, "put", "b", 2, 3), key="y")
                + events(op(1, "get", None, 4, 5, result="a"), key="x"))
    groups = by_key(ops)
    assert list(groups) == ["x", "y"] and [o.index for o in groups["x"]] == [0, 2]


# --- linearizable histories ---------------------------------------------------------------


def test_sequential_history_is_valid() -> None:
    assert verdict(
        op(1, "get", None, 0, 1, result=None),
        op(1, "put", "a", 2, 3),
        op(2, "get", None, 4, 5, result="a"),
        op(2, "append", "x", 6, 7),
        op(1, "get", None, 8, 9, result="ax"),
        op(1, "cas", ["ax", "b"], 10, 11),
        op(2, "get", None, 12, 13, result="b"),
    ) is True


@pytest.mark.parametrize("seen", ["a", "b"])
def test_concurrent_put_and_get_either_order(seen: str) -> None:
    assert verdict(
        op(1, "put", "a", 0, 1),
        op(2, "put", "b", 2, 6),
        op(3, "get", None, 3, 5, result=seen),
        op(3, "get", None, 7, 8, result="b"),
    ) is True


def test_concurrent_puts_resolve_in_either_order() -> None:
    for last in ("a", "b"):
        assert verdict(op(1, "put", "a", 0, 5), op(2, "put", "b", 1, 4), op(3, "get", None, 6, 7, result=last)) is True


def test_info_put_taking_effect_after_a_later_get() -> None:
    # The put times out at 2; a get at 3-4 still sees nothing, a get at 10 sees it.
    assert verdict(
        op(1, "put", "a", 0, 2, status="info"),
        op(2, "get", None, 3, 4, result=None),
        op(2, "get", None, 10, 11, result="a"),
    ) is True


def test_unfinished_put_taking_effect_late() -> None:
    assert verdict(
        op(1, "put", "a", 0, None),
        op(2, "get", None, 3, 4, result=None),
        op(2, "get", None, 10, 11, result="a"),
    ) is True


def test_info_put_that_never_takes_effect() -> None:
    assert verdict(
        op(1, "put", "a", 0, 1),
        op(2, "put", "b", 2, 3, status="info"),
        op(3, "get", None, 4, 5, result="a"),
        op(3, "get", None, 100, 101, result="a"),
    ) is True


def test_info_append_and_info_cas_may_never_take_effect() -> None:
    assert verdict(
        op(1, "append", "x", 0, 1, status="info"),
        op(2, "cas", [None, "c"], 0, 1, status="info"),
        op(3, "get", None, 4, 5, result=None),
    ) is True
    assert verdict(
        op(1, "put", "a", 0, 1),
        op(2, "cas", ["a", "c"], 2, 3, status="info"),
        op(3, "get", None, 4, 5, result="c"),
    ) is True


def test_cas_ok_and_fail() -> None:
    assert verdict(
        op(1, "put", "a", 0, 1),
        op(2, "cas", ["a", "b"], 2, 3),
        op(3, "cas", ["a", "c"], 4, 5, status="fail"),
        op(1, "cas", [None, "d"], 6, 7, status="fail"),
        op(2, "get", None, 8, 9, result="b"),
    ) is True


def test_cas_on_absent_key() -> None:
    assert verdict(op(1, "cas", [None, "a"], 0, 1), op(2, "get", None, 2, 3, result="a")) is True


def test_failed_put_is_dropped() -> None:
    assert verdict(op(1, "put", "a", 0, 1), op(2, "put", "b", 2, 3, status="fail"),
                   op(3, "get", None, 4, 5, result="a")) is True


def test_empty_and_failures_only() -> None:
    assert check_key([], budget_s=1.0).valid is True
    assert verdict(op(1, "put", "a", 0, 1, status="fail")) is True


# --- violations ---------------------------------------------------------------------------


def test_stale_read_after_completed_put() -> None:
    result = check_key(history(
        op(1, "put", "a", 0, 1),
        op(1, "put", "b", 2, 3),
        op(2, "get", None, 4, 5, result="a"),
    ), budget_s=5.0)
    assert result.valid is False
    # The witness names the prefix, the write that could not be placed and the read it strands.
    assert "put 'a'" in result.detail and "state after it: 'a'" in result.detail
    assert "put 'b'" in result.detail and "get -> 'a'" in result.detail


def test_read_of_value_never_written() -> None:
    assert verdict(op(1, "put", "a", 0, 1), op(2, "get", None, 0.5, 2, result="zzz")) is False


def test_lost_write() -> None:
    assert verdict(
        op(1, "put", "a", 0, 1),
        op(2, "put", "b", 2, 3),
        op(3, "get", None, 50, 51, result="a"),
    ) is False


def test_cas_ok_when_current_differs() -> None:
    assert verdict(op(1, "put", "a", 0, 1), op(2, "cas", ["x", "b"], 2, 3),
                   op(1, "get", None, 4, 5, result="b")) is False
    assert verdict(op(1, "put", "a", 0, 1), op(2, "cas", ["x", "b"], 2, 3)) is False


def test_cas_fail_when_current_equals_expected() -> None:
    assert verdict(op(1, "put", "a", 0, 1), op(2, "cas", ["a", "b"], 2, 3, status="fail")) is False
    # With a concurrent put that changes the value, the failure is explicable.
    assert verdict(op(1, "put", "a", 0, 1), op(2, "cas", ["a", "b"], 2, 5, status="fail"),
                   op(3, "put", "c", 3, 4)) is True


def test_append_appearing_twice() -> None:
    assert verdict(
        op(1, "append", "a;", 0, 1),
        op(2, "append", "b;", 2, 3),
        op(3, "get", None, 4, 5, result="a;b;a;"),
    ) is False


def test_info_put_cannot_take_effect_before_its_invoke() -> None:
    assert verdict(op(1, "get", None, 0, 1, result="a"), op(2, "put", "a", 2, 3, status="info")) is False


def test_invalid_key_does_not_hide_behind_valid_ones() -> None:
    ops = parse(events(op(1, "put", "a", 0, 1), op(2, "get", None, 2, 3, result="a"), key="good")
                + events(op(3, "put", "a", 0, 1), op(4, "get", None, 2, 3, result="b"), key="bad"))
    report = check(ops, budget_s_per_key=5.0)
    assert not report.valid and report.keys == 2 and report.ops == 4
    assert (report.valid_keys, report.invalid_keys, report.unknown_keys) == (1, 1, 0)
    assert [r.key for r in report.invalid] == ["bad"]


# --- budget -------------------------------------------------------------------------------


def pathological(n: int = 12) -> list[Spec]:
    """n fully concurrent appends and a put (a mixed key, so no dead-read pruning applies),
    then a read no order can produce: the search must try (nearly) every order of the writes
    before concluding, far more than a tiny budget allows."""
    specs = [op(p, "append", f"e{p};", 0, 100) for p in range(n)]
    return [*specs, op(n, "put", "p", 0, 100), op(n + 1, "get", None, 200, 201, result="nope")]


def test_budget_exhausted_gives_unknown() -> None:
    start = time.monotonic()
    result = check_key(history(*pathological()), budget_s=0.05)
    assert result.valid is None and "budget" in result.detail
    assert time.monotonic() - start < 2.0
    report = check(history(*pathological()), budget_s_per_key=0.05)
    assert not report.valid and report.unknown_keys == 1


# --- random histories: executed on the model, so linearizable by construction --------------


def execute(steps: list[tuple[str, int, float, float, str]]) -> list[dict[str, Any]]:
    """Run `steps` one after another against the register model; step i is linearized at time
    i, and its interval [i - before, i + after] contains that point, so widening makes ops
    overlap without ever contradicting the order they ran in. Each step is
    (f, choice, before, after, outcome) with outcome "ok", "info" (applied, outcome unknown),
    "lost" (info, not applied) or "fail" (not applied; a completed cas is ok or fail as the model says)."""
    state: str | None = None
    written: list[str | None] = [None]
    specs: list[Spec] = []
    free_at: list[float] = []  # per process, when its last operation completed
    for i, (f, choice, before, after, outcome) in enumerate(steps):
        start, end = i - before, i + after
        process = next((p for p, t in enumerate(free_at) if t < start), len(free_at))
        if process == len(free_at):
            free_at.append(0.0)
        free_at[process] = end
        applied = outcome in ("ok", "info")
        status = {"ok": "ok", "info": "info", "lost": "info", "fail": "fail"}[outcome]
        result = None
        if f == "put":
            value: Any = f"v{i}"
            if applied:
                state = value
        elif f == "append":
            value = f"e{i},"
            if applied:
                state = (state or "") + value
        elif f == "get":
            value = None
            result = state
            if status == "fail":
                result = None
        else:
            expected = written[choice % len(written)]
            value = [expected, f"c{i}"]
            if status != "info":
                # A completed cas is decided by the model: it swaps (ok) or, definitely, does not (fail).
                status = "ok" if state == expected else "fail"
                applied = status == "ok"
            if applied and state == expected:
                state = value[1]
        if state is not None:
            written.append(state)
        specs.append(op(process, f, value, start, end, status, result))
    return events(*specs)


step_strategy = st.tuples(
    st.sampled_from(["get", "get", "put", "append", "cas"]),
    st.integers(0, 20),
    st.floats(0, 3, allow_nan=False),
    st.floats(0, 3, allow_nan=False),
    st.sampled_from(["ok", "ok", "ok", "ok", "info", "lost", "fail"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step_strategy, min_size=1, max_size=40), st.integers(0, 10**6))
def test_executed_histories_are_valid_and_a_corrupted_read_is_not(
    steps: list[tuple[str, int, float, float, str]], pick: int
) -> None:
    ops = parse(execute(steps))
    result = check_key(ops, budget_s=5.0)
    assert result.valid is True, result.detail
    reads = [o for o in ops if o.f == "get" and o.status == "ok"]
    if reads:
        target = reads[pick % len(reads)]
        corrupted = [dataclasses.replace(o, result="never-written") if o is target else o for o in ops]
        assert check_key(corrupted, budget_s=5.0).valid is False


def brute_force(ops: list[Operation]) -> bool:
    """An independent oracle: try every order directly (memoized), placing each completed op
    and any subset of the info ops, respecting real time; the model written out again."""
    live = [o for o in ops if not (o.status == "fail" and o.f != "cas") and not (o.status == "info" and o.f == "get")]
    must = frozenset(i for i, o in enumerate(live) if o.status != "info")
    memo: dict[tuple[frozenset[int], str | None], bool] = {}

    def step(o: Operation, state: str | None) -> tuple[bool, str | None]:
        if o.f == "get":
            return state == o.result, state
        if o.f == "put":
            return True, o.value  # type: ignore[return-value]
        if o.f == "append":
            return True, (state or "") + o.value  # type: ignore[operator]
        expected, new = o.value  # type: ignore[misc]
        if o.status == "fail":
            return state != expected, state
        return state == expected, new if state == expected else state

    def go(done: frozenset[int], state: str | None) -> bool:
        if must <= done:
            return True
        if (done, state) in memo:
            return memo[(done, state)]
        result = False
        for j, y in enumerate(live):
            if j in done:
                continue
            # Every completed op that returned before y was invoked must already be placed.
            if any(x.complete_time < y.invoke_time for k, x in enumerate(live) if k not in done and k != j):
                continue
            ok, after = step(y, state)
            if ok and go(done | {j}, after):
                result = True
                break
        memo[(done, state)] = result
        return result

    return go(frozenset(), None)


def random_ops(draw: st.DrawFn) -> list[Spec]:
    flavour = draw(st.sampled_from([("get", "put", "cas"), ("get", "append"), ("get", "put", "cas", "append")]))
    values = ["a", "b", "c"] if "append" not in flavour else ["a", "b"]
    reads = [None, *values, "ab", "ba", "aa", "abb"]
    specs: list[Spec] = []
    for p in range(draw(st.integers(1, 7))):
        f = draw(st.sampled_from(flavour))
        start = draw(st.integers(0, 8))
        end = start + draw(st.integers(0, 4))
        status = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        if f == "cas":
            value: Any = [draw(st.sampled_from([None, *values])), draw(st.sampled_from(values))]
        elif f == "get":
            value = None
        else:
            value = draw(st.sampled_from(values))
        result = draw(st.sampled_from(reads)) if f == "get" else None
        specs.append(op(p, f, value, start, None if status == "info" and draw(st.booleans()) else end, status, result))
    return specs


@settings(max_examples=400, deadline=None)
@given(st.composite(random_ops)())
def test_search_agrees_with_brute_force(specs: list[Spec]) -> None:
    ops = history(*specs)
    assert check_key(ops, budget_s=5.0).valid is brute_force(ops)


def simulate(
    seed: int,
    n_ops: int,
    processes: int,
    keys: int = 1,
    p_info: float = 0.02,
    fs: tuple[str, ...] = ("get", "get", "put", "cas", "append"),
) -> list[dict[str, Any]]:
    """A realistic concurrent run: `processes` clients issue random ops with random latencies;
    each op takes effect at a random instant inside its interval, in that order, on the model.
    A client whose op times out (info) is replaced by a fresh process id, as in Jepsen."""
    rng = random.Random(seed)
    raw: list[tuple[float, float, float, int, str, str, Any, bool]] = []
    clock = [rng.random() for _ in range(processes)]
    ids = list(range(processes))
    next_id = processes
    for n in range(n_ops):
        slot = min(range(processes), key=lambda s: clock[s])
        start = clock[slot]
        latency = rng.expovariate(1.0)
        point = start + rng.random() * latency
        info = rng.random() < p_info
        raw.append((point, start, start + latency, ids[slot], f"k{rng.randrange(keys)}",
                    rng.choice(fs), n, info))
        clock[slot] = start + latency + rng.random() * 0.1
        if info:
            ids[slot], next_id = next_id, next_id + 1
    state: dict[str, str | None] = {}
    out: list[tuple[float, int, dict[str, Any]]] = []
    for _point, start, end, process, key, f, n, info in sorted(raw):
        cur = state.get(key)
        status, value, result = "ok", None, None
        if f == "get":
            result = cur
        elif f == "put":
            value = f"v{n}"
            state[key] = value
        elif f == "append":
            value = f"e{n},"
            state[key] = (cur or "") + value
        else:
            expected = cur if rng.random() < 0.5 else f"v{rng.randrange(n + 1)}"
            value = [expected, f"c{n}"]
            if cur == expected:
                state[key] = value[1]
            else:
                status = "fail"
        if info:
            status = "info"
        out.append((start, 2 * n, {"process": process, "type": "invoke", "f": f, "key": key,
                                   "value": value, "time": start}))
        out.append((end, 2 * n + 1, {"process": process, "type": status, "f": f, "key": key,
                                     "value": result if f == "get" else value, "time": end}))
    out.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in out]


REGISTER = ("get", "get", "put", "cas")
APPEND_ONLY = ("get", "append")
MIXED = ("get", "get", "put", "cas", "append")


@pytest.mark.parametrize("fs", [REGISTER, APPEND_ONLY, MIXED], ids=["register", "append-only", "mixed"])
def test_thousand_ops_ten_processes_one_key_is_fast(fs: tuple[str, ...]) -> None:
    ops = parse(simulate(seed=7, n_ops=1000, processes=10, fs=fs))
    start = time.monotonic()
    report = check(ops, budget_s_per_key=20.0)
    assert report.valid, report.results[0].detail
    assert time.monotonic() - start < 5.0  # milliseconds (mixed: ~0.1 s) here; generous for slow CI


def test_ten_keys_of_two_hundred_ops() -> None:
    ops = parse(simulate(seed=11, n_ops=2000, processes=10, keys=10))
    report = check(ops, budget_s_per_key=20.0)
    assert report.valid and report.keys == 10 and report.ops == 2000


@pytest.mark.parametrize("fs", [REGISTER, APPEND_ONLY, MIXED], ids=["register", "append-only", "mixed"])
def test_simulated_history_with_a_stale_read_is_caught(fs: tuple[str, ...]) -> None:
    evs = simulate(seed=3, n_ops=300, processes=5, fs=fs)
    # A sequential write, then a read that misses it and returns the first value the key had.
    first = next(e["value"] for e in evs if e["f"] == "get" and e["type"] == "ok" and e["value"])
    t = max(e["time"] for e in evs) + 1
    f = "append" if "append" in fs else "put"
    evs += [{"process": 99, "type": "invoke", "f": f, "key": "k0", "value": "last,", "time": t},
            {"process": 99, "type": "ok", "f": f, "key": "k0", "value": "last,", "time": t + 1},
            {"process": 99, "type": "invoke", "f": "get", "key": "k0", "value": None, "time": t + 2},
            {"process": 99, "type": "ok", "f": "get", "key": "k0", "value": first, "time": t + 3}]
    assert check(parse(evs)).valid is False


def test_append_only_key_concurrent_and_disagreeing_reads() -> None:
    assert verdict(
        op(1, "append", "a;", 0, 5),
        op(2, "append", "b;", 1, 6),
        op(3, "get", None, 2, 3, result="b;"),
        op(3, "get", None, 4, 7, result="b;a;"),
        op(4, "append", "c;", 8, 9, status="info"),
        op(4, "get", None, 20, 21, result="b;a;"),
    ) is True
    result = check_key(history(
        op(1, "append", "a;", 0, 5),
        op(2, "append", "b;", 1, 6),
        op(3, "get", None, 7, 8, result="a;b;"),
        op(4, "get", None, 7, 8, result="b;a;"),
    ), budget_s=5.0)
    assert result.valid is False and "disagree" in result.detail


# --- append workload ----------------------------------------------------------------------


def appends(*specs: Spec, key: str = "log") -> list[Operation]:
    return history(*specs, key=key)


def test_appendlog_passes() -> None:
    ops = appends(
        op(1, "append", "a;", 0, 1),
        op(2, "append", "b;", 0.5, 2),   # concurrent with a: either order
        op(1, "append", "c;", 3, 4, status="info"),
        op(3, "append", "d;", 3, 5, status="info"),
        op(2, "append", "e;", 6, 7, status="fail"),
        op(1, "append", "f;", 8, 9),
    )
    logs = {"l1": [("log", "b;"), ("log", "a;"), ("log", "d;"), ("log", "f;")], "l2": [("log", "b;"), ("log", "a;")]}
    report = appendlog.check(ops, {"log": "b;a;d;f;"}, logs)
    assert report.valid, report.violations
    assert (report.ok, report.info, report.fail, report.elements, report.learners, report.keys) == (3, 2, 1, 4, 2, 1)


def test_appendlog_learners_diverge() -> None:
    logs = {"l1": [("log", "a;"), ("log", "b;")], "l2": [("log", "a;"), ("log", "c;"), ("log", "b;")]}
    report = appendlog.check([], {}, logs)
    assert len(report.violations) == 1
    assert report.violations[0].startswith("(a)") and "index 1" in report.violations[0]


def test_appendlog_acknowledged_append_missing_or_repeated() -> None:
    ops = appends(op(1, "append", "a;", 0, 1), op(2, "append", "b;", 2, 3))
    missing = appendlog.check(ops, {"log": "a;"})
    assert [v[:3] for v in missing.violations] == ["(b)"] and "missing" in missing.violations[0]
    twice = appendlog.check(ops, {"log": "a;b;a;"})
    assert [v[:3] for v in twice.violations] == ["(b)"] and "2 times" in twice.violations[0]
    no_final = appendlog.check(ops, {})
    assert [v[:3] for v in no_final.violations] == ["(b)"]


def test_appendlog_info_append_twice() -> None:
    ops = appends(op(1, "append", "a;", 0, 1), op(2, "append", "b;", 2, 3, status="info"))
    assert appendlog.check(ops, {"log": "a;"}).valid  # info may never happen
    report = appendlog.check(ops, {"log": "a;b;b;"})
    assert [v[:3] for v in report.violations] == ["(c)"]


def test_appendlog_element_never_invoked() -> None:
    ops = appends(op(1, "append", "a;", 0, 1))
    report = appendlog.check(ops, {"log": "a;zz;"})
    assert [v[:3] for v in report.violations] == ["(d)"] and "'zz'" in report.violations[0]
    failed = appendlog.check(appends(op(1, "append", "a;", 0, 1, status="fail")), {"log": "a;"})
    assert [v[:3] for v in failed.violations] == ["(d)"]
    torn = appendlog.check(ops, {"log": "a;z"})
    assert [v[:3] for v in torn.violations] == ["(d)"]


def test_appendlog_real_time_order() -> None:
    ops = appends(op(1, "append", "a;", 0, 1), op(2, "append", "b;", 2, 3))
    report = appendlog.check(ops, {"log": "b;a;"})
    assert [v[:3] for v in report.violations] == ["(e)"]
    assert "#0" in report.violations[0] and "#1" in report.violations[0]
    # Overlapping appends may land in either order.
    overlapping = appends(op(1, "append", "a;", 0, 2), op(2, "append", "b;", 1, 3))
    assert appendlog.check(overlapping, {"log": "b;a;"}).valid


def test_appendlog_rejects_duplicate_elements() -> None:
    with pytest.raises(ValueError, match="unique"):
        appendlog.check(appends(op(1, "append", "a;", 0, 1), op(2, "append", "a;", 2, 3)), {"log": "a;"})


# --- command line -------------------------------------------------------------------------


def write(tmp_path: Path, evs: list[dict[str, Any]]) -> str:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in evs))
    return str(path)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = events(op(1, "put", "a", 0, 1), op(2, "get", None, 2, 3, result="a"))
    assert main([write(tmp_path, good)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "keys=1 ops=2 valid=1 invalid=0 unknown=0" and "valid" in out[0]

    bad = events(op(1, "put", "a", 0, 1), op(2, "get", None, 2, 3, result="b"), key="x") + good
    assert main([write(tmp_path, bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "keys=2 ops=4 valid=1 invalid=1 unknown=0" and any("INVALID" in line for line in out)

    assert main([write(tmp_path, events(*pathological())), "--budget-s", "0.05"]) == 2
    assert capsys.readouterr().out.splitlines()[-1] == "keys=1 ops=14 valid=0 invalid=0 unknown=1"

    (tmp_path / "broken.jsonl").write_text("{\n")
    assert main([str(tmp_path / "broken.jsonl")]) == 3
    assert "line 1" in capsys.readouterr().err
