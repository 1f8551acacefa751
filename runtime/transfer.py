"""Snapshot transfer between actors: chunked, resumable, checksummed, within the message limit.

The receiving side keeps a window of chunk requests in flight, writes chunks to a partial file in
order (early ones wait in memory, at most a window's worth), retries a chunk that does not come,
gives up after a while without progress, and at the end checks the whole file's size and crc32
before it makes it the durable snapshot. A partial file survives a restart: the next transfer of
the same snapshot (same slot and crc) starts where it stopped. The serving side answers from its
latest durable snapshot only; asked for another, it says it has none (`size_bytes` 0).

Sans-IO like a core: it is driven by the turn driver (runtime/turn.py), ticks included, and
touches files only through a `SnapshotDir`. The same code runs in processes and in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.messages import SnapshotChunk, SnapshotFetch, SnapshotInstalled
from actors.ready import INFO, WARNING, FetchSnapshot, Ready
from runtime.storage import SnapshotDir

CHUNK_OVERHEAD_BYTES = 256


@dataclass
class _Receiving:
    source: str
    slot: int
    size_bytes: int
    crc: int
    offset: int  # written contiguously so far
    requested: dict[int, int] = field(default_factory=dict)  # chunk offset -> tick it was asked for
    early: dict[int, bytes] = field(default_factory=dict)  # arrived ahead of `offset`
    idle_ticks: int = 0
    started_tick: int = 0


class Transfers:
    def __init__(self, snapshots: SnapshotDir, chunk_bytes: int, tick_ms: float, window: int = 4,
                 retry_ticks: int = 20, give_up_ticks: int = 300) -> None:
        self.snapshots = snapshots
        self.tick_ms = tick_ms
        self.chunk_bytes = chunk_bytes
        self.window = window
        self.retry_ticks = retry_ticks
        self.give_up_ticks = give_up_ticks
        self.current: _Receiving | None = None
        self.ticks = 0
        self.bytes_received = 0

    # --- receiving -------------------------------------------------------------------------

    def start(self, action: FetchSnapshot, ready: Ready) -> SnapshotInstalled | None:
        cur = self.current
        if cur is not None and (cur.slot, cur.crc) == (action.slot, action.crc):
            return None  # already under way
        if action.size_bytes <= 0:
            return SnapshotInstalled(action.slot, 0, 0, ok=False)
        have = min(self.snapshots.received(action.slot, action.crc), action.size_bytes)
        self.current = _Receiving(action.source, action.slot, action.size_bytes, action.crc, have,
                                  started_tick=self.ticks)
        ready.event("snapshot_fetch_started", peer=action.source, slot=action.slot, bytes=action.size_bytes,
                    resumed_at=have)
        if have == action.size_bytes:
            return self._finish(ready)
        self._request(ready)
        return None

    def _request(self, ready: Ready) -> None:
        cur = self.current
        assert cur is not None
        top = max([cur.offset, *cur.requested, *cur.early], default=cur.offset)
        nxt = cur.offset if not cur.requested and not cur.early else top + self.chunk_bytes
        while len(cur.requested) < self.window and nxt < cur.size_bytes:
            if nxt not in cur.requested and nxt not in cur.early:
                cur.requested[nxt] = self.ticks
                ready.send.append((cur.source, SnapshotFetch(cur.slot, nxt, min(self.chunk_bytes,
                                                                                 cur.size_bytes - nxt))))
            nxt += self.chunk_bytes

    def on_chunk(self, sender: str, m: SnapshotChunk, ready: Ready) -> SnapshotInstalled | None:
        cur = self.current
        if cur is None or sender != cur.source or m.slot != cur.slot:
            return None  # a late answer to a transfer we are done with
        if m.size_bytes != cur.size_bytes or m.crc != cur.crc:
            # The source no longer has it (it moved on to a newer snapshot): stop; the core asks again.
            return self._abandon(ready, "source_has_no_such_snapshot")
        if m.offset not in cur.requested or len(m.data) != min(self.chunk_bytes, cur.size_bytes - m.offset):
            return None  # a duplicate, or not what we asked for
        del cur.requested[m.offset]
        cur.idle_ticks = 0
        cur.early[m.offset] = m.data
        while cur.offset in cur.early:
            data = cur.early.pop(cur.offset)
            if not self.snapshots.receive(cur.slot, cur.crc, cur.offset, data):
                return self._abandon(ready, "partial_file_gone")
            cur.offset += len(data)
            self.bytes_received += len(data)
        if cur.offset >= cur.size_bytes:
            return self._finish(ready)
        self._request(ready)
        return None

    def _finish(self, ready: Ready) -> SnapshotInstalled:
        cur = self.current
        assert cur is not None
        self.current = None
        if not self.snapshots.finish(cur.slot, cur.size_bytes, cur.crc):
            ready.event("snapshot_rejected", WARNING, peer=cur.source, slot=cur.slot, reason="checksum_mismatch")
            return SnapshotInstalled(cur.slot, 0, 0, ok=False)
        ready.event("snapshot_received", INFO, peer=cur.source, slot=cur.slot, bytes=cur.size_bytes,
                    ms=round((self.ticks - cur.started_tick) * self.tick_ms, 1))
        return SnapshotInstalled(cur.slot, cur.size_bytes, cur.crc)

    def _abandon(self, ready: Ready, reason: str) -> SnapshotInstalled:
        cur = self.current
        assert cur is not None
        self.current = None
        ready.event("snapshot_fetch_abandoned", WARNING, peer=cur.source, slot=cur.slot, reason=reason,
                    received=cur.offset)
        return SnapshotInstalled(cur.slot, 0, 0, ok=False)

    def tick(self, ready: Ready) -> SnapshotInstalled | None:
        self.ticks += 1
        cur = self.current
        if cur is None:
            return None
        cur.idle_ticks += 1
        if cur.idle_ticks >= self.give_up_ticks:
            return self._abandon(ready, "no_progress")  # the partial file stays: a retry resumes
        for offset, asked in list(cur.requested.items()):
            if self.ticks - asked >= self.retry_ticks:
                cur.requested[offset] = self.ticks
                ready.send.append((cur.source, SnapshotFetch(cur.slot, offset, min(self.chunk_bytes,
                                                                                    cur.size_bytes - offset))))
        return None

    # --- serving ---------------------------------------------------------------------------

    def serve(self, sender: str, m: SnapshotFetch, have: tuple[int, int, int] | None, ready: Ready) -> None:
        """Answer from our latest durable snapshot `have` = (slot, size_bytes, crc)."""
        if have is None or m.slot != have[0] or m.offset >= have[1] or m.length <= 0:
            ready.send.append((sender, SnapshotChunk(m.slot, m.offset, 0, 0, b"")))
            return
        data = self.snapshots.read(have[0], m.offset, min(m.length, self.chunk_bytes, have[1] - m.offset))
        if data is None:
            ready.send.append((sender, SnapshotChunk(m.slot, m.offset, 0, 0, b"")))
            return
        ready.send.append((sender, SnapshotChunk(m.slot, m.offset, have[1], have[2], data)))
        if m.offset + len(data) >= have[1]:
            ready.event("snapshot_sent", INFO, peer=sender, slot=m.slot, bytes=have[1])
