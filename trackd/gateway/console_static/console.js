// trackd console: signs in with an API key (kept in sessionStorage, sent only as an
// Authorization header), reads the gateway's event and decision streams with streamed
// fetch; overview.js draws the overview. Data is rendered with DOM APIs and textContent
// only, never as HTML.
"use strict";

const MAX_ROWS = 500;          // rows kept per list: an hour of traffic never fills the tab
const OVERVIEW_EVERY_MS = 15000;
const RECONNECT_MS = 2000;
const KEY_ITEM = "trackd.console.key";

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_ITEM) || "",
  paused: false, held: [], heldCount: 0, streams: [], overviewTimer: null, view: "live",
  cursor: "",            // the last event's: a broken events stream resumes after it
  decisionIds: new Set(),  // a reconnected decisions stream replays ten minutes
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3);
}

function setStatus(text) { $("status").textContent = text; }

// --- signing in ------------------------------------------------------------------------

function headers() { return { Authorization: `Bearer ${state.key}` }; }

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return `${response.status}: ${body.error.message}`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status}`;
}

async function signIn(key) {
  state.key = key;
  $("sign-in-error").textContent = "";
  setStatus("checking the key…");
  let response;
  try {
    response = await fetch("/console/api/overview", { headers: headers(), cache: "no-store" });
  } catch (error) {
    $("sign-in-error").textContent = `trackd did not answer: ${error}`;
    setStatus("");
    return;
  }
  if (!response.ok) {
    $("sign-in-error").textContent = await errorText(response);
    sessionStorage.removeItem(KEY_ITEM);
    state.key = "";
    setStatus("");
    return;
  }
  sessionStorage.setItem(KEY_ITEM, key);
  $("sign-in").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  show("live");
  renderOverview(await response.json());
  startStreams();
}

function signOut() {
  sessionStorage.removeItem(KEY_ITEM);
  state.key = "";
  for (const controller of state.streams) controller.abort();
  state.streams = [];
  clearInterval(state.overviewTimer);
  $("live").hidden = $("overview").hidden = $("tabs").hidden = $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("key").value = "";
  setStatus("signed out");
  $("key").focus();
}

function show(view) {
  state.view = view;
  $("live").hidden = view !== "live";
  $("overview").hidden = view !== "overview";
  $("tab-live").setAttribute("aria-pressed", String(view === "live"));
  $("tab-overview").setAttribute("aria-pressed", String(view === "overview"));
  clearInterval(state.overviewTimer);
  if (view === "overview") {
    loadOverview();
    state.overviewTimer = setInterval(loadOverview, OVERVIEW_EVERY_MS);
  }
}

// --- streams -------------------------------------------------------------------------

function startStreams() {
  const live = { events: false, decisions: false };
  const report = () => setStatus(live.events && live.decisions ? "live" : "connecting…");
  follow(() => state.cursor
    ? `/console/api/events?cursor=${encodeURIComponent(state.cursor)}` : "/console/api/events",
    { event: (event) => { state.cursor = event.cursor; arrive(addEvent, event); } },
    (up) => { live.events = up; report(); }, () => { state.cursor = ""; });
  follow(() => "/console/api/decisions", {
    decision: (decision) => {
      if (state.decisionIds.has(decision.id)) return;
      state.decisionIds.add(decision.id);
      if (state.decisionIds.size > 4 * MAX_ROWS) {
        state.decisionIds.delete(state.decisionIds.values().next().value);
      }
      arrive(addDecision, decision);
    },
    sampling: (note) => arrive(addSampling, note),
  }, (up) => { live.decisions = up; report(); }, () => {});
}

async function follow(path, handlers, connected, failed) {
  const controller = new AbortController();
  state.streams.push(controller);
  while (!controller.signal.aborted) {
    try {
      const response = await fetch(path(), { headers: headers(), signal: controller.signal,
                                           cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        const text = await errorText(response);
        signOut();
        $("sign-in-error").textContent = text;
        return;
      }
      if (!response.ok) throw new Error(await errorText(response));
      connected(true);
      await readFrames(response.body, handlers);
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error.fromServer) failed();  // e.g. an expired cursor: start again from now
      setStatus(`reconnecting: ${error.message || error}`);
    }
    connected(false);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

async function readFrames(body, handlers) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (!data.length) continue;  // a comment: the heartbeat
      const item = JSON.parse(data.join("\n"));
      if (kind === "error") {
        const error = new Error(item.error ? item.error.message : "stream ended");
        error.fromServer = true;
        throw error;
      }
      if (handlers[kind]) handlers[kind](item);
    }
  }
}

function arrive(handler, item) {
  if (!state.paused) { handler(item); return; }
  state.heldCount += 1;
  state.held.push([handler, item]);
  if (state.held.length > MAX_ROWS) state.held.shift();
  const badge = $("paused-count");
  badge.hidden = false;
  badge.textContent = `${state.heldCount} arrived while paused`;
}

function togglePause() {
  state.paused = !state.paused;
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused) {
    for (const [handler, item] of state.held) handler(item);
    state.held = [];
    state.heldCount = 0;
    $("paused-count").hidden = true;
  }
}

// --- rows ------------------------------------------------------------------------------

function prepend(list, row) {
  list.prepend(row);
  while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
  applyFilters(row);
  counts();
}

function counts() {
  const shown = (list) => [...$(list).children].filter((row) => !row.hidden).length;
  $("events-count").textContent = `(${shown("events")} shown)`;
  $("decisions-count").textContent = `(${shown("decisions")} shown)`;
  $("events-empty").hidden = $("events").children.length > 0;
  $("decisions-empty").hidden = $("decisions").children.length > 0;
}

function badge(text, kind) { return el("span", { class: `badge ${kind || ""}` }, text); }

function addEvent(event) {
  const who = event.user_id ? event.user_id : `anonymous ${event.anonymous_id || ""}`;
  const properties = event.properties || {};
  const row = el("li", {
      class: "row stored", "data-kind": "stored",
      "data-name": event.name, "data-user": `${event.user_id || ""} ${event.anonymous_id || ""}`,
      "data-door": event.source || "" },
    el("div", { class: "line" },
      el("time", { class: "time", datetime: event.received_at }, clock(event.received_at)),
      badge(event.source || "?"),
      el("span", { class: "name" }, event.name),
      el("span", { class: "who" }, who),
      event.violations && event.violations.length
        ? badge(`${event.violations.length} plan violation(s)`, "warn") : null),
    violationList(event.violations, event.plan_version),
    el("div", { class: "line" },
      el("span", { class: "rid mono" }, `request ${event.request_id || "?"}`),
      el("span", { class: "rid mono" }, `event ${event.id}`)),
    el("details", {},
      el("summary", {}, `properties (${Object.keys(properties).length})`),
      el("pre", { class: "pretty" }, JSON.stringify(properties, null, 2)),
      el("details", {}, el("summary", {}, "raw"),
        el("pre", { class: "raw" }, JSON.stringify(event)))));
  prepend($("events"), row);
}

// A row's tracking-plan violations, one item each: kind, field, the plan's message.
function violationList(violations, planVersion) {
  if (!violations || !violations.length) return null;
  return el("ul", { class: "violations" },
    ...violations.map((v) => el("li", { class: "violation" },
      badge(v.kind.replace(/_/g, " "), "warn"),
      el("span", { class: "field mono" }, v.field), " ",
      el("span", { class: "description" }, v.message))),
    planVersion ? el("li", { class: "muted" }, `plan version ${planVersion}`) : null);
}

function addDecision(decision) {
  const kinds = { refused: "bad", rate_limited: "warn", duplicate: "dup", quarantined: "warn" };
  const status = [decision.http_status ? `HTTP ${decision.http_status}` : null,
    decision.grpc_code].filter(Boolean).join(" · ");
  const names = (decision.event_names || []).join(" ");
  const row = el("li", {
      class: `row ${decision.kind}`, "data-kind": decision.kind,
      "data-name": names, "data-user": "", "data-door": decision.source || "" },
    el("div", { class: "line" },
      el("time", { class: "time", datetime: decision.time }, clock(decision.time)),
      badge(decision.source || "?"),
      badge(decision.kind.replace("_", " "), kinds[decision.kind]),
      status ? el("span", { class: "status-code mono" }, status) : null,
      decision.reason && decision.reason !== decision.grpc_code
        ? el("span", { class: "reason mono" }, decision.reason) : null),
    // A quarantined request's violations are listed below, its first one included.
    decision.kind !== "quarantined" && (decision.field || decision.description)
      ? el("div", { class: "line" },
      decision.field ? el("span", { class: "field mono" }, decision.field) : null,
      decision.description ? el("span", { class: "description" }, decision.description) : null)
      : null,
    decision.kind === "duplicate" ? el("div", { class: "line" },
      el("span", {}, `already stored: ${(decision.event_ids || []).map((id, i) =>
        `${(decision.event_names || [])[i] || "?"} (${id})`).join(", ")}`)) : null,
    violationList(decision.plan_violations, null),
    el("div", { class: "line" },
      el("span", { class: "rid mono" }, `request ${decision.request_id || "?"}`),
      el("span", { class: "rid" }, `${decision.method} · ${decision.events} event(s)`)));
  prepend($("decisions"), row);
}

function addSampling(note) {
  const text = `${note.not_recorded} decision(s) were counted but not recorded at ` +
    `${clock(note.time)}: trackd was busy, so this list is sampled (the overview's counts ` +
    "are exact).";
  $("sampling").hidden = false;
  $("sampling").textContent = text;
  prepend($("decisions"), el("li", { class: "row sampling", "data-kind": "sampling",
    "data-name": "", "data-user": "", "data-door": "" }, text));
}

