// Step mode by click and the scenario runner (issue 15), the page's side of runtime/web/stepctl.py.
// app.js imports this module, calls init once and onView with every view that arrives; this module
// imports app.js's POST helper, action log and token. Only functions at the top level: nothing
// here may use app.js's bindings before app.js calls in.
//
// The step panel shows what is held per link (paxos step --json) with deliver, drop and dup per
// message, deliver all per link, campaign and tick per proposer, tick for every actor and release;
// it is hidden while the cluster is not in step mode. The scenario panel runs one seed scenario at a
// time on real processes (paxos scenario NAME) and shows its output as it comes, its verdict and
// its charts (SVG images from a token-guarded route).

// The same URL as the page's own <script> (index.html): the server writes the token in.
import { api, logAction, token } from "./app.js?token=__TOKEN__";

let ready = false; // init has run
const OUTPUT_LINES_SHOWN = 2000; // as the server keeps (stepctl.py OUTPUT_LINES_MAX)
const POLL_MS = 300; // a running scenario's output, this often

function get(path) {
  return fetch(path, { headers: { Authorization: `Bearer ${token}` } })
    .then(async (r) => ({ status: r.status, data: await r.json().catch(() => ({ error: r.statusText })) }));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k === "title" || k === "aria-label") node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

function button(label, onClick, attrs = {}) {
  const b = el("button", { type: "button", textContent: label, ...attrs });
  b.addEventListener("click", () => onClick(b));
  return b;
}

// --- step mode -------------------------------------------------------------------------------

let stepBusy = false; // one listing request at a time
let stepAgain = false; // a view came meanwhile: ask once more when it is back
let stepShown = ""; // what is drawn, so an unchanged listing keeps its elements (and a test's)

const IDLE_ASK_MS = 2000; // not in step mode: whether it is now is asked this often, not with every view
let stepActive = false;
let stepAskedAt = 0;

export function onView() {
  if (ready && (stepActive || Date.now() - stepAskedAt >= IDLE_ASK_MS)) refreshStep();
}

async function refreshStep() {
  if (stepBusy) { stepAgain = true; return; }
  stepBusy = true;
  try {
    do {
      stepAgain = false;
      stepAskedAt = Date.now();
      const { status, data } = await get("/api/step");
      if (status === 200) renderStep(data);
    } while (stepAgain);
  } catch (e) {
    // The server restarting with the cluster: the next view asks again.
  } finally {
    stepBusy = false;
  }
}

function actorLine(name, a) {
  const bits = [a.running ? a.state || "" : "not running"];
  if (a.ballot) bits.push(`ballot ${a.ballot}`);
  if (a.promised) bits.push(`promised ${a.promised}`);
  if (a.chosen_through) bits.push(`chosen through ${a.chosen_through}`);
  if (a.delivered) bits.push(`delivered ${a.delivered}`);
  if (a.serving === "True") bits.push("serving");
  return `${name}: ${bits.filter(Boolean).join(", ")}`;
}

