"""A write workload for real-process tests: concurrent writers that record exactly what was
acknowledged, so that the test can read every acknowledged write back afterwards."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from runtime.client import Client, OutcomeUnknown


@dataclass
class Ledger:
    puts: dict[str, str] = field(default_factory=dict)  # acknowledged key -> value
    appends: dict[str, list[str]] = field(default_factory=dict)  # key -> acknowledged elements
    maybe_appends: dict[str, list[str]] = field(default_factory=dict)  # outcome unknown
    acks: list[tuple[float, float]] = field(default_factory=list)  # (invoked, acknowledged)
    unknown: int = 0

    def first_ack_invoked_after(self, t: float) -> float | None:
        """When the first operation started after `t` was acknowledged (in-flight operations
        that were already chosen before `t` do not count)."""
        later = [ack for invoked, ack in self.acks if invoked > t]
        return min(later) if later else None

    async def progress_after(self, t: float, timeout_s: float = 30.0) -> float:
        """Seconds from `t` to the acknowledgement of the first operation started after it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ack = self.first_ack_invoked_after(t)
            if ack is not None:
                return ack - t
            await asyncio.sleep(0.005)
        raise AssertionError(f"no operation started after t={t:.3f} was acknowledged within {timeout_s:g}s")


async def writers(client: Client, ledger: Ledger, stop: asyncio.Event, tasks: int = 8, prefix: str = "") -> None:
    """`tasks` writers on one client; `prefix` keeps the keys of several clients sharing one ledger
    apart."""
    async def one(i: int) -> None:
        j = 0
        log = f"{prefix}log{i}"
        while not stop.is_set():
            j += 1
            key, element = f"{prefix}k{i}-{j}", f"{prefix}e{i}.{j};"
            invoked = time.monotonic()
            try:
                if j % 2:
                    await client.put(key, f"v{j}")
                    ledger.puts[key] = f"v{j}"
                else:
                    await client.append(log, element)
                    ledger.appends.setdefault(log, []).append(element)
                ledger.acks.append((invoked, time.monotonic()))
            except OutcomeUnknown:
                ledger.unknown += 1
                if not j % 2:
                    ledger.maybe_appends.setdefault(log, []).append(element)

    await asyncio.gather(*(one(i) for i in range(tasks)))


async def verify(client: Client, ledger: Ledger) -> None:
    """Every acknowledged put reads back with its value; every acknowledged append appears
    exactly once, in order; nothing appears that was never sent."""
    keys = list(ledger.puts)
    values = await asyncio.gather(*(client.get(k) for k in keys))
    wrong = {k: (ledger.puts[k], v) for k, v in zip(keys, values, strict=True) if v != ledger.puts[k]}
    assert not wrong, f"{len(wrong)} acknowledged writes lost or changed: {list(wrong.items())[:5]}"
    for key, elements in ledger.appends.items():
        value = await client.get(key) or ""
        got = [e + ";" for e in value.split(";") if e]
        for e in elements:
            assert got.count(e) == 1, f"{key}: acknowledged {e} appears {got.count(e)} times"
        allowed = set(elements) | set(ledger.maybe_appends.get(key, []))
        assert set(got) <= allowed, f"{key}: unexpected elements {set(got) - allowed}"
        acked_order = [e for e in got if e in set(elements)]
        assert acked_order == sorted(acked_order, key=elements.index), f"{key}: order broken"
