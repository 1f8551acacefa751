"""Batched client calls (`get_many`, `put_many`): many operations for one await. Each put keeps
its own seq (exactly once, retried alone), get_many's keys are `mget` commands of up to
MGET_KEYS_MAX keys each (one seq, one list of values) in one linearizable `Read` to the leader,
and the call settles only once every one of its operations is answered: in order, refused
(`CommandFailed`) or unanswered (`OutcomeUnknown`). The shell is driven here without a network:
fake sockets take the frames, and the learner's answers go straight to the core."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from actors.client import ClientCore, ClientParams, TooManyOutstanding
from actors.kv import BadBatch, KVStore, parse_batch
from actors.learner import Learner
from actors.messages import Hello, Read, Reply, Submit
from actors.ready import Ready
from runtime import codec
from runtime.client import MGET_KEYS_MAX, Client, CommandFailed, InvalidCommand, OutcomeUnknown
from runtime.config import SECTIONS, load, render
from runtime.harness.local import free_ports

NAMES = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
INSECURE = "[security]\ncurve = false\n" if "security" in SECTIONS else ""  # nothing listens: no keys needed


class FakeSocket:
    """What the shell sends, by destination; never anything to receive."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes, flags: int = 0) -> None:
        self.frames.append(frame)

    def getsockopt(self, option: int) -> int:
        return 0  # no input waiting

    def close(self, linger: int = 0) -> None:
        pass


def offline_client(tmp_path: Path, **kw: Any) -> tuple[Client, dict[str, FakeSocket]]:
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True)), extra=INSECURE))
    kv = Client(load(path), **kw)
    sockets = {n: FakeSocket() for n in ("p1", "p2", "l1", "l2")}
    kv._sockets = sockets  # type: ignore[assignment]
    kv._loop = asyncio.get_running_loop()
    kv.core.receive("l1", Hello(), 0.0)
    return kv, sockets


def sent(sock: FakeSocket) -> list[Any]:
    return [m for frame in sock.frames for m in codec.decode_frame(frame)[1]]


def commands(m: Read | Submit) -> list[list[Any]]:
    return [list(c) for c in codec.decode_client_batch(m.batch)[2]]


async def settle(task: asyncio.Task[Any]) -> None:
    for _ in range(10):  # the call's flush runs on the loop's next turns
        await asyncio.sleep(0)
    assert not task.done()  # waiting for its answers


def test_get_many_sends_one_read_to_the_leader_and_returns_the_values_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        kv, sockets = offline_client(tmp_path)
        keys = [f"k{i}" for i in range(MGET_KEYS_MAX * 2 + 3)]
        call = asyncio.ensure_future(kv.get_many(keys))
        await settle(call)
        (read,) = sent(sockets["p1"])
        assert type(read) is Read and read.learner in ("l1", "l2")
        # One mget (one seq) per MGET_KEYS_MAX keys: the keys in order, the last chunk the rest.
        chunks = [keys[:MGET_KEYS_MAX], keys[MGET_KEYS_MAX:2 * MGET_KEYS_MAX], keys[2 * MGET_KEYS_MAX:]]
        assert commands(read) == [[seq, "mget", *chunk] for seq, chunk in enumerate(chunks, start=1)]
        # Answers out of order and in two frames: the values still come back in the keys' order,
        # and only once the last one is in.
        values = [[k.upper() if i % 2 else None for i, k in enumerate(chunk)] for chunk in chunks]
        kv._apply(kv.core.receive("l1", Reply(((3, True, tuple(values[2])), (1, True, tuple(values[0])))), 0.01))
        await asyncio.sleep(0)
        assert not call.done()
        kv._apply(kv.core.receive("l1", Reply(((2, True, tuple(values[1])),)), 0.02))
        assert await call == [v for chunk in values for v in chunk]
        assert not kv.core.ops and not kv._groups  # nothing left behind
        await kv.close()

    asyncio.run(main())


def test_an_mget_answered_with_the_wrong_number_of_values_fails_the_call(tmp_path: Path) -> None:
    async def main() -> None:
        kv, _ = offline_client(tmp_path)
        call = asyncio.ensure_future(kv.get_many(["a", "b"]))
        await settle(call)
        kv._apply(kv.core.receive("l1", Reply(((1, True, ("A",)),)), 0.01))  # a buggy learner: one of two
        with pytest.raises(CommandFailed, match="an mget of 2 keys"):
            await call
        await kv.close()

    asyncio.run(main())


