// The live page: renders the view that /events pushes (runtime/web/view.py) and sends the
// buttons' and the put/get box's requests. The token comes with the page (it is in its URL);
// every request carries it: as a bearer header, or in the URL for the event stream, which
// cannot set headers.

const token = document.querySelector('meta[name="paxos-token"]').content;
const ROLES = ["proposer", "acceptor", "learner"];
const cards = new Map(); // actor name -> its card element

function api(path, body) {
  return fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  }).then(async (r) => ({ status: r.status, data: await r.json().catch(() => ({ error: r.statusText })) }));
}

function text(el, selector, value) {
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
  if (c.member) state += ` [${c.member}]`;
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
}

function drawWires() {
  // Faint lines between neighbouring rows: who talks to whom in the seeds' diagrams.
  const svg = document.getElementById("wires");
  const box = svg.getBoundingClientRect();
  const centre = (el, edge) => {
    const r = el.getBoundingClientRect();
    return [r.left + r.width / 2 - box.left, (edge === "top" ? r.top : r.bottom) - box.top];
  };
  const lines = [];
  for (let i = 0; i + 1 < ROLES.length; i++) {
    const upper = document.querySelectorAll(`#row-${ROLES[i]} .card`);
    const lower = document.querySelectorAll(`#row-${ROLES[i + 1]} .card`);
    for (const a of upper) for (const b of lower) lines.push([centre(a, "bottom"), centre(b, "top")]);
  }
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren(...lines.map(([[x1, y1], [x2, y2]]) => {
    const l = document.createElementNS(ns, "line");
    for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, v.toFixed(1));
    return l;
  }));
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
  const names = new Set();
  for (const role of ROLES) for (const c of v.rows[role] || []) { renderCard(c); names.add(c.name); }
  for (const [name, el] of cards) if (!names.has(name)) { el.remove(); cards.delete(name); }
  // After the browser has laid the cards out (a card's height changes with its text).
  requestAnimationFrame(drawWires);
}

function logAction(line, ok) {
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

window.addEventListener("resize", () => drawWires());
connect();