function renderStep(s) {
  const panel = document.getElementById("step-panel");
  panel.hidden = !s.active;
  panel.dataset.active = String(Boolean(s.active));
  stepActive = Boolean(s.active);
  if (!s.active) { stepShown = ""; return; }
  const signature = JSON.stringify([s.ticks, s.links, s.actors]);
  if (signature === stepShown) return;
  stepShown = signature;
  document.getElementById("step-summary").textContent =
    `timers ${s.ticks}; ${s.held} held message${s.held === 1 ? "" : "s"} on ${s.links.length} ` +
    `link${s.links.length === 1 ? "" : "s"}. Messages to clients are never held.`;
  const actors = document.getElementById("step-actors");
  const rows = [];
  for (const [name, a] of Object.entries(s.actors || {})) {
    const row = el("div", { class: "step-actor", "data-name": name, "data-role": a.role, "data-state": a.state || "",
                            "data-serving": a.serving || "" },
                   el("span", { class: "step-actor-state" }, actorLine(name, a)));
    if (a.role === "proposer") {
      row.append(" ", button("campaign", (b) => stepAct("campaign", { actor: name }, b),
                             { "data-op": "campaign", title: "its election timer fires now" }),
                 " ", button("tick", (b) => stepAct("tick", { actors: [name], n: 1 }, b),
                             { "data-op": "tick", title: "one tick of its timers" }));
    }
    if (a.role === "proposer" || a.state) rows.push(row); // the others when their index says something
  }
  actors.replaceChildren(...rows);
  const links = document.getElementById("step-links");
  links.replaceChildren(...s.links.map((l) => {
    const items = l.held.map((m) => el("li", { "data-id": m.id, "data-type": m.type },
      el("code", {}, m.id), ` ${m.label}${m.count > 1 ? ` ×${m.count}` : ""} `,
      ...["deliver", "drop", "dup"].map((op) => button(op, (b) => stepAct(op, { ids: [m.id] }, b), { "data-op": op }))));
    return el("div", { class: "step-link", "data-from": l.from, "data-to": l.to },
      el("h3", {}, `${l.from} → ${l.to} (${l.held.length}) `,
         button("deliver all", (b) => stepAct("deliver", { link: `${l.from}:${l.to}` }, b),
                { "data-op": "deliver-all" })),
      el("ul", {}, ...items));
  }));
  if (!s.links.length) links.replaceChildren(el("p", { class: "hint" }, "nothing held"));
}

function describe(op, body) {
  if (body.ids) return `${op} ${body.ids.join(" ")}`;
  if (body.link) return `${op} all of ${body.link.replace(":", " → ")}`;
  if (body.actor) return `${op} ${body.actor}`;
  if (body.actors) return `${op} ${body.actors.join(" ")}${body.n > 1 ? ` ×${body.n}` : ""}`;
  return op;
}

async function stepAct(op, body, b) {
  if (b) b.disabled = true;
  const what = describe(op, body);
  const out = document.getElementById("step-result");
  try {
    const { status, data } = await api(`/api/step/${op}`, body);
    out.dataset.ok = String(Boolean(data.ok));
    out.textContent = data.ok ? data.said : `${what} failed (${status}): ${data.error}`;
    logAction(`step ${what}: ${data.ok ? "ok" : data.error || status}`, data.ok);
  } catch (e) {
    out.dataset.ok = "false";
    out.textContent = `${what}: ${e}`;
  }
  stepShown = ""; // redraw even if nothing changed (the button is enabled again)
  refreshStep();
}

function stepControls() {
  // Made once (a redraw of the listing keeps what was typed): tick every actor, leave step mode.
  const n = el("input", { type: "number", id: "step-tick-n", min: 1, max: 10000, value: 1, "aria-label": "ticks" });
  const tickAll = button("tick every actor", (b) => {
    const names = Object.entries(lastActors()).filter(([, a]) => a.running).map(([name]) => name);
    stepAct("tick", { actors: names, n: Number(n.value) || 1 }, b);
  }, { id: "step-tick-all", title: "run this many ticks of every running actor, together" });
  const release = button("release", (b) => stepAct("release", {}, b),
                         { id: "step-release", title: "leave step mode: everything held is sent, timers run" });
  document.getElementById("step-actors").before(el("div", { id: "step-controls" }, tickAll, " ×", n, " ", release));
}

function lastActors() {
  try { return JSON.parse(stepShown)[2] || {}; } catch (e) { return {}; }
}

// --- the scenario runner ---------------------------------------------------------------------

let runId = null; // the run shown
let since = 0; // its next output line
let output = []; // its lines shown
let polling = false;
let scenarios = [];