def test_put_many_is_one_submit_of_separate_commands_and_waits_for_every_answer(tmp_path: Path) -> None:
    async def main() -> None:
        kv, sockets = offline_client(tmp_path)
        call = asyncio.ensure_future(kv.put_many([("x", "1"), ("y", "2")]))
        await settle(call)
        (submit,) = sent(sockets["p1"])
        assert type(submit) is Submit and commands(submit) == [[1, "put", "x", "1"], [2, "put", "y", "2"]]
        # One refused: the call still waits for the other, then says which one failed.
        kv._apply(kv.core.receive("l1", Reply(((1, False, "bad_command: nope"),)), 0.01))
        await asyncio.sleep(0)
        assert not call.done()
        kv._apply(kv.core.receive("l1", Reply(((2, True, None),)), 0.02))
        with pytest.raises(CommandFailed, match="seq 1: bad_command: nope"):
            await call
        await kv.close()

    asyncio.run(main())


def test_a_batched_call_past_its_deadline_is_an_unknown_outcome(tmp_path: Path) -> None:
    async def main() -> None:
        kv, _ = offline_client(tmp_path, timeout_s=1.0)
        call = asyncio.ensure_future(kv.put_many([("x", "1"), ("y", "2")]))
        await settle(call)
        kv._apply(kv.core.receive("l1", Reply(((2, True, None),)), 0.01))
        kv._apply(kv.core.timer(kv.core.ops[1].deadline + 0.01))  # seq 1 never answered
        with pytest.raises(OutcomeUnknown, match=r"put 'x' \(seq 1\).*may or may not have been applied"):
            await call
        await kv.close()

    asyncio.run(main())


def test_one_bad_key_refuses_the_whole_call_before_anything_is_queued(tmp_path: Path) -> None:
    async def main() -> None:
        kv, sockets = offline_client(tmp_path)
        with pytest.raises(InvalidCommand, match="non-empty"):
            await kv.get_many(["fine", ""])
        with pytest.raises(InvalidCommand, match="value larger than"):
            await kv.put_many([("fine", "v"), ("k", "v" * (kv.config.limits.value_bytes_max + 1))])
        assert await kv.get_many([]) == []
        await asyncio.sleep(0)
        assert not kv.core.ops and not kv.core.to_send and not any(s.frames for s in sockets.values())
        await kv.close()

    asyncio.run(main())


def test_closing_fails_a_waiting_batched_call(tmp_path: Path) -> None:
    async def main() -> None:
        kv, _ = offline_client(tmp_path)
        call = asyncio.ensure_future(kv.get_many(["a", "b"]))
        await settle(call)
        kv._sockets = {}
        await kv.close()
        with pytest.raises(OutcomeUnknown, match="closed"):
            await call

    asyncio.run(main())


# --- the core ------------------------------------------------------------------------------


def test_submit_many_is_all_or_none_and_each_command_keeps_a_seq_of_its_own() -> None:
    c = ClientCore("c1", ["p1"], ["l1"], codec.encode_client_batch, ClientParams(outstanding_max=4))
    group = object()
    ops = c.submit_many([["get", "a"], ["get", "b"]], 0.0, "lease", group)
    assert [op.seq for op in ops] == [1, 2] and all(op.group is group and op.read == "lease" for op in ops)
    with pytest.raises(TooManyOutstanding):
        c.submit_many([["put", "x", "1"]] * 3, 0.0)  # 2 + 3 > 4: none of them is queued
    assert list(c.ops) == [1, 2] and c.next_seq == 3
    # A retry of one resends that one only, under its seq.
    ready = c.flush(0.0)
    assert [[list(cmd) for cmd in codec.decode_client_batch(m.batch)[2]] for _, ms, _ in ready.send for m in ms] \
        == [[[1, "get", "a"], [2, "get", "b"]]]
    c.receive("l1", Reply(((1, True, "A"),)), 0.01)
    c.timer(c.params.retry_s + 0.02)
    ready = c.flush(c.params.retry_s + 0.02)
    assert [[list(cmd) for cmd in codec.decode_client_batch(m.batch)[2]] for _, ms, _ in ready.send for m in ms] \
        == [[[2, "get", "b"]]]


