"""The terminal chart: one column per actor, one row per message or mark, in unicode, colored
with rich. `render` returns rich `Text` lines (their `.plain` is the uncolored chart the golden
tests compare); the caller prints or pages them.

A row:

       ms  c1        p1        a1        a2
      0.0  ├─Submit─▶│         │         │
      0.4  │         ├─Accept b=1.1 s=1─▶│    (a label too long for its arrow goes to the right)
      0.9  │         │         ◆ fsync 0.3ms
           ┊         ┊         ┊         ┊      197.6 ms later (a pause of GAP_MS or more)

An arrow's head is `▶`/`◀`; `✗` ends a message its (traced) receiver never took ("(lost)", or
"(dropped)" when step mode discarded it), `?` one sent after its receiver's trace ends ("(in
flight)": read from a running cluster, the receive may not be written yet); `?` starts one whose
send is not in the traces. Marks:
`▪` a record written, `◆` an fsync, `★` a slot chosen, `✔` delivered, `•` commands assigned to a
slot, `↩` a reply, `▶` (re)start, `✖` a crash or exit.
"""

from __future__ import annotations

from rich.text import Text

from runtime.tracechart.model import IN_FLIGHT, Arrow, Chart, Mark

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta",
          "bright_green", "bright_yellow", "bright_blue", "red"]
MARK_COLORS = {"persist": "dim", "fsync": "dim", "decide": "bold green", "deliver": "green", "crash": "bold red",
               "start": "bold yellow", "assign": "", "reply": "", "note": "dim"}
TIME_WIDTH = 10  # "  12345.6 " milliseconds since the first row
LANE_MIN = 8
LANE_MAX = 30
GAP_MS = 50.0  # a pause this long between two rows gets a row of its own, so it is not missed


