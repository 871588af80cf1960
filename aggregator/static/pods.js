// The pods overview: status and restarts from the controller, request rate, error ratio and p95
// latency from the metrics sidecars (polled by the aggregator), each with a small inline SVG chart.
import { api, el, handle, setText, showError, start } from "/ui/static/common.js";

const SVG = "http://www.w3.org/2000/svg";
const GOOD = new Set(["Running", "Succeeded"]);
const BAD = new Set(["CrashLoopBackOff", "OOMKilled", "Failed", "Error", "Unknown"]);
let timer = null;

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// A sparkline of `values` (nulls are gaps); the y axis starts at 0 and ends at max(values, floor).
function sparkline(values, { floor = 0, label = "" } = {}) {
  const width = 120;
  const height = 28;
  const chart = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const title = svg("title");
  title.textContent = label;
  chart.appendChild(title);
  const known = values.filter((v) => v !== null && v !== undefined);
  if (values.length < 2 || known.length === 0) {
    chart.classList.add("nodata");
    const line = svg("line", { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: "baseline" });
    chart.appendChild(line);
    return chart;
  }
  const top = Math.max(floor, ...known) || 1;
  const step = width / (values.length - 1);
  let segment = [];
  const flush = () => {
    if (segment.length === 1) {
      const [x, y] = segment[0];
      chart.appendChild(svg("circle", { cx: x, cy: y, r: 1.5, class: "dot" }));
    } else if (segment.length > 1) {
      chart.appendChild(svg("polyline", { points: segment.map((p) => p.join(",")).join(" "), class: "line" }));
    }
    segment = [];
  };
  values.forEach((value, i) => {
    if (value === null || value === undefined) { flush(); return; }
    const x = (i * step).toFixed(1);
    const y = (height - 2 - (value / top) * (height - 4)).toFixed(1);
    segment.push([x, y]);
  });
  flush();
  return chart;
}

function fmt(value, digits, unit = "") {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toFixed(digits)}${unit}`;
}

function figure(metrics, key, format, floor) {
  if (!metrics) return el("td", { class: "fig" }, "—");
  if (metrics.error && !metrics.history.length) {
    return el("td", { class: "fig", title: metrics.error }, el("span", { class: "bad" }, "scrape failed"));
  }
  const values = metrics.history.map((point) => point[key]);
  const shown = format(metrics[key]);
  return el("td", { class: `fig ${key}` },
    el("span", { class: "value" }, shown),
    sparkline(values, { floor, label: `${shown} now; last ${values.length} intervals` }));
}

function statusBadge(pod) {
  const status = pod.status || "Unknown";
  const kind = GOOD.has(status) ? "ok" : BAD.has(status) ? "bad" : "warn";
  return el("span", { class: `badge ${kind}` }, status);
}

function podRow(pod) {
  const m = pod.metrics;
  const logs = `/ui/logs?${new URLSearchParams({ pod: pod.pod })}`;
  const ready = pod.containers ? `${pod.containers_ready}/${pod.containers}` : "—";
  return el("tr", { dataset: { pod: pod.pod } },
    el("td", { class: "c-name" }, el("a", { href: logs, title: "This pod's logs" }, pod.pod)),
    el("td", {}, pod.service || ""),
    el("td", { class: "c-status" }, statusBadge(pod)),
    el("td", { class: pod.ready ? "c-ready ok" : "c-ready" }, ready),
    el("td", { class: "c-restarts" }, pod.restarts === null || pod.restarts === undefined ? "—" : String(pod.restarts)),
    el("td", { class: "c-reason" }, pod.last_reason || ""),
    figure(m, "request_rate", (v) => fmt(v, 2), 1),
    figure(m, "error_ratio", (v) => fmt(v === null || v === undefined ? v : v * 100, 1, " %"), 0.05),
    figure(m, "p95_ms", (v) => fmt(v, 1, " ms"), 10),
  );
}

async function refresh() {
  const data = await api("/api/v1/pods");
  $rows().replaceChildren(...data.pods.map(podRow));
  showError(data.controller_error ? `Pod status unavailable: ${data.controller_error}` : "");
  const when = data.updated_at ? new Date(data.updated_at * 1000).toISOString().slice(11, 19) : "never";
  setText("status", `${data.pods.length} pods; updated ${when} UTC, every ${data.interval_seconds ?? "?"} s`);
  return data;
}

const $rows = () => document.getElementById("pod-rows");

async function run() {
  const data = await refresh();
  const every = Math.max(1000, (data.interval_seconds || 5) * 1000);
  if (timer) clearInterval(timer);
  timer = setInterval(() => refresh().catch((error) => { clearInterval(timer); timer = null; handle(error, run); }), every);
}

start(run);
