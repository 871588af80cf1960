// The pods overview: status, replicas, ports, age and restarts from the controller, request rate,
// error ratio and p95 latency from the metrics sidecars (polled by the aggregator), each with a
// small inline SVG chart; and restart, stop and start per pod (POST /api/v1/pods/POD/ACTION with
// the session's CSRF header), followed until the controller reports the action done.
import { AuthRequired, api, el, handle, setText, showError, start, svg } from "/ui/static/common.js";

const GOOD = new Set(["Running", "Succeeded"]);
const BAD = new Set(["CrashLoopBackOff", "OOMKilled", "Failed", "Error", "Unknown"]);
const FAST_MS = 500; // between refreshes while an action runs (the aggregator polls faster too)
const OP_GIVE_UP_MS = 5 * 60 * 1000;
const VERBS = { restart: "Restarting", stop: "Stopping", start: "Starting" };
const ops = new Map(); // pod -> {action, id, message, over, ok, since}
const page = { timer: null, every: 5000, data: null };

// A sparkline of `values` (nulls are gaps); the y axis starts at 0 and ends at max(values, floor).
function sparkline(values, { floor = 0, label = "" } = {}) {
  const width = 90;
  const height = 22;
  const chart = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const title = svg("title");
  title.textContent = label;
  chart.appendChild(title);
  const known = values.filter((v) => v !== null && v !== undefined);
  if (values.length < 2 || known.length === 0) {
    chart.classList.add("nodata");
    chart.appendChild(svg("line", { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: "baseline" }));
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

// kubectl's AGE column: 45s, 5m12s, 3h4m, 2d5h
export function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function replicaCell(pod) {
  const list = pod.app_replicas || [];
  if (!list.length) {
    return el("td", { class: "c-replicas" }, pod.replicas ? `none running (of ${pod.replicas})` : "—");
  }
  return el("td", { class: "c-replicas" }, el("ul", { class: "replicas" }, list.map((r) => el("li", {
    class: r.ready ? "replica" : "replica not-ready", dataset: { slot: r.slot, program: r.program, pid: r.pid ?? "" },
    title: `${r.program}: ${r.state}${r.last_reason ? `; last ended: ${r.last_reason}` : ""}`,
  }, `${r.slot} `, el("span", { class: "pid" }, r.pid ? `pid ${r.pid}` : "no pid"), r.port ? ` :${r.port}` : "",
  r.ready ? "" : ` ${r.state || "not ready"}`,
  r.restarts ? `, ${r.restarts} ${r.restarts === 1 ? "restart" : "restarts"}` : ""))));
}

function portsCell(pod) {
  const ports = pod.ports;
  if (!ports) return el("td", { class: "ports" }, "—");
  const named = ["app", "metrics", "logger"].filter((name) => ports[name]).map((name) => `${name} ${ports[name]}`);
  return el("td", { class: "ports", title: ports.slots ? `replica slots: ${ports.slots.join(", ")}` : undefined },
    named.map((text) => el("span", { class: "port" }, text)));
}

function actionsCell(pod) {
  const op = ops.get(pod.pod);
  const busy = Boolean(op && !op.over);
  const known = pod.desired === "running" || pod.desired === "stopped";
  const running = pod.desired === "running";
  const button = (action, label, enabled) => el("button", {
    type: "button", class: "secondary small", dataset: { action },
    disabled: !known || !enabled || busy, onclick: () => act(pod.pod, action),
  }, label);
  return el("td", { class: "c-actions" },
    button("restart", "Restart", running), button("stop", "Stop", running), button("start", "Start", !running),
    op ? el("span", { class: `op${op.over ? (op.ok ? " ok" : " failed") : ""}`, role: "status" }, op.message) : "");
}

function podRow(pod) {
  const m = pod.metrics;
  const logs = `/ui/logs?${new URLSearchParams({ pod: pod.pod })}`;
  const ready = pod.containers ? `${pod.containers_ready}/${pod.containers}` : "—";
  return el("tr", { dataset: { pod: pod.pod } },
    el("td", { class: "c-name" }, el("a", { href: logs, title: "This pod's logs" }, pod.pod),
      pod.service ? el("span", { class: "service" }, pod.service) : ""),
    el("td", { class: "c-status" }, statusBadge(pod)),
    el("td", { class: pod.ready ? "c-ready ok" : "c-ready" }, ready),
    replicaCell(pod),
    el("td", { class: "c-restarts" }, pod.restarts === null || pod.restarts === undefined ? "—" : String(pod.restarts)),
    el("td", { class: "c-age" }, age(pod.age_seconds)),
    portsCell(pod),
    el("td", { class: "c-reason" }, pod.last_reason || ""),
    figure(m, "request_rate", (v) => fmt(v, 2), 1),
    figure(m, "error_ratio", (v) => fmt(v === null || v === undefined ? v : v * 100, 1, " %"), 0.05),
    figure(m, "p95_ms", (v) => fmt(v, 1, " ms"), 10),
    actionsCell(pod),
  );
}

// Follow a pod's action in the controller's report: over once done and, unless it stopped the
// pod or failed, once the pod is Ready again.
function follow(pod) {
  const op = ops.get(pod.pod);
  if (!op || op.over || !op.id) return;
  const last = pod.last_op;
  if (last && last.id === op.id && last.done) {
    if (!last.ok || op.action === "stop" || pod.ready) {
      Object.assign(op, { over: true, ok: Boolean(last.ok), message: last.message || (last.ok ? "done" : "failed") });
    } else {
      op.message = `${last.message}; waiting for Ready…`;
    }
  } else if (Date.now() - op.since > OP_GIVE_UP_MS) {
    Object.assign(op, { over: true, ok: false, message: "no report from the controller in 5 minutes" });
  }
}

const pending = () => [...ops.values()].some((op) => !op.over);

function draw() {
  const data = page.data;
  if (!data) return;
  document.getElementById("pod-rows").replaceChildren(...data.pods.map(podRow));
}

async function refresh() {
  const data = await api("/api/v1/pods");
  page.data = data;
  data.pods.forEach(follow);
  draw();
  showError(data.controller_error ? `Pod status unavailable: ${data.controller_error}` : "");
  const when = data.updated_at ? new Date(data.updated_at * 1000).toISOString().slice(11, 19) : "never";
  const count = data.pods.length === 1 ? "1 pod" : `${data.pods.length} pods`;
  setText("status", `${count}; updated ${when} UTC, every ${data.interval_seconds ?? "?"} s`);
  return data;
}

function schedule(delay) {
  clearTimeout(page.timer);
  page.timer = setTimeout(async () => {
    try {
      await refresh();
    } catch (error) {
      page.timer = null;
      handle(error, run);
      return;
    }
    schedule(pending() ? FAST_MS : page.every);
  }, delay);
}

async function act(name, action) {
  if (action === "stop" && !window.confirm(`Stop pod ${name}? Its app and its sidecars stay stopped until you start it.`)) {
    return;
  }
  const op = { action, id: null, message: `${VERBS[action]}…`, over: false, ok: false, since: Date.now() };
  ops.set(name, op);
  draw();
  try {
    op.id = (await api(`/api/v1/pods/${encodeURIComponent(name)}/${action}`, { method: "POST" })).op_id;
  } catch (error) {
    if (error instanceof AuthRequired) {
      ops.delete(name);
      handle(error, run); // sign in (actions always need it), then click again
      return;
    }
    Object.assign(op, { over: true, message: `${action} refused: ${error.message}` });
    draw();
    return;
  }
  schedule(0);
}

async function run() {
  const data = await refresh();
  page.every = Math.max(1000, (data.interval_seconds || 5) * 1000);
  schedule(pending() ? FAST_MS : page.every);
}

start(run);