def lane_width(chart: Chart, width: int | None) -> int:
    """Wide enough for most labels to sit on their arrows, narrow enough to fit `width`."""
    n = max(1, len(chart.columns))
    col = {name: i for i, name in enumerate(chart.columns)}
    need = max([LANE_MIN, *(len(c) + 2 for c in chart.columns)])
    for r in chart.rows:
        if isinstance(r, Arrow) and r.src != r.dst:
            span = abs(col[r.src] - col[r.dst])
            need = max(need, -(-(len(r.text) + 4) // span))
    need = min(need, LANE_MAX)
    if width is not None:
        need = min(need, max(LANE_MIN, (width - TIME_WIDTH - 12) // n))
    return need


class _Line:
    def __init__(self, size: int) -> None:
        self.chars = [" "] * size
        self.styles = [""] * size
        self.notes: list[tuple[str, str]] = []

    def put(self, x: int, text: str, style: str = "") -> None:
        grow = x + len(text) - len(self.chars)
        if grow > 0:  # a mark's text on the last lane runs on to the right
            self.chars += [" "] * grow
            self.styles += [""] * grow
        for i, ch in enumerate(text):
            if x + i >= 0:
                self.chars[x + i] = ch
                self.styles[x + i] = style

    def text(self) -> Text:
        out = Text()
        start = 0
        for i in range(1, len(self.chars) + 1):
            if i == len(self.chars) or self.styles[i] != self.styles[start]:
                out.append("".join(self.chars[start:i]), style=self.styles[start] or None)
                start = i
        for note, style in self.notes:
            out.append("  ")
            out.append(note, style=style or None)
        out.rstrip()
        return out


def render(chart: Chart, width: int | None = None, times: bool = True) -> list[Text]:
    """The chart as lines. `times`: a left column of milliseconds since the first row (the
    golden tests keep it: their timestamps are crafted); `width`: the terminal's, to fit."""
    lane = lane_width(chart, width)
    left = TIME_WIDTH if times else 2
    col = {name: i for i, name in enumerate(chart.columns)}
    color = {name: COLORS[i % len(COLORS)] for i, name in enumerate(chart.columns)}
    size = left + lane * len(chart.columns)

    def x_of(name: str) -> int:
        return left + col[name] * lane + lane // 2

    def base() -> _Line:
        line = _Line(size)
        for name in chart.columns:
            line.put(x_of(name), "│", "dim")
        return line

    header = _Line(size)
    if times:
        header.put(0, f"{'ms':>{TIME_WIDTH - 2}}", "dim")
    for name in chart.columns:
        shown = name[: lane - 1]
        header.put(x_of(name) - (len(shown) - 1) // 2, shown, f"bold {color[name]}")
    lines = [header.text()]
    if chart.dropped_rows and chart.dropped_where == "before":
        many = f"{chart.dropped_rows} " if chart.dropped_known else ""
        lines.append(Text(f"  … {many}earlier rows not shown", style="dim"))
    t0 = chart.t0
    previous = t0
    for r in chart.rows:
        if times and (r.ts - previous) * 1000 >= GAP_MS:
            gap = _Line(size)
            for name in chart.columns:
                gap.put(x_of(name), "┊", "dim")
            gap.notes.append((f"{(r.ts - previous) * 1000:.1f} ms later", "dim italic"))
            lines.append(gap.text())
        previous = r.ts
        line = base()
        if times:
            line.put(0, f"{(r.ts - t0) * 1000:>{TIME_WIDTH - 2}.1f}", "dim")
        if isinstance(r, Arrow):
            _arrow(line, r, x_of(r.src), x_of(r.dst), color[r.src], [x_of(c) for c in chart.columns])
        else:
            _mark(line, r, x_of(r.actor), lane, r.actor == chart.columns[-1], color[r.actor])
        lines.append(line.text())
    if chart.dropped_rows and chart.dropped_where == "after":
        lines.append(Text(f"  … {chart.dropped_rows} more rows not shown (narrow the selection or raise --limit)",
                          style="dim"))
    return lines


def _arrow(line: _Line, r: Arrow, x1: int, x2: int, color: str, lanes: list[int]) -> None:
    style = "red" if r.nack else color
    if x1 == x2:
        line.put(x1, "↻", style)
        line.notes.append((f"{r.src}: {r.text}", style))
        return
    step = 1 if x2 > x1 else -1
    lo, hi = min(x1, x2), max(x1, x2)
    for x in range(lo + 1, hi):
        line.put(x, "┼" if x in lanes else "─", style)
    line.put(x1, "?" if r.status == "orphan" else ("├" if step > 0 else "┤"), style)
    # A lost message's head is a cross; one in flight (its peer's trace ends before it) a "?".
    head = "✗" if r.status == "lost" else "?" if r.status == IN_FLIGHT else ("▶" if step > 0 else "◀")
    line.put(x2 - step, head, "bold red" if r.status == "lost" else style)
    label = r.text + r.lost_text
    if len(label) <= hi - lo - 4:  # a dash after the tail and one before the head
        line.put(lo + 2 if step > 0 else hi - 2 - len(label), label, style)
    elif len(label) <= hi - lo - 2:  # tight: tail, label, head
        line.put(lo + 1 if step > 0 else hi - len(label), label, style)
        line.put(x2 - step, head, "bold red" if r.status == "lost" else style)
    else:
        arrow_text = f"{r.src}→{r.dst}: {label}"
        line.notes.append((arrow_text, style))


def _mark(line: _Line, m: Mark, x: int, lane: int, last: bool, color: str) -> None:
    style = MARK_COLORS.get(m.style, "") or color
    line.put(x, m.glyph, style)
    if last or len(m.text) <= lane - 3:
        line.put(x + 2, m.text, style)
    else:
        line.notes.append((f"{m.actor}: {m.text}", style))


def plain(chart: Chart, width: int | None = None, times: bool = True) -> str:
    """The chart as plain text, one line per row (what golden files hold)."""
    return "\n".join(t.plain for t in render(chart, width, times)) + "\n"
