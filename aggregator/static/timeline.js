// A request followed across pods as a timeline: its lines in timestamp order (the server orders
// GET /logs by the stored time), each with its offset from the request's first line, the pod and
// service that wrote it, and a tick on a time axis shared by the rows. Live lines are inserted at
// their time. Everything from the data is text (el() builds text nodes).
import { el, levelClass, setText, svg } from "/ui/static/common.js";

const AXIS = 160; // width of the per-row time axis, px
const COLOURS = 8; // pod colour classes pod-c0 .. pod-c7, given in order of first appearance
const $ = (id) => document.getElementById(id);

const line = { requestId: "", entries: [], ids: new Set(), onSelect: null, truncated: false };

function millis(entry) {
  const value = Date.parse(entry.timestamp);
  return Number.isFinite(value) ? value : null;
}

export function offset(ms) {
  if (ms === null) return "";
  if (ms < 1000) return `+${ms} ms`;
  if (ms < 60000) return `+${(ms / 1000).toFixed(3)} s`;
  const minutes = Math.floor(ms / 60000);
  return `+${minutes} min ${((ms % 60000) / 1000).toFixed(3)} s`;
}

function text(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function render() {
  const times = line.entries.map(millis).filter((ms) => ms !== null);
  const first = times.length ? Math.min(...times) : null;
  const span = times.length ? Math.max(...times) - first : 0;
  const colours = new Map();
  const rows = line.entries.map((entry) => {
    const pod = text(entry.pod);
    if (!colours.has(pod)) colours.set(pod, colours.size % COLOURS);
    const colour = `pod-c${colours.get(pod)}`;
    const ms = millis(entry);
    const since = ms === null || first === null ? null : ms - first;
    const axis = svg("svg", { class: "tick", width: AXIS, height: 12, viewBox: `0 0 ${AXIS} 12` });
    axis.appendChild(svg("line", { class: "axis", x1: 0, y1: 6, x2: AXIS, y2: 6 }));
    if (since !== null) {
      const x = span ? 3 + (since / span) * (AXIS - 6) : 3;
      axis.appendChild(svg("circle", { class: `dot ${colour}`, cx: x.toFixed(1), cy: 6, r: 3.5 }));
    }
    const service = text(entry.service_name);
    const tr = el("tr", { tabindex: 0, class: `entry ${colour}`, dataset: { id: text(entry.id) } },
      el("td", { class: "c-offset" }, offset(since)),
      el("td", { class: "c-time" }, text(entry.timestamp)),
      el("td", { class: "c-pod" }, el("span", { class: `pod-name ${colour}` }, pod),
        service ? el("span", { class: "service" }, service) : ""),
      el("td", { class: "c-level" }, el("span", { class: levelClass(entry.level) }, text(entry.level))),
      el("td", { class: "msg" }, text(entry.message)),
      el("td", { class: "c-axis" }, axis),
    );
    tr.addEventListener("click", () => line.onSelect(entry, tr));
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") line.onSelect(entry, tr); });
    return tr;
  });
  $("timeline-rows").replaceChildren(...rows);
  const pods = [...colours.keys()].filter(Boolean);
  const count = line.entries.length === 1 ? "1 line" : `${line.entries.length} lines`;
  const over = times.length > 1 ? ` over ${offset(span).slice(1)}` : "";
  setText("timeline-title", `Request ${line.requestId}: ${count} from ${pods.length === 1 ? "1 pod" : `${pods.length} pods`}` +
    `${pods.length ? ` (${pods.join(", ")})` : ""}${over}${line.truncated ? "; the latest 1,000 lines only" : ""}`);
  $("timeline-empty").hidden = line.entries.length > 0;
}

// `entries` come in time order from the server; `limit` is what was asked for (more may exist).
export function showTimeline(requestId, entries, { limit, onSelect }) {
  line.requestId = requestId;
  line.entries = entries.slice();
  line.ids = new Set(entries.map((entry) => entry.id));
  line.onSelect = onSelect;
  line.truncated = entries.length >= limit;
  render();
  return line.entries.length;
}

// A line from the live tail: placed after every line not later than it (ties keep arrival order).
export function addToTimeline(entry) {
  if (line.ids.has(entry.id)) return false;
  line.ids.add(entry.id);
  const ms = millis(entry);
  let at = line.entries.length;
  if (ms !== null) {
    while (at > 0 && millis(line.entries[at - 1]) !== null && millis(line.entries[at - 1]) > ms) at -= 1;
  }
  line.entries.splice(at, 0, entry);
  render();
  return true;
}

export function timelineSize() {
  return line.entries.length;
}