// --- filters ---------------------------------------------------------------------------

function applyFilters(only) {
  const name = $("f-name").value.trim().toLowerCase();
  const user = $("f-user").value.trim().toLowerCase();
  const door = $("f-door").value;
  const decision = $("f-decision").value;
  const rows = only ? [only] : [...$("events").children, ...$("decisions").children];
  for (const row of rows) {
    const kind = row.dataset.kind;
    let visible = true;
    if (decision && kind !== decision && kind !== "sampling") visible = false;
    if (door && row.dataset.door !== door && kind !== "sampling") visible = false;
    if (name && !row.dataset.name.toLowerCase().includes(name)) visible = false;
    if (user && !row.dataset.user.toLowerCase().includes(user)) visible = false;
    row.hidden = !visible;
  }
  if (!only) counts();
}

// --- start -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("key").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("tab-live").addEventListener("click", () => show("live"));
  $("tab-overview").addEventListener("click", () => show("overview"));
  $("pause").addEventListener("click", togglePause);
  $("clear").addEventListener("click", () => {
    $("events").replaceChildren();
    $("decisions").replaceChildren();
    $("sampling").hidden = true;
    counts();
  });
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["f-name", "f-user", "f-door", "f-decision"]) {
    $(id).addEventListener("input", () => applyFilters());
  }
  counts();
  if (state.key) signIn(state.key); else $("key").focus();
});
