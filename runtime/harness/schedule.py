"""A nemesis run's fault schedule (runtime/harness/nemesis.py): every fault it applied, with its
time offset from the start of the load, its targets and its parameters, plus the seed and the
options the run needs, so that `--replay FILE` can run the same schedule again on real processes.

One JSON document, rewritten whole (temporary file, rename) after each fault, so that a run that
dies midway still leaves the faults it applied:

    {"format": "paxos-nemesis-schedule", "version": 1, "seed": 7,
     "options": {"duration_s": 40.0, "faults": ["kill", ...], "workers": 12, "mode": "classic",
                 "fast_recovery": "coordinated", "acceptors": 0, "whole_cluster_share": 0.3,
                 "clock_beyond": 0.0, "bugs": "", "disk_owner": ""},
     "faults": [{"at_s": 2.41, "loop": "faults", "kind": "kill", "hold_s": 1.7, "targets": ["a2"],
                 "params": {"signal": "KILL"}}, ...]}

`loop` is the nemesis loop that applied it: "faults" (one fault at a time, each healed before the
next) or "membership" (the membership changes, alongside). A fault that could not be applied has
`error` too; a replay applies it again all the same. `load` refuses a file that is not such a
schedule with `ScheduleError`, naming what is wrong.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "paxos-nemesis-schedule"
VERSION = 1
LOOPS = ("faults", "membership")
OPTIONS: dict[str, type | tuple[type, ...]] = {
    "duration_s": (int, float), "faults": list, "workers": int, "mode": str, "fast_recovery": str,
    "acceptors": int, "whole_cluster_share": (int, float), "clock_beyond": (int, float), "bugs": str,
    "disk_owner": str,
}


class ScheduleError(ValueError):
    """Not a schedule this build can replay."""


@dataclass
class Fault:
    at_s: float  # from the start of the load
    kind: str
    hold_s: float
    targets: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    loop: str = "faults"
    error: str = ""

    def same_as(self, other: Fault) -> bool:
        """The same fault, whenever it happened (a replay's faults, against the original's)."""
        return (self.kind, self.loop, self.targets, self.params, round(self.hold_s, 6)) == \
            (other.kind, other.loop, other.targets, other.params, round(other.hold_s, 6))


@dataclass
class Schedule:
    seed: int
    options: dict[str, Any]
    faults: list[Fault] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        faults = []
        for f in self.faults:
            d = asdict(f)
            if not d["error"]:
                del d["error"]
            faults.append(d)
        return {"format": FORMAT, "version": VERSION, "seed": self.seed, "options": self.options,
                "faults": faults}

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        os.replace(tmp, path)


def load(path: Path, kinds: tuple[str, ...]) -> Schedule:
    """Read and check a schedule; `kinds` are the fault kinds this nemesis knows."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ScheduleError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{path}: not JSON ({exc})") from None
    return parse(raw, kinds, str(path))


def parse(raw: Any, kinds: tuple[str, ...], where: str = "schedule") -> Schedule:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ScheduleError(f"{where}: not a nemesis schedule (no \"format\": \"{FORMAT}\")")
    if raw.get("version") != VERSION:
        raise ScheduleError(f"{where}: schedule version {raw.get('version')!r} is not supported (this build "
                            f"replays version {VERSION})")
    seed = raw.get("seed")
    if type(seed) is not int:
        raise ScheduleError(f"{where}: \"seed\" must be an integer, not {seed!r}")
    options = raw.get("options")
    if not isinstance(options, dict):
        raise ScheduleError(f"{where}: \"options\" must be an object")
    for key, want in OPTIONS.items():
        if key not in options:
            raise ScheduleError(f"{where}: options.{key} is missing")
        if not isinstance(options[key], want) or isinstance(options[key], bool):
            raise ScheduleError(f"{where}: options.{key} has the wrong type ({options[key]!r})")
    unknown = [f for f in options["faults"] if f not in kinds]
    if unknown:
        raise ScheduleError(f"{where}: options.faults names unknown faults {unknown} (known: {', '.join(kinds)})")
    if not math.isfinite(options["duration_s"]) or options["duration_s"] <= 0:
        raise ScheduleError(f"{where}: options.duration_s must be a positive number of seconds")
    entries = raw.get("faults")
    if not isinstance(entries, list):
        raise ScheduleError(f"{where}: \"faults\" must be a list")
    faults = [_fault(e, i, kinds, where) for i, e in enumerate(entries)]
    return Schedule(seed, options, faults)


def _fault(e: Any, i: int, kinds: tuple[str, ...], where: str) -> Fault:
    at = f"{where}: faults[{i}]"
    if not isinstance(e, dict):
        raise ScheduleError(f"{at} must be an object")
    kind, loop = e.get("kind"), e.get("loop", "faults")
    if kind not in kinds:
        raise ScheduleError(f"{at}: unknown fault kind {kind!r} (known: {', '.join(kinds)})")
    if loop not in LOOPS:
        raise ScheduleError(f"{at}: unknown loop {loop!r} (known: {', '.join(LOOPS)})")
    for key in ("at_s", "hold_s"):
        v = e.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ScheduleError(f"{at}: {key} must be a number of seconds >= 0, not {v!r}")
    targets, params = e.get("targets"), e.get("params", {})
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ScheduleError(f"{at}: targets must be a list of actor names")
    if not isinstance(params, dict):
        raise ScheduleError(f"{at}: params must be an object")
    return Fault(float(e["at_s"]), kind, float(e["hold_s"]), list(targets), dict(params), loop,
                 str(e.get("error", "")))
