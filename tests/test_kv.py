"""The key-value state machine and its exactly-once sessions (seed 004)."""

from actors.kv import ClientBatch, KVStore


def run(kv: KVStore, *commands, client: str = "c", acked_below: int = 0):
    return kv.apply_batch(ClientBatch(client, acked_below, tuple(tuple(c) for c in commands)))


def test_operations() -> None:
    kv = KVStore(16, 16)
    assert run(kv, (1, "put", "k", "v"), (2, "get", "k"), (3, "get", "nope")) == [
        (1, True, None), (2, True, "v"), (3, True, None)]
    assert run(kv, (4, "cas", "k", "v", "w"), (5, "cas", "k", "v", "x"), (6, "cas", "new", None, "n")) == [
        (4, True, True), (5, True, False), (6, True, True)]
    assert run(kv, (7, "append", "a", "x"), (8, "append", "a", "y")) == [(7, True, "x"), (8, True, "xy")]
    assert run(kv, (9, "delete", "k"), (10, "get", "k"), (11, "delete", "k")) == [
        (9, True, None), (10, True, None), (11, True, None)]


def test_a_retried_command_applies_once_and_gets_the_first_result() -> None:
    kv = KVStore(16, 16)
    assert run(kv, (1, "append", "a", "x")) == [(1, True, "x")]
    assert run(kv, (1, "append", "a", "x")) == [(1, True, "x")]
    assert kv.data["a"] == "x"
    assert kv.applied_commands == 1


def test_results_below_acked_below_are_forgotten_and_not_reapplied() -> None:
    kv = KVStore(16, 16)
    run(kv, (1, "append", "a", "x"), (2, "append", "a", "y"))
    assert run(kv, (3, "get", "a"), acked_below=3) == [(3, True, "xy")]
    assert 1 not in kv.sessions["c"].results
    assert run(kv, (1, "append", "a", "x"), acked_below=3) == []  # stale: already answered
    assert kv.data["a"] == "xy"


def test_limits_and_bad_commands_are_definite_errors_that_change_nothing() -> None:
    kv = KVStore(4, 8)
    out = run(kv, (1, "put", "toolong", "v"), (2, "put", "k", "x" * 9), (3, "put", "", "v"),
              (4, "frobnicate", "k"), (5, "put", "k"), (6, "put", 7, "v"), (7, "append", "k", "12345678"),
              (8, "append", "k", "9"))
    assert [ok for _, ok, _ in out] == [False, False, False, False, False, False, True, False]
    assert out[7][2].startswith("value_too_large")
    assert kv.data == {"k": "12345678"}


def test_sessions_are_bounded_and_evicted_in_log_order() -> None:
    kv = KVStore(16, 16, sessions_max=2)
    for c in ("a", "b", "c"):
        run(kv, (1, "put", c, c), client=c)
    assert list(kv.sessions) == ["b", "c"]


def test_digest_depends_only_on_the_data() -> None:
    a, b = KVStore(16, 16), KVStore(16, 16)
    run(a, (1, "put", "x", "1"), (2, "put", "y", "2"))
    run(b, (1, "put", "y", "2"), (2, "put", "x", "1"), client="other")
    assert a.digest() == b.digest()
    run(b, (3, "put", "y", "3"), client="other")
    assert a.digest() != b.digest()
