"""The chart as an SVG document (`paxos trace --svg FILE`): the same columns and rows as the
terminal chart, lifelines as vertical lines, messages as arrows with their labels above them,
marks as glyphs with their text beside them. Plain SVG 1.1, no scripts, no external fonts.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from runtime.tracechart.model import Arrow, Chart, Mark

PALETTE = ["#0b7285", "#862e9c", "#2b8a3e", "#e67700", "#1864ab", "#c92a2a", "#087f5b", "#a61e4d",
           "#5c940d", "#d9480f", "#364fc7", "#495057"]
MARK_FILL = {"decide": "#2b8a3e", "deliver": "#2f9e44", "crash": "#e03131", "start": "#f08c00"}
LANE_PX = 150
ROW_PX = 22
TOP_PX = 40
LEFT_PX = 70  # the time column
FONT = "font-family=\"monospace\" font-size=\"11\""


def render(chart: Chart, times: bool = True, title: str = "") -> str:
    n = len(chart.columns)
    col = {name: i for i, name in enumerate(chart.columns)}
    width = LEFT_PX + n * LANE_PX + 260  # room on the right for the last lane's marks
    height = TOP_PX + (len(chart.rows) + 2) * ROW_PX
    bottom = height - ROW_PX // 2

    def x_of(name: str) -> int:
        return LEFT_PX + col[name] * LANE_PX + LANE_PX // 2

    def color(name: str) -> str:
        return PALETTE[col[name] % len(PALETTE)]

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{escape(title or 'paxos trace')}</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for name in chart.columns:
        x = x_of(name)
        out.append(f'<text x="{x}" y="{TOP_PX - 16}" text-anchor="middle" {FONT} font-weight="bold" '
                   f'fill="{color(name)}">{escape(name)}</text>')
        out.append(f'<line x1="{x}" y1="{TOP_PX - 8}" x2="{x}" y2="{bottom}" stroke="#adb5bd" stroke-width="1"/>')
    if times:
        out.append(f'<text x="{LEFT_PX - 10}" y="{TOP_PX - 16}" text-anchor="end" {FONT} fill="#868e96">ms</text>')
    t0 = chart.t0
    for i, r in enumerate(chart.rows):
        y = TOP_PX + (i + 1) * ROW_PX
        if times:
            out.append(f'<text x="{LEFT_PX - 10}" y="{y + 4}" text-anchor="end" {FONT} fill="#868e96">'
                       f"{(r.ts - t0) * 1000:.1f}</text>")
        if isinstance(r, Arrow):
            out.append(_arrow(r, x_of(r.src), x_of(r.dst), y, color(r.src)))
        else:
            out.append(_mark(r, x_of(r.actor), y, color(r.actor)))
    if chart.dropped_rows:
        y = TOP_PX + (len(chart.rows) + 1) * ROW_PX
        many = f"{chart.dropped_rows} " if chart.dropped_known else ""
        out.append(f'<text x="{LEFT_PX}" y="{y + 4}" {FONT} fill="#868e96">… {many}rows '
                   f"{'before these' if chart.dropped_where == 'before' else 'after these'} not shown</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _arrow(r: Arrow, x1: int, x2: int, y: int, color: str) -> str:
    stroke = "#e03131" if r.nack else color
    label = r.text + r.lost_text
    tip = f"{r.src} → {r.dst}: {label}"
    if x1 == x2:
        return (f'<g><title>{escape(tip)}</title><path d="M {x1} {y - 6} h 24 v 12 h -24" fill="none" '
                f'stroke="{stroke}"/><text x="{x1 + 30}" y="{y + 4}" {FONT} '
                f'fill="{stroke}">{escape(label)}</text></g>')
    dash = ' stroke-dasharray="4 3"' if r.status != "ok" else ""
    d = 1 if x2 > x1 else -1
    if r.status == "lost":  # a cross where it should have arrived
        end = (f'<path d="M {x2 - 4} {y - 4} L {x2 + 4} {y + 4} M {x2 + 4} {y - 4} L {x2 - 4} {y + 4}" '
               f'stroke="#e03131" stroke-width="2"/>')
    else:  # heads drawn as polygons, not markers: every viewer draws them the same
        end = f'<polygon points="{x2},{y} {x2 - 8 * d},{y - 4} {x2 - 8 * d},{y + 4}" fill="{stroke}"/>'
    mid = (x1 + x2) // 2
    return (f'<g><title>{escape(tip)}</title><line x1="{x1}" y1="{y}" x2="{x2 - 6 * d}" y2="{y}" '
            f'stroke="{stroke}" stroke-width="1.5"{dash}/>{end}<text x="{mid}" y="{y - 4}" '
            f'text-anchor="middle" {FONT} fill="{stroke}">{escape(label)}</text></g>')


def _mark(m: Mark, x: int, y: int, color: str) -> str:
    fill = MARK_FILL.get(m.style, color)
    return (f'<g><title>{escape(f"{m.actor}: {m.text}")}</title><text x="{x}" y="{y + 4}" text-anchor="middle" '
            f'{FONT} fill={quoteattr(fill)}>{escape(m.glyph)}</text><text x="{x + 10}" y="{y + 4}" {FONT} '
            f'fill={quoteattr(fill)}>{escape(m.text)}</text></g>')
