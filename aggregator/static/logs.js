// The logs explorer: filters and full-text search over /api/v1/logs (newest first, keyset pages),
// a live tail over /api/v1/tail (EventSource), entry detail, and following a request id across pods.
import { api, el, handle, setText, showError, start, visible } from "/ui/static/common.js";

const FILTERS = ["q", "service", "pod", "level", "request_id", "range", "since", "until"];
const PAGE = 100;
const MAX_ROWS = 2000;
const LEVELS = new Set(["debug", "info", "warning", "error", "critical"]);
const FIRST_FIELDS = ["timestamp", "level", "message", "service_name", "pod", "request_id"];

const state = { next: null, latestId: 0, source: null, count: 0, selected: null, generation: 0 };
const $ = (id) => document.getElementById(id);

function readForm() {
  const values = {};
  for (const name of FILTERS) {
    const value = $("filters").elements[name].value.trim();
    if (value) values[name] = value;
  }
  if (values.range !== "custom") {
    delete values.since;
    delete values.until;
  }
  return values;
}

function writeForm(values) {
  for (const name of FILTERS) {
    const input = $("filters").elements[name];
    const value = values[name] || "";
    if (input.tagName === "SELECT" && value && ![...input.options].some((o) => o.value === value)) {
      input.append(el("option", { value }, value));
    }
    input.value = value;
  }
  showCustomRange();
}

function showCustomRange() {
  const custom = $("f-range").value === "custom";
  document.querySelectorAll(".custom-range").forEach((node) => { node.hidden = !custom; });
}

// The API parameters for the current filters: a relative range becomes `since` in epoch seconds.
function apiParams(values) {
  const params = new URLSearchParams();
  for (const name of ["q", "service", "pod", "level", "request_id"]) {
    if (values[name]) params.set(name, values[name]);
  }
  if (values.range && values.range !== "custom") {
    params.set("since", String(Math.floor(Date.now() / 1000) - Number(values.range)));
  } else if (values.range === "custom") {
    if (values.since) params.set("since", values.since); // no zone: the server reads it as UTC
    if (values.until) params.set("until", values.until);
  }
  return params;
}

function syncUrl(values) {
  const params = new URLSearchParams(values);
  if ($("live").checked) params.set("live", "1");
  const query = params.toString();
  window.history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
}

function levelClass(level) {
  const name = String(level || "").toLowerCase();
  if (name === "warn") return "lvl lvl-warning";
  if (name === "fatal") return "lvl lvl-critical";
  return LEVELS.has(name) ? `lvl lvl-${name}` : "lvl lvl-other";
}

