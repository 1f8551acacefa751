// The sequence chart, explain on click, and the plot (runtime/web/chart.py's routes).
//
// The chart: GET /api/chart every CHART_REFRESH_MS at most (one request in flight; never per
// command), drawn in SVG as `paxos trace` draws it (one column per actor, one row per message or
// mark, newest at the bottom). It follows the newest rows while the view is scrolled to the
// bottom; scrolled up, it holds still until scrolled back. Pausable. A click on a row about a slot
// (or the slot box) shows GET /api/explain/<slot>: `paxos explain SLOT --json`. The plot: GET
// /api/plot every PLOT_REFRESH_MS, commands a second and the slots' latency from the traces, in SVG.
// Neither is asked for while off screen (scrolled away) or while the tab is hidden.
// Every text from the server goes in as textContent (a label is a trace's, a key a client's).

// app.js's URL as the page loaded it (the server writes the token in): the one instance of it.
import { svgEl, token } from "./app.js?token=__TOKEN__";

const CHART_REFRESH_MS = 1000; // the server reads the traces at most once a second (chart.py)
const PLOT_REFRESH_MS = 2000;
const ROWS = 150;
const ROW_H = 20;
const GAP_MS = 50; // a pause this long between two rows is marked (runtime/tracechart/text.py's GAP_MS)
const LANE_MIN_W = 90;
const TIME_W = 70;
const HEAD_H = 22;
const PLOT_W = 300;
const PLOT_H = 90;
const PLOT_SPAN_MIN_S = 30;
const PLOT_PAD = { left: 38, right: 6, top: 8, bottom: 16 };

let paused = false;
let chartBusy = false;
let lastChart = "";
let running = true;
let hovering = false; // the pointer is on the chart

async function getJSON(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  return { status: r.status, data: await r.json().catch(() => ({ error: r.statusText })) };
}

function el(tag, attrs = {}, textContent) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (textContent !== undefined) node.textContent = textContent;
  return node;
}

// --- the chart ------------------------------------------------------------------------------

function slotText(slots) {
  if (!slots) return "";
  return slots[0] === slots[1] ? String(slots[0]) : `${slots[0]}..${slots[1]}`;
}