async function loadScenarios() {
  const { status, data } = await get("/api/scenarios");
  const sel = document.getElementById("scenario-name");
  if (status !== 200) return;
  scenarios = (data.scenarios || []).filter((s) => s.real);
  sel.replaceChildren(...scenarios.map((s) => new Option(`${s.seed ? "* " : ""}${s.name}`, s.name)));
  if (data.error) document.getElementById("scenario-about").textContent = data.error;
  else if (!scenarios.length) {
    document.getElementById("scenario-about").textContent =
      "no scenario that real processes run here (`paxos scenario --list`: the scripts ship with the source tree)";
  } else showAbout();
  if (data.run) pollRun(); // the latest run, maybe another tab's: its output, verdict and charts
}

function showAbout() {
  const s = scenarios.find((x) => x.name === document.getElementById("scenario-name").value);
  document.getElementById("scenario-about").textContent = s ? s.about : "";
}

function renderRun(run, asked) {
  // False: a run other than the one shown, asked from another's line number: ask again from 0.
  if (run.id !== runId) { // a new run (this tab's, or one another tab started)
    runId = run.id;
    output = [];
    document.getElementById("scenario-charts").replaceChildren();
    since = 0;
    if (asked !== 0) return false;
  }
  if (run.dropped) output.push(`[... ${run.dropped} lines left out]`);
  output.push(...run.lines);
  if (output.length > OUTPUT_LINES_SHOWN) output.splice(0, output.length - OUTPUT_LINES_SHOWN);
  since = run.next;
  const pre = document.getElementById("scenario-output");
  pre.hidden = !output.length;
  if (run.lines.length || run.dropped) {
    pre.textContent = output.join("\n");
    pre.scrollTop = pre.scrollHeight;
  }
  const verdict = document.getElementById("scenario-verdict");
  const running = run.state === "running";
  verdict.dataset.outcome = running ? "running" : run.outcome;
  verdict.dataset.run = String(run.id);
  verdict.textContent = running ? `${run.name}: running (${run.elapsed_s}s)`
    : `${run.name}: ${run.outcome} (exit ${run.exit ?? "-"}, ${run.elapsed_s}s): ${run.verdict}`;
  document.getElementById("scenario-stop").disabled = !running;
  document.getElementById("scenario-run").disabled = running;
  const charts = document.getElementById("scenario-charts");
  if (!running && charts.children.length !== run.charts.length) {
    charts.replaceChildren(...run.charts.map((url, i) => el("img", {
      class: "scenario-chart", src: `${url}?token=${encodeURIComponent(token)}`,
      alt: `the message sequence chart of ${run.name}, cluster ${i + 1}`, "data-run": String(run.id) })));
  }
  return true;
}

async function pollRun() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const asked = since;
      const { status, data } = await get(`/api/scenario-run?since=${asked}`);
      if (status !== 200 || !data.run) break;
      if (!renderRun(data.run, asked)) continue;
      if (data.run.state !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } catch (e) {
    // The server went away mid-run (it stops the run too); a reload shows what is left.
  } finally {
    polling = false;
  }
}

async function runScenario() {
  const name = document.getElementById("scenario-name").value;
  const verdict = document.getElementById("scenario-verdict");
  if (!name) return;
  const { status, data } = await api(`/api/scenarios/${encodeURIComponent(name)}/run`);
  logAction(`scenario ${name}: ${data.ok ? "started" : data.error || status}`, Boolean(data.ok));
  if (!data.ok) {
    verdict.dataset.outcome = "refused";
    verdict.textContent = `${name}: not started (${status}): ${data.error}`;
    return;
  }
  renderRun(data.run, 0);
  pollRun();
}

async function stopScenario() {
  const { status, data } = await api("/api/scenario-run/stop");
  logAction(`scenario stop: ${data.ok ? "stopped" : data.error || status}`, Boolean(data.ok));
  pollRun();
}

export function init() {
  ready = true;
  stepControls();
  document.getElementById("scenario-name").addEventListener("change", showAbout);
  document.getElementById("scenario-form").addEventListener("submit", (e) => { e.preventDefault(); runScenario(); });
  document.getElementById("scenario-stop").addEventListener("click", stopScenario);
  loadScenarios();
  refreshStep();
}