function text(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function requestLink(requestId) {
  if (!requestId) return "";
  return el("button", {
    type: "button", class: "link rid", title: "Show this request in every pod",
    onclick: (event) => { event.stopPropagation(); followRequest(text(requestId)); },
  }, text(requestId));
}

function row(entry, fresh) {
  const tr = el("tr", { tabindex: 0, class: fresh ? "entry new" : "entry" },
    el("td", { class: "c-time" }, text(entry.timestamp)),
    el("td", { class: "c-level" }, el("span", { class: levelClass(entry.level) }, text(entry.level))),
    el("td", { class: "c-pod" }, text(entry.pod)),
    el("td", { class: "c-rid" }, requestLink(entry.request_id)),
    el("td", { class: "msg" }, text(entry.message)),
  );
  tr.addEventListener("click", () => showDetail(entry, tr));
  tr.addEventListener("keydown", (event) => { if (event.key === "Enter") showDetail(entry, tr); });
  return tr;
}

function updateStatus() {
  const shown = $("rows").children.length;
  $("empty").hidden = shown > 0;
  $("more").hidden = !state.next;
  setText("status", `${shown} ${shown === 1 ? "entry" : "entries"}, newest first${state.next ? " (older entries available)" : ""}`);
}

function showDetail(entry, tr) {
  if (state.selected) state.selected.classList.remove("selected");
  state.selected = tr;
  tr.classList.add("selected");
  const keys = Object.keys(entry);
  const ordered = [...FIRST_FIELDS.filter((k) => k in entry), ...keys.filter((k) => !FIRST_FIELDS.includes(k)).sort()];
  const body = $("detail-fields").tBodies[0];
  body.replaceChildren(...ordered.map((key) => el("tr", {},
    el("th", { scope: "row" }, key),
    el("td", {}, key === "request_id" ? requestLink(entry[key]) : text(entry[key])),
  )));
  $("detail-json").textContent = visible(JSON.stringify(entry, null, 2));
  $("detail").hidden = false;
}

function hideDetail() {
  $("detail").hidden = true;
  if (state.selected) state.selected.classList.remove("selected");
  state.selected = null;
}

async function search() {
  const generation = ++state.generation;
  stopTail();
  showError("");
  hideDetail();
  const values = readForm();
  syncUrl(values);
  const params = apiParams(values);
  params.set("limit", String(PAGE));
  setText("status", "Searching…");
  const page = await api(`/api/v1/logs?${params}`);
  if (generation !== state.generation) return; // a newer search started meanwhile
  state.next = page.next;
  state.latestId = page.latest_id;
  $("rows").replaceChildren(...page.entries.map((entry) => row(entry, false)));
  updateStatus();
  if ($("live").checked) startTail(values);
}

async function loadMore() {
  if (!state.next) return;
  const params = apiParams(readForm());
  params.set("limit", String(PAGE));
  params.set("cursor", state.next);
  const page = await api(`/api/v1/logs?${params}`);
  state.next = page.next;
  $("rows").append(...page.entries.map((entry) => row(entry, false)));
  updateStatus();
}

function stopTail() {
  if (state.source) state.source.close();
  state.source = null;
  $("live-state").hidden = true;
}

function liveState(label, kind) {
  const node = setText("live-state", label);
  node.className = `live-state ${kind}`;
  node.hidden = false;
}

function startTail(values) {
  stopTail();
  const params = apiParams(values);
  params.set("since_id", String(state.latestId));
  const source = new EventSource(`/api/v1/tail?${params}`);
  state.source = source;
  liveState("Connecting…", "waiting");
  source.onopen = () => liveState("Live", "on");
  source.onmessage = (event) => {
    const entry = JSON.parse(event.data);
    const rows = $("rows");
    rows.prepend(row(entry, true));
    while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
    updateStatus();
  };
  source.addEventListener("error", (event) => {
    if (event.data) { // the server's own `event: error` (a bad filter, a query timeout)
      source.close();
      showError(`Live tail stopped: ${JSON.parse(event.data).error}`);
      liveState("Stopped", "off");
    } else if (source.readyState === EventSource.CLOSED) {
      liveState("Stopped (the server refused the stream)", "off");
    } else {
      liveState("Reconnecting…", "waiting");
    }
  });
}

function followRequest(requestId) {
  writeForm({ request_id: requestId });
  search().catch((error) => handle(error, search));
}

function run() {
  const params = new URLSearchParams(window.location.search);
  const values = {};
  for (const name of FILTERS) if (params.get(name)) values[name] = params.get(name);
  writeForm(values);
  $("live").checked = params.get("live") === "1";
  return search();
}

function wire() {
  const again = (fn) => () => fn().catch((error) => handle(error, run));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); again(search)(); });
  $("clear").addEventListener("click", () => { writeForm({}); again(search)(); });
  $("more").addEventListener("click", again(loadMore));
  $("f-range").addEventListener("change", showCustomRange);
  $("detail-close").addEventListener("click", hideDetail);
  $("live").addEventListener("change", () => {
    if ($("live").checked) startTail(readForm());
    else stopTail();
    syncUrl(readForm());
  });
}

wire();
start(run);