function drawChart(data) {
  const note = document.getElementById("chart-note");
  const head = document.getElementById("chart-head");
  const svg = document.getElementById("chart-svg");
  const rows = data.rows || [];
  const cols = data.columns || [];
  const since = data.t0 ? ` from ${new Date(data.t0 * 1000).toLocaleTimeString()} (ms since then on the left)` : "";
  let said = data.message || `${rows.length} rows${since}${data.earlier ? ", the latest: earlier ones not shown" : ""}` +
    (data.read_ms !== undefined ? `; read in ${data.read_ms} ms` : "");
  if (data.warnings?.length) said += `; ${data.warnings.join("; ")}`;
  note.textContent = said;
  note.dataset.tracing = String(Boolean(data.tracing));
  // The lanes share the frame's width (no narrower than LANE_MIN_W: then it scrolls sideways).
  const frame = document.getElementById("chart-frame").clientWidth - 16;
  const lane = Math.max(LANE_MIN_W, Math.floor((frame - TIME_W) / Math.max(1, cols.length)));
  const width = TIME_W + Math.max(1, cols.length) * lane;
  const height = rows.length * ROW_H + 6;
  const x = new Map(cols.map((c, i) => [c, TIME_W + i * lane + lane / 2]));
  for (const s of [head, svg]) s.setAttribute("width", String(width));
  head.setAttribute("height", String(HEAD_H));
  svg.setAttribute("height", String(height));
  head.replaceChildren(svgEl("text", { class: "col-time", x: TIME_W - 8, y: 15 }, "ms"),
                       ...cols.map((c) => {
                         // A client session id is long: its tail tells the sessions apart.
                         const t = svgEl("text", { class: "col-name", x: x.get(c), y: 15 },
                                         c.length > 14 ? `…${c.slice(-9)}` : c);
                         t.appendChild(svgEl("title", {}, c));
                         return t;
                       }));
  const defs = svgEl("defs", {});
  const marker = svgEl("marker", { id: "chart-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
                                   markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" });
  marker.appendChild(svgEl("path", { d: "M0,0 L10,5 L0,10 z" }));
  defs.appendChild(marker);
  const parts = [defs];
  for (const c of cols) parts.push(svgEl("line", { class: "lifeline", x1: x.get(c), y1: 0, x2: x.get(c), y2: height }));
  rows.forEach((r, i) => {
    const y = i * ROW_H + ROW_H / 2 + 3;
    const gapMs = i > 0 ? r.t_ms - rows[i - 1].t_ms : 0;
    if (gapMs >= GAP_MS) { // a pause, as `paxos trace` marks it: a dashed line and how long
      parts.push(svgEl("line", { class: "gap", x1: TIME_W, y1: i * ROW_H, x2: width, y2: i * ROW_H }));
      parts.push(svgEl("text", { class: "gap-text", x: width - 4, y: i * ROW_H + 9 }, `${gapMs.toFixed(1)} ms later`));
    }
    const g = svgEl("g", { class: `chart-row ${r.kind}`, "data-kind": r.kind });
    if (r.slots) {
      g.dataset.slot = String(r.slots[0]);
      g.dataset.slots = slotText(r.slots);
      g.classList.add("has-slot");
      g.addEventListener("click", () => explain(r.slots[0]));
    }
    g.appendChild(svgEl("rect", { class: "row-hit", x: 0, y: i * ROW_H, width, height: ROW_H }));
    g.appendChild(svgEl("text", { class: "t", x: TIME_W - 8, y: y + 4 }, r.t_ms.toFixed(1)));
    if (r.kind === "arrow") {
      const x1 = x.get(r.from);
      const x2 = x.get(r.to);
      if (x1 === undefined || x2 === undefined) return;
      g.dataset.label = r.label;
      g.dataset.from = r.from;
      g.dataset.to = r.to;
      for (const flag of ["lost", "dropped", "orphan", "inflight", "nack"]) if (r[flag]) g.classList.add(flag);
      const end = x2 + (x2 > x1 ? -3 : 3);
      const line = svgEl("line", { class: "msg", x1, y1: y, x2: end, y2: y });
      if (!r.lost) line.setAttribute("marker-end", "url(#chart-arrow)");
      g.appendChild(line);
      if (r.lost) g.appendChild(svgEl("text", { class: "lost-x", x: end, y: y + 4 }, "✗"));
      g.appendChild(svgEl("text", { class: "label", x: (x1 + x2) / 2, y: y - 3 }, r.label));
      g.appendChild(svgEl("title", {}, `${r.from} → ${r.to}: ${r.label}${r.slots ? " (click: explain slot " +
        r.slots[0] + ")" : ""}`));
    } else {
      const cx = x.get(r.actor);
      if (cx === undefined) return;
      g.dataset.style = r.style;
      g.dataset.text = r.text;
      g.classList.add(`mark-${r.style}`);
      g.appendChild(svgEl("text", { class: "glyph", x: cx, y: y + 4 }, r.glyph));
      // Its text to the right of the lifeline; on the last lanes, to the left (no clipping).
      const left = cx > width - 2.5 * lane;
      g.appendChild(svgEl("text", { class: `mark-text${left ? " left" : ""}`, x: left ? cx - 9 : cx + 9, y: y + 4 },
                          r.text));
      g.appendChild(svgEl("title", {}, `${r.actor}: ${r.text}${r.slots ? " (click: explain slot " + r.slots[0] + ")" : ""}`));
    }
    parts.push(g);
  });
  svg.replaceChildren(...parts);
}

function atBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 8;
}

async function refreshChart() {
  if (chartBusy) return;
  chartBusy = true;
  const box = document.getElementById("chart-scroll");
  const follow = atBottom(box);
  const section = document.getElementById("chart");
  section.dataset.follow = String(follow);
  // Scrolled up, or the pointer on the chart (aiming at a row): hold still.
  if ((!follow || hovering) && lastChart) { chartBusy = false; return; }
  try {
    const keep = document.getElementById("chart-keepalive").checked ? 1 : 0;
    const r = await fetch(`/api/chart?rows=${ROWS}&keepalive=${keep}`, { headers: { Authorization: `Bearer ${token}` } });
    const body = await r.text();
    if ((!atBottom(box) || hovering) && lastChart) {
      // scrolled up while the request was out: hold still (a redraw would move the row aimed at)
    } else if (r.status !== 200) {
      document.getElementById("chart-note").textContent = `the chart: ${r.status} ${body.slice(0, 200)}`;
    } else if (body !== lastChart) {
      lastChart = body;
      const data = JSON.parse(body);
      readMs = Math.min(data.read_ms || 0, 500);
      drawChart(data);
      if (follow) box.scrollTop = box.scrollHeight;
    }
  } catch (e) {
    document.getElementById("chart-note").textContent = `the chart: ${e}`;
  } finally {
    chartBusy = false;
  }
}

let readMs = 0; // what the server took to read the latest chart: a slow read is asked for less often

// Asked for only while on screen: a tab that shows only the cards costs the server no reads.
const onScreen = { chart: true, plots: true };

function chartLoop() {
  const go = !paused && !document.hidden && onScreen.chart ? refreshChart() : Promise.resolve();
  go.finally(() => setTimeout(chartLoop, Math.max(CHART_REFRESH_MS, 10 * readMs)));
}

// --- explain --------------------------------------------------------------------------------

function valueText(v) {
  if (!v) return "-";
  let out = `${v.kind}@${v.epoch}`;
  if (v.commands?.length) {
    const cmds = v.commands.slice(0, 4).map((c) => `${c.client}:${c.seq} ${c.op} ${c.key}`);
    out += `: ${cmds.join(", ")}${v.commands.length > 4 ? `, +${v.commands.length - 4}` : ""}`;
  } else if (v.members) {
    out += `: ${v.members}`;
  }
  return out;
}

function table(headers, rows) {
  const t = el("table");
  const hr = el("tr");
  for (const h of headers) hr.appendChild(el("th", {}, h));
  t.appendChild(hr);
  for (const r of rows) {
    const tr = el("tr");
    for (const cell of r.cells) tr.appendChild(el("td", {}, cell));
    if (r.name) tr.dataset.name = r.name;
    t.appendChild(tr);
  }
  return t;
}

function showExplain(slot, status, e) {
  const out = document.getElementById("explain-out");
  out.hidden = false;
  out.dataset.slot = String(slot);
  if (status !== 200 || e.error) {
    out.dataset.verdict = "error";
    out.replaceChildren(el("p", { class: "explain-error" }, `slot ${slot}: ${e.error || status}`));
    return;
  }
  out.dataset.verdict = e.verdict;
  const parts = [el("h3", {}, `slot ${e.slot}: ${e.verdict.replace("_", " ")}`),
                 el("p", { class: "summary" }, e.summary)];
  for (const v of e.violations || []) parts.push(el("p", { class: "violation" }, `violation: ${v}`));
  for (const [i, c] of (e.chosen || []).entries()) { // more than one: the violation above
    const p = el("p", { class: i ? "chosen also" : "chosen" }, `${i ? "also " : ""}chosen under ballot ${c.ballot} by ` +
      `${c.voters.join(", ")} (${c.quorum} needed${c.fast ? ", a fast quorum" : ""}): ${valueText(c.value)}`);
    p.dataset.ballot = c.ballot;
    parts.push(p);
  }
  if (e.acceptors?.length) {
    parts.push(el("h4", {}, "acceptors"));
    parts.push(table(["", "promised", "accepted (ballot: value)", ""], e.acceptors.map((a) => ({
      name: a.name,
      cells: [a.name, a.promised || "nothing",
              a.votes.length ? a.votes.map((v) => `${v.ballot}: ${valueText(v.value)}${v.counted ? "" : " (not counted)"}`)
                .join("; ") : a.compacted_through >= e.slot ? `compacted through ${a.compacted_through}` : "no vote",
              [a.status !== "ok" ? a.status : "", a.in_membership ? "" : "not a member here",
               a.rebuilding ? "rebuilding" : ""].filter(Boolean).join(", ")],
    }))));
  }
  if (e.learners?.length) {
    parts.push(el("h4", {}, "learners"));
    parts.push(table(["", "delivered", "outcome"], e.learners.map((l) => ({
      name: l.name, cells: [l.name, l.delivered, l.outcome],
    }))));
  }
  for (const n of e.notes || []) parts.push(el("p", { class: "note" }, `note: ${n}`));
  for (const f of e.files || []) parts.push(el("p", { class: "note" }, `file ${f.name}: ${f.status} ${f.reason || ""}`));
  out.replaceChildren(...parts);
}

async function explain(slot) {
  document.getElementById("explain-slot").value = String(slot);
  const out = document.getElementById("explain-out");
  out.hidden = false;
  out.dataset.verdict = "";
  out.replaceChildren(el("p", {}, `explaining slot ${slot}...`));
  try {
    const { status, data } = await getJSON(`/api/explain/${encodeURIComponent(String(slot))}`);
    showExplain(slot, status, data);
  } catch (e) {
    showExplain(slot, 0, { error: String(e) });
  }
}

// --- the plot -------------------------------------------------------------------------------

function drawPlot(id, points, now, windowS, value, unit, source) {
  const svg = document.getElementById(id);
  svg.setAttribute("viewBox", `0 0 ${PLOT_W} ${PLOT_H}`);
  const good = points.filter((p) => value(p) !== null && value(p) !== undefined);
  svg.dataset.points = String(good.length);
  const max = Math.max(1, ...good.map(value)) * 1.1;
  // The span drawn: since the first point (at least PLOT_SPAN_MIN_S), up to the ring's window.
  const first = points.length ? points[0].t : now;
  const spanS = Math.min(windowS, Math.max(PLOT_SPAN_MIN_S, now - first));
  const x = (t) => PLOT_PAD.left + (PLOT_W - PLOT_PAD.left - PLOT_PAD.right) * (1 - (now - t) / spanS);
  const y = (v) => PLOT_H - PLOT_PAD.bottom - (PLOT_H - PLOT_PAD.top - PLOT_PAD.bottom) * (v / max);
  const parts = [
    svgEl("line", { class: "axis", x1: PLOT_PAD.left, y1: y(0), x2: PLOT_W - PLOT_PAD.right, y2: y(0) }),
    svgEl("line", { class: "axis", x1: PLOT_PAD.left, y1: PLOT_PAD.top, x2: PLOT_PAD.left, y2: y(0) }),
    svgEl("text", { class: "tick", x: PLOT_PAD.left - 3, y: PLOT_PAD.top + 6 }, max >= 10 ? max.toFixed(0) : max.toFixed(1)),
    svgEl("text", { class: "tick", x: PLOT_PAD.left - 3, y: y(0) }, "0"),
    svgEl("text", { class: "tick start", x: PLOT_PAD.left, y: PLOT_H - 3 },
          spanS >= 120 ? `-${Math.round(spanS / 60)} min` : `-${Math.round(spanS)} s`),
    svgEl("text", { class: "tick end", x: PLOT_W - PLOT_PAD.right, y: PLOT_H - 3 }, "now"),
    svgEl("title", {}, source),
  ];
  // A line through consecutive points; a failed probe or an unwatched gap breaks it.
  let run = [];
  const flush = () => {
    if (run.length > 1) parts.push(svgEl("polyline", { class: "series", points: run.join(" ") }));
    run = [];
  };
  let prevT = null;
  for (const p of points) {
    const v = value(p);
    if (v === null || v === undefined) {
      flush();
      parts.push(svgEl("text", { class: "failed", x: x(p.t), y: y(0) }, "×"));
      prevT = null;
      continue;
    }
    if (prevT !== null && p.t - prevT > 10) flush(); // nobody watched in between
    run.push(`${x(p.t).toFixed(1)},${y(v).toFixed(1)}`);
    parts.push(svgEl("circle", { class: "dot", cx: x(p.t), cy: y(v), r: 1.6 }));
    prevT = p.t;
  }
  flush();
  svg.replaceChildren(...parts);
  const last = good.length ? value(good[good.length - 1]) : null;
  return last === null ? "-" : `${last} ${unit}`;
}

async function refreshPlot() {
  try {
    const { status, data } = await getJSON("/api/plot");
    if (status !== 200) return;
    const rate = drawPlot("plot-rate", data.rate, data.now, data.window_s, (p) => p.commands_per_s, "commands/s",
                          data.rate_source);
    document.getElementById("plot-rate-now").textContent = rate;
    drawPlot("plot-latency", data.latency, data.now, data.window_s, (p) => p.ms, "ms", data.latency_source);
    document.getElementById("plot-latency-now").textContent =
      data.latency_p50_ms === null ? "-" : `p50 ${data.latency_p50_ms} ms`;
    document.getElementById("plot-rate-source").textContent = data.rate_source;
    document.getElementById("plot-latency-source").textContent = `latency: ${data.latency_source}`;
  } catch (e) {
    // the server may be restarting with the cluster: the next refresh tries again
  }
}

function plotLoop() {
  const go = !document.hidden && onScreen.plots ? refreshPlot() : Promise.resolve();
  go.finally(() => setTimeout(plotLoop, PLOT_REFRESH_MS));
}

// --- wiring ---------------------------------------------------------------------------------

// Called by app.js once it has run (not at this module's load: app.js imports it first).
export function initChart() {
  const pause = document.getElementById("chart-pause");
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "resume" : "pause";
    document.getElementById("chart").dataset.paused = String(paused);
  });
  document.getElementById("chart-keepalive").addEventListener("change", () => { lastChart = ""; });
  document.getElementById("chart-scroll").addEventListener("scroll", () => {
    const box = document.getElementById("chart-scroll");
    document.getElementById("chart").dataset.follow = String(atBottom(box));
  });
  const scroll = document.getElementById("chart-scroll");
  for (const [type, on] of [["mouseenter", true], ["mouseleave", false]]) {
    scroll.addEventListener(type, () => {
      hovering = on;
      document.getElementById("chart").dataset.hover = String(on);
    });
  }
  document.getElementById("explain-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const slot = document.getElementById("explain-slot").value.trim();
    if (slot) explain(slot);
  });
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) onScreen[e.target.id === "plots" ? "plots" : "chart"] = e.isIntersecting;
  });
  seen.observe(document.getElementById("chart-frame"));
  seen.observe(document.getElementById("plots"));
  chartLoop();
  plotLoop();
}

// Each view the event stream brings (runtime/web/view.py): only whether the cluster runs.
export function chartView(v) {
  if (v.running === running) return;
  running = v.running;
  document.getElementById("chart").dataset.running = String(running);
}
