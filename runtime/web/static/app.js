// The live page: renders the view that /events pushes (runtime/web/view.py) and sends the
// buttons' and the put/get box's requests. The token comes with the page (it is in its URL);
// every request carries it: as a bearer header, or in the URL for the event stream, which
// cannot set headers.

// A module's URL carries the token as the page's do (the server writes it in for __TOKEN__), and
// must be the very URL the page loaded: another one would be another instance of the module.
import * as faultctl from "./faultctl.js?token=__TOKEN__";
import * as chart from "./chart.js?token=__TOKEN__"; // the sequence chart, explain on click, the plot
import * as stepctl from "./stepctl.js?token=__TOKEN__"; // step mode by click, the scenario runner

export const token = document.querySelector('meta[name="paxos-token"]').content;
const ROLES = ["proposer", "acceptor", "learner"];
export const cards = new Map(); // actor name -> its card element

export function api(path, body) {
  return fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  }).then(async (r) => ({ status: r.status, data: await r.json().catch(() => ({ error: r.statusText })) }));
}

export function text(el, selector, value) {
  const node = el.querySelector(selector);
  const shown = value === null || value === undefined || value === "" ? "-" : String(value);
  if (node.textContent !== shown) node.textContent = shown;
}

function cardFor(c) {
  let el = cards.get(c.name);
  if (!el) {
    el = document.getElementById("card-template").content.firstElementChild.cloneNode(true);
    el.id = `card-${c.name}`;
    el.dataset.name = c.name;
    el.querySelector(".name").textContent = c.name;
    for (const b of el.querySelectorAll("button[data-action]")) {
      b.addEventListener("click", () => act(c.name, b.dataset.action, b));
    }
    cards.set(c.name, el);
  }
  const row = document.querySelector(`#row-${c.role} .cards`);
  if (el.parentElement !== row) row.appendChild(el);
  return el;
}

function renderCard(c) {
  const el = cardFor(c);
  el.dataset.state = c.state;
  el.dataset.leader = String(c.leader);
  el.dataset.pid = c.pid ?? "";
  let state = c.state;
  if (c.supervisor_state !== "running" && c.supervisor_state !== "paused") state += ` (${c.supervisor_state})`;
  if (c.detail) state += `: ${c.detail}`;
  text(el, ".state", state);
  text(el, ".pid", c.pid);
  text(el, ".uptime", c.state === "up" ? c.uptime : "-");
  text(el, ".restarts", c.restarts);
  text(el, ".ballot-label", c.ballot_label || "ballot");
  text(el, ".ballot", c.ballot);
  for (const node of el.querySelectorAll(".ballot-label, .ballot")) node.hidden = !c.ballot_label; // a learner has none
  text(el, ".watermark-label", c.watermark_label);
  text(el, ".watermark", c.watermark);
  text(el, ".lag", c.lag);
  const running = c.state !== "down";
  el.querySelector('[data-action="kill"]').disabled = !running;
  el.querySelector('[data-action="pause"]').disabled = c.state !== "up";
  el.querySelector('[data-action="resume"]').disabled = c.state !== "paused";
  faultctl.renderCard(el, c);
}

const NS = "http://www.w3.org/2000/svg";
let links = []; // the newest view's frames a second per link
let cuts = []; // the newest view's cut links, [sender, destination]

