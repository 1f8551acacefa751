// The page's fault controls beyond kill/pause/cut (runtime/web/faultctl.py): per card, a crash
// point to arm (`paxos kill NAME --at POINT`) and what the card says about it, its member state
// as a badge, its last snapshot and compaction point; a delay and a drop rate on a link (test
// mode), drawn as a dotted line with its rule, which a click clears.
//
// Only functions at the top level: app.js imports this module and this module imports app.js, so
// nothing here may use app.js's bindings before app.js calls in.

// The same URL as the page's own <script> (index.html): the server writes the token in.
import { api, cards, edge, link, logAction, svgPut, text } from "./app.js?token=__TOKEN__";

let rules = []; // the newest view's delayed and lossy links, [{from, to, label, ...}]
const ruleEls = new Map(); // key -> SVG element, kept across redraws (a click or a test holds on to it)
let formReady = false;

export function renderCard(el, c) {
  if (!el.dataset.faultctl) {
    el.dataset.faultctl = "1";
    const sel = el.querySelector(".crash-point");
    sel.replaceChildren(...(c.crash_points || []).map((p) => new Option(p, p)));
    sel.title = sel.value; // a card is narrow: the whole name on hover
    sel.addEventListener("change", () => { sel.title = sel.value; });
    const arm = el.querySelector(".crash-arm");
    arm.addEventListener("click", () => crash(c.name, sel.value, arm));
  }
  const badge = el.querySelector(".member-badge");
  if (badge.dataset.member !== (c.member_badge || "")) {
    badge.dataset.member = c.member_badge || "";
    badge.textContent = c.member_badge || "";
  }
  el.dataset.member = c.member_badge || "";
  const storing = c.role !== "proposer";
  for (const node of el.querySelectorAll(".snapshot-label, .snapshot, .compacted-label, .compacted")) {
    node.hidden = !storing;
  }
  text(el, ".snapshot", c.snapshot_slot);
  text(el, ".compacted", c.compacted_slot);
  el.dataset.snapshot = c.snapshot_slot ?? "";
  el.dataset.compacted = c.compacted_slot ?? "";
  const note = el.querySelector(".crash-note");
  const kind = c.crash_armed ? "armed" : c.crash_point ? "fired" : "";
  if (note.dataset.crash !== kind) note.dataset.crash = kind;
  if (note.textContent !== (c.crash_label || "")) note.textContent = c.crash_label || "";
  el.dataset.crashArmed = c.crash_armed || "";
  el.dataset.crashPoint = c.crash_point || "";
  el.querySelector(".crash-arm").disabled = c.supervisor_state !== "running" || Boolean(c.crash_armed);
}

export function render(v) {
  rules = v.link_rules || [];
  const section = document.getElementById("linkrules");
  section.hidden = !v.faults?.enabled;
  if (!formReady) {
    formReady = true;
    document.getElementById("rule-form").addEventListener("submit", (e) => {
      e.preventDefault();
      setRule(document.getElementById("link-a").value, document.getElementById("link-b").value,
              Number(document.getElementById("rule-delay").value), Number(document.getElementById("rule-drop").value));
    });
  }
}

async function crash(name, point, button) {
  button.disabled = true;
  try {
    const { status, data } = await api(`/api/actors/${encodeURIComponent(name)}/crash`, { point });
    logAction(`crash ${name} at ${point}: ${data.ok ? "armed" : data.error || status}`, data.ok);
  } catch (e) {
    logAction(`crash ${name} at ${point}: ${e}`, false);
  }
}

async function setRule(a, b, delayMs, drop) {
  const what = `${a} ↔ ${b} delay ${delayMs} ms, drop ${drop}`;
  try {
    const { status, data } = await api(`/api/links/${encodeURIComponent(a)}/${encodeURIComponent(b)}/set`,
                                       { delay_ms: delayMs, drop });
    logAction(`${what}: ${data.ok ? data.label : data.error || status}`, data.ok);
  } catch (e) {
    logAction(`${what}: ${e}`, false);
  }
}

export function drawRules() {
  // One dotted line per delayed or lossy pair of actors, with its rule (both ways when the two
  // directions agree, as the page sets them; else each direction's).
  const svg = document.getElementById("wires");
  const box = svg.getBoundingClientRect();
  const rect = (name) => cards.get(name)?.getBoundingClientRect();
  const centre = (r) => [r.left + r.width / 2 - box.left, r.top + r.height / 2 - box.top];
  const pairs = new Map();
  for (const r of rules) {
    const [p, q] = [r.from, r.to].sort();
    const key = `${p} ${q}`;
    if (!pairs.has(key)) pairs.set(key, { p, q, labels: new Map() });
    pairs.get(key).labels.set(`${r.from}→${r.to}`, r.label);
  }
  const seen = new Set();
  const put = svgPut(svg, ruleEls, seen);
  for (const { p, q, labels } of pairs.values()) {
    if (!rect(p) || !rect(q)) continue;
    const distinct = [...new Set(labels.values())];
    const label = distinct.length === 1 && labels.size === 2 ? distinct[0]
      : [...labels].map(([dir, l]) => `${dir}: ${l}`).join("; ");
    const [x1, y1] = edge(box, rect(p), centre(rect(q)));
    const [x2, y2] = edge(box, rect(q), centre(rect(p)));
    const ends = { x1, y1, x2, y2, "data-from": p, "data-to": q, "data-label": label };
    put(`lossy ${p} ${q}`, "line", { class: "lossy", ...ends }, "");
    put(`lossy-hit ${p} ${q}`, "line", { class: "lossy-hit", ...ends }, `${p} ↔ ${q}: ${label}; click to heal`,
        (el) => el.addEventListener("click", () => link(el.getAttribute("data-from"), el.getAttribute("data-to"), "heal")));
    put(`lossy-label ${p} ${q}`, "text", { class: "rate lossy-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 9,
                                          "data-from": p, "data-to": q }, label);
  }
  for (const [key, el] of ruleEls) if (!seen.has(key)) { el.remove(); ruleEls.delete(key); }
}
