// The logs explorer: filters and full-text search over /api/v1/logs (newest first, keyset pages),
// the volume histogram of the same filters, a live tail over /api/v1/tail (EventSource), entry
// detail, and a request id followed across pods as a timeline. Probe and scrape lines are left
// out unless "Show probes" is ticked.
import { api, el, handle, levelClass, setText, showError, start, visible } from "/ui/static/common.js";
import { histogramFailed, renderHistogram } from "/ui/static/histogram.js";
import { addToTimeline, showTimeline, timelineSize } from "/ui/static/timeline.js";

const FIELDS = ["q", "service", "pod", "level", "request_id", "range", "since", "until"];
const PAGE = 100;
const TIMELINE_LINES = 1000; // GET /logs' largest page
const MAX_ROWS = 2000;
const BUCKETS = 60;
const FIRST_FIELDS = ["timestamp", "level", "message", "service_name", "pod", "request_id"];

const state = { next: null, latestId: 0, source: null, selected: null, generation: 0, timeline: false };
const $ = (id) => document.getElementById(id);

function readForm() {
  const values = {};
  for (const name of FIELDS) {
    const value = $("filters").elements[name].value.trim();
    if (value) values[name] = value;
  }
  if (values.range !== "custom") {
    delete values.since;
    delete values.until;
  }
  if ($("f-probes").checked) values.probes = "1";
  return values;
}

function writeForm(values) {
  for (const name of FIELDS) {
    const input = $("filters").elements[name];
    const value = values[name] || "";
    if (input.tagName === "SELECT" && value && ![...input.options].some((o) => o.value === value)) {
      input.append(el("option", { value }, value));
    }
    input.value = value;
  }
  $("f-probes").checked = values.probes === "1";
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
  params.set("probes", values.probes === "1" ? "include" : "exclude");
  return params;
}

function syncUrl(values) {
  const params = new URLSearchParams(values);
  if ($("live").checked) params.set("live", "1");
  const query = params.toString();
  window.history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
}

function text(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function requestLink(requestId) {
  if (!requestId) return "";
  return el("button", {
    type: "button", class: "link rid", title: "Show this request in every pod, in time order",
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

function showMode(timeline) {
  state.timeline = timeline;
  $("timeline").hidden = !timeline;
  $("logs").hidden = timeline;
  if (timeline) {
    $("empty").hidden = true;
    $("more").hidden = true;
  }
}

function updateStatus() {
  const probes = $("f-probes").checked ? "" : "; probe and scrape lines hidden";
  if (state.timeline) {
    const shown = timelineSize();
    setText("status", `${shown} ${shown === 1 ? "line" : "lines"} of one request, in time order${probes}`);
    return;
  }
  const shown = $("rows").children.length;
  $("empty").hidden = shown > 0;
  $("more").hidden = !state.next;
  setText("status", `${shown} ${shown === 1 ? "entry" : "entries"}, newest first` +
    `${state.next ? " (older entries available)" : ""}${probes}`);
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

async function loadHistogram(params, generation) {
  const query = new URLSearchParams(params);
  query.set("buckets", String(BUCKETS));
  setText("histogram-caption", "Counting…"); // the bars stay until the new ones come, not the figures
  try {
    const data = await api(`/api/v1/histogram?${query}`);
    if (generation === state.generation) renderHistogram(data, zoomTo);
  } catch (error) {
    if (generation === state.generation) histogramFailed(error.message || String(error));
  }
}

// A histogram bar was picked: show its time range only (its `end` is its last millisecond).
function zoomTo(startIso, endIso) {
  const values = readForm();
  writeForm({ ...values, range: "custom", since: startIso.replace(/Z$/, ""), until: endIso.replace(/Z$/, "") });
  search().catch((error) => handle(error, search));
}

async function search() {
  const generation = ++state.generation;
  stopTail();
  showError("");
  hideDetail();
  const values = readForm();
  syncUrl(values);
  const params = apiParams(values);
  setText("status", "Searching…");
  if (values.request_id) {
    $("histogram").hidden = true; // the timeline's own time axis shows when the request's lines came
    await searchRequest(values, params, generation);
  } else {
    loadHistogram(params, generation); // drawn when it comes; the list does not wait for it
    await searchPage(params, generation);
  }
  if (generation === state.generation && $("live").checked) startTail(values);
}

async function searchPage(params, generation) {
  const query = new URLSearchParams(params);
  query.set("limit", String(PAGE));
  const page = await api(`/api/v1/logs?${query}`);
  if (generation !== state.generation) return; // a newer search started meanwhile
  showMode(false);
  state.next = page.next;
  state.latestId = page.latest_id;
  $("rows").replaceChildren(...page.entries.map((entry) => row(entry, false)));
  updateStatus();
}

// One request's lines in time order: GET /logs orders a page by the stored timestamps (arrival
// breaks ties). The newest stored id is read first, so the live tail misses nothing after it.
async function searchRequest(values, params, generation) {
  const mark = new URLSearchParams(params);
  mark.set("limit", "1");
  const { latest_id: latestId } = await api(`/api/v1/logs?${mark}`);
  const query = new URLSearchParams(params);
  query.set("limit", String(TIMELINE_LINES));
  const entries = await api(`/logs?${query}`);
  if (generation !== state.generation) return;
  state.next = null;
  state.latestId = latestId;
  showMode(true);
  showTimeline(values.request_id, entries, { limit: TIMELINE_LINES, onSelect: showDetail });
  updateStatus();
}

async function loadMore() {
  if (!state.next || state.timeline) return;
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
    if (state.timeline) {
      addToTimeline(entry);
    } else {
      const rows = $("rows");
      rows.prepend(row(entry, true));
      while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
    }
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
  writeForm({ request_id: requestId, probes: $("f-probes").checked ? "1" : "" });
  search().catch((error) => handle(error, search));
}

function run() {
  const params = new URLSearchParams(window.location.search);
  const values = {};
  for (const name of [...FIELDS, "probes"]) if (params.get(name)) values[name] = params.get(name);
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
  $("f-probes").addEventListener("change", again(search));
  $("detail-close").addEventListener("click", hideDetail);
  $("timeline-close").addEventListener("click", () => {
    $("f-request-id").value = "";
    again(search)();
  });
  $("live").addEventListener("change", () => {
    if ($("live").checked) startTail(readForm());
    else stopTail();
    syncUrl(readForm());
  });
}

wire();
start(run);