export function svgEl(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, typeof v === "number" ? v.toFixed(1) : v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// put(key, tag, attrs, label, made): the element `key` of `els` in `svg`, made once (with a
// <title> for a tooltip unless it is a text; `made` wires it up) and kept across views, so a click
// aimed at it is not lost to a redraw; its attributes and label set only where they changed, and
// `key` noted in `seen` (the caller removes the elements it did not see this time).
export function svgPut(svg, els, seen) {
  return (key, tag, attrs, label, made) => {
    let el = els.get(key);
    if (!el) {
      el = svgEl(tag, {});
      if (tag !== "text") el.appendChild(svgEl("title", {}));
      if (made) made(el);
      svg.appendChild(el);
      els.set(key, el);
    }
    for (const [k, v] of Object.entries(attrs)) {
      const value = typeof v === "number" ? v.toFixed(1) : v;
      if (el.getAttribute(k) !== value) el.setAttribute(k, value);
    }
    const target = tag === "text" ? el : el.firstChild;
    if (target.textContent !== label) target.textContent = label;
    seen.add(key);
  };
}

export function edge(box, r, towards) {
  // Where the line from the card's centre towards `towards` leaves the card.
  const cx = r.left + r.width / 2 - box.left;
  const cy = r.top + r.height / 2 - box.top;
  const dx = towards[0] - cx;
  const dy = towards[1] - cy;
  const t = Math.min(Math.abs(dx) > 0 ? r.width / 2 / Math.abs(dx) : Infinity,
                     Math.abs(dy) > 0 ? r.height / 2 / Math.abs(dy) : Infinity);
  return [cx + dx * t, cy + dy * t];
}

const wireEls = new Map(); // key -> SVG element: kept across redraws, so a click (or a test) holds on to it

function ensureDefs(svg) {
  if (svg.querySelector("defs")) return;
  const defs = svgEl("defs", {});
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
                                   markerHeight: "7", orient: "auto-start-reverse" });
  marker.appendChild(svgEl("path", { d: "M0,0 L10,5 L0,10 z" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
}

function drawWires() {
  // Arrows for the frames a second on each link; faint lines between neighbouring rows (who
  // talks to whom in the seeds' diagrams) while no counts have come yet; cut links dashed red.
  const svg = document.getElementById("wires");
  ensureDefs(svg);
  const box = svg.getBoundingClientRect();
  const rect = (name) => cards.get(name)?.getBoundingClientRect();
  const centre = (r) => [r.left + r.width / 2 - box.left, r.top + r.height / 2 - box.top];
  const seen = new Set();
  const put = svgPut(svg, wireEls, seen);
  const shown = links.filter((l) => l.per_s > 0 && rect(l.from) && rect(l.to));
  if (!shown.length) {
    for (let i = 0; i + 1 < ROLES.length; i++) {
      for (const a of document.querySelectorAll(`#row-${ROLES[i]} .card`)) {
        for (const b of document.querySelectorAll(`#row-${ROLES[i + 1]} .card`)) {
          const ra = a.getBoundingClientRect();
          const rb = b.getBoundingClientRect();
          const [x1, y1] = edge(box, ra, centre(rb));
          const [x2, y2] = edge(box, rb, centre(ra));
          put(`wire ${a.dataset.name} ${b.dataset.name}`, "line", { class: "wire", x1, y1, x2, y2 }, "");
        }
      }
    }
  }
  for (const [a, b] of cuts) {
    const [p, q] = [a, b].sort();
    if (seen.has(`cut ${p} ${q}`) || !rect(p) || !rect(q)) continue;
    const [x1, y1] = edge(box, rect(p), centre(rect(q)));
    const [x2, y2] = edge(box, rect(q), centre(rect(p)));
    put(`cut ${p} ${q}`, "line", { class: "cut", x1, y1, x2, y2, "data-from": p, "data-to": q }, "");
    // A wide invisible twin takes the click: a thin dashed line is hard to hit (its gaps are not it).
    put(`cut-hit ${p} ${q}`, "line", { class: "cut-hit", x1, y1, x2, y2, "data-from": p, "data-to": q },
        `${p} ↔ ${q} cut: click to heal`, (el) => el.addEventListener("click", () => link(p, q, "heal")));
    put(`cut-label ${p} ${q}`, "text", { class: "rate cut-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 }, "cut");
  }
  for (const l of shown) {
    const ra = rect(l.from);
    const rb = rect(l.to);
    const [ax, ay] = centre(ra);
    const [bx, by] = centre(rb);
    // Each direction bends to its own side, so a request and its reply are two arrows.
    const len = Math.hypot(bx - ax, by - ay) || 1;
    // A link within one row arcs clear of the cards: above them one way, below the other.
    const bend = Math.abs(ay - by) < 10 ? ra.height / 2 + 30 : 14;
    const cx = (ax + bx) / 2 + ((by - ay) / len) * bend;
    const cy = (ay + by) / 2 - ((bx - ax) / len) * bend;
    const [x1, y1] = edge(box, ra, [cx, cy]);
    const [x2, y2] = edge(box, rb, [cx, cy]);
    const d = `M${x1.toFixed(1)},${y1.toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`;
    put(`link ${l.from} ${l.to}`, "path", { class: "link", d, "stroke-width": 1 + Math.log10(1 + l.per_s),
                                           "marker-end": "url(#arrow)", "data-from": l.from, "data-to": l.to,
                                           "data-per-s": String(l.per_s) },
        `${l.from} → ${l.to}: ${l.per_s} frames/s`);
    put(`rate ${l.from} ${l.to}`, "text", { class: "rate", x: 0.25 * x1 + 0.5 * cx + 0.25 * x2,
                                            y: 0.25 * y1 + 0.5 * cy + 0.25 * y2 }, `${Math.round(l.per_s)}/s`);
  }
  for (const [key, el] of wireEls) if (!seen.has(key)) { el.remove(); wireEls.delete(key); }
}

function render(v) {
  text(document, "#config", v.config);
  text(document, "#leader", v.leader ? `${v.leader} (ballot ${v.leader_ballot})` : "none serving");
  text(document, "#chosen", v.chosen);
  const g = document.getElementById("gauge");
  g.dataset.level = v.gauge.level;
  text(document, "#gauge", `fault tolerance: ${v.gauge.text}`);
  const err = document.getElementById("error");
  err.hidden = !v.error;
  err.textContent = v.error || "";
  document.body.dataset.running = String(v.running);
  chart.chartView(v);
  const names = new Set();
  for (const role of ROLES) for (const c of v.rows[role] || []) { renderCard(c); names.add(c.name); }
  for (const [name, el] of cards) if (!names.has(name)) { el.remove(); cards.delete(name); }
  links = v.links || [];
  cuts = v.faults?.cut || [];
  const faults = document.getElementById("faults");
  faults.hidden = !v.faults?.enabled;
  if (v.faults?.enabled) fillSelects([...cards.keys()]);
  faultctl.render(v);
  stepctl.onView(v);
  // After the browser has laid the cards out (a card's height changes with its text).
  requestAnimationFrame(() => { drawWires(); faultctl.drawRules(); });
}

export function logAction(line, ok) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${line}`;
  if (!ok) li.className = "failed";
  const log = document.getElementById("action-log");
  log.prepend(li);
  while (log.children.length > 8) log.lastElementChild.remove();
}

async function act(name, action, button) {
  button.disabled = true;
  try {
    const { status, data } = await api(`/api/actors/${encodeURIComponent(name)}/${action}`);
    logAction(`${action} ${name}: ${data.ok ? "ok" : data.error || status}`, data.ok);
  } catch (e) {
    logAction(`${action} ${name}: ${e}`, false);
  }
}

let selectable = "";
function fillSelects(names) {
  if (names.join(",") === selectable) return; // keep what the user picked
  selectable = names.join(",");
  for (const [id, pick] of [["link-a", 0], ["link-b", 1]]) {
    const sel = document.getElementById(id);
    sel.replaceChildren(...names.map((n) => new Option(n, n)));
    sel.selectedIndex = Math.min(pick, names.length - 1);
  }
}

export async function link(a, b, action) {
  try {
    const { status, data } = await api(`/api/links/${encodeURIComponent(a)}/${encodeURIComponent(b)}/${action}`);
    logAction(`${action} ${a} ↔ ${b}: ${data.ok ? "ok" : data.error || status}`, data.ok);
  } catch (e) {
    logAction(`${action} ${a} ↔ ${b}: ${e}`, false);
  }
}

document.getElementById("link-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const action = e.submitter?.value === "heal" ? "heal" : "cut";
  link(document.getElementById("link-a").value, document.getElementById("link-b").value, action);
});

function connect() {
  const link = document.getElementById("link");
  const events = new EventSource(`/events?token=${encodeURIComponent(token)}`);
  events.onopen = () => { link.dataset.state = "live"; link.textContent = "live"; };
  events.onmessage = (e) => render(JSON.parse(e.data));
  // The browser reconnects by itself (the server may be restarting with the cluster).
  events.onerror = () => { link.dataset.state = "lost"; link.textContent = "reconnecting"; };
}

document.getElementById("kv-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const op = e.submitter?.value === "get" ? "get" : "put";
  const key = document.getElementById("kv-key").value;
  const value = document.getElementById("kv-value").value;
  const out = document.getElementById("kv-result");
  out.dataset.ok = "";
  out.textContent = `${op} ${key}...`;
  const { status, data } = await api("/api/kv", op === "put" ? { op, key, value } : { op, key });
  out.dataset.ok = String(Boolean(data.ok));
  if (!data.ok) out.textContent = `${op} ${key} failed (${status}): ${data.error}`;
  else if (op === "put") out.textContent = `put ${key}: ok`;
  else out.textContent = data.found ? `${key} = ${data.value}` : `${key}: (not found)`;
});

window.addEventListener("resize", () => { drawWires(); faultctl.drawRules(); });
chart.initChart();
stepctl.init();
connect();