# --- the learner's one-pass parse of a read batch ---------------------------------------------


def reference_parse(blob: bytes) -> tuple[str, list[tuple[int, str]], list[int]] | None:
    """What a read batch means, by `parse_batch`'s rules then one check per command (the
    learner's parse before it skipped copying the commands)."""
    try:
        batch = parse_batch(codec.decode_client_batch(blob))
    except (BadBatch, ValueError):
        return None
    gets = [(c[0], c[2]) for c in batch.commands
            if len(c) == 3 and type(c[0]) is int and c[1] == "get" and type(c[2]) is str and c[2]]
    bad = [c[0] for c in batch.commands
           if not (len(c) == 3 and type(c[0]) is int and c[1] == "get" and type(c[2]) is str and c[2])
           and c and type(c[0]) is int and c[0] >= 0]
    return batch.client_id, gets, bad


ATOMS = st.one_of(st.integers(-3, 5), st.sampled_from(["get", "put", "", "k", "é"]), st.none(), st.booleans(),
                  st.binary(max_size=2))
COMMAND = st.one_of(ATOMS, st.lists(ATOMS, max_size=4),
                    st.tuples(st.integers(0, 9), st.just("get"), st.sampled_from(["k", "", "x"])))


@settings(max_examples=300, deadline=None)
@example(client="c.1", acked=0, commands=[0, -1, 3, [0], [], [1, "get", ""], [2, "get", "k", "x"]], reply_by=None)
@given(client=st.one_of(st.just("c.1"), st.just(""), st.text(min_size=65, max_size=66), st.integers(0, 1)),
       acked=st.one_of(st.integers(0, 3), st.just(-1), st.just("0")),
       commands=st.one_of(st.lists(COMMAND, max_size=6), ATOMS),
       reply_by=st.one_of(st.none(), st.just("l1"), st.just(7)))
def test_the_learner_reads_a_read_batch_exactly_as_parse_batch_would(client: Any, acked: Any, commands: Any,
                                                                      reply_by: Any) -> None:
    raw = [client, acked, commands] + ([] if reply_by is None else [reply_by])
    blob = codec.pack(raw)
    lr = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 4096), proposer_ids={"p1": 1})
    assert lr._parse_reads(blob, Ready()) == reference_parse(blob)


# --- the bench's reads line ---------------------------------------------------------------------


def test_bench_batch_is_refused_outside_reads(capsys: Any) -> None:
    from runtime.harness import bench

    with pytest.raises(SystemExit) as exc:
        bench.main(["--batch", "16"])  # the full run's writes would not be batched: not like for like
    assert exc.value.code == 2 and "--batch is for --reads only" in capsys.readouterr().err


def test_bench_reads_line_gives_per_round_ratio_medians_and_cpu_per_op_of_both_sides() -> None:
    from runtime.harness.bench import Result, reads_line

    def res(ops: float, cluster: float = 0.01, client: float = 0.002) -> Result:
        return Result("x", ops, 1.0, 2.0, 3.0, 0.0, cluster, client_cpu_s_per_1k=client)

    writes = [res(100.0), res(50.0), res(80.0)]
    reads = [res(300.0, 0.003, 0.004), res(200.0, 0.003, 0.004), res(160.0, 0.003, 0.004)]
    line = reads_line(writes, reads, [res(150.0), res(100.0), res(80.0)], res(10.0), res(40.0), 16)
    figures = dict(kv.split("=") for kv in line.removeprefix("bench-reads ").split())
    assert float(figures["read_vs_write"]) == 3.0  # the best round of each: 300 / 100
    assert float(figures["read_vs_write_median"]) == 3.0  # median of 3, 4 and 2 (round by round)
    assert float(figures["mix90_vs_write_median"]) == 1.5 and figures["batch"] == "16"
    assert float(figures["read_cluster_us_per_op"]) == 3.0 and float(figures["read_client_us_per_op"]) == 4.0
