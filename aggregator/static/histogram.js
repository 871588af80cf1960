// The volume histogram of the logs explorer: entries per time bucket (GET /api/v1/histogram, the
// same filters as the list), stacked by level, as SVG bars. A click on a bar, or Enter on it,
// hands its time range to `onPick`, which narrows the search to it. Nothing from the data becomes
// markup: titles and labels are text nodes, class names come from the fixed list of levels.
import { el, setText, svg } from "/ui/static/common.js";

const STACK = ["critical", "error", "warning", "info", "debug", "other"]; // bottom to top
const WIDTH = 1000; // viewBox units; the chart stretches to the page's width
const HEIGHT = 100;
const $ = (id) => document.getElementById(id);

// "2024-05-01T10:00:00.000Z" -> "2024-05-01 10:00:00" (".250" kept when not on a second)
export function utc(iso) {
  return String(iso).replace("T", " ").replace(/(\.\d{3})?Z$/, (_m, ms) => (ms && ms !== ".000" ? ms : ""));
}

function duration(seconds) {
  const units = [[86400, "day"], [3600, "h"], [60, "min"], [1, "s"]];
  for (const [size, name] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return name === "day" ? `${n} ${n === 1 ? "day" : "days"}` : `${n} ${name}`;
    }
  }
  return `${seconds} s`;
}

function describe(bucket) {
  const parts = STACK.filter((level) => bucket.counts[level]).map((level) => `${bucket.counts[level]} ${level}`);
  const what = bucket.total === 1 ? "1 entry" : `${bucket.total} entries`;
  return `${utc(bucket.start)} – ${utc(bucket.end)} UTC: ${what}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

function bar(bucket, index, slot, top, onPick) {
  const group = svg("g", {
    class: bucket.total ? "bar" : "bar empty", tabindex: 0, role: "button",
    "data-start": bucket.start, "data-end": bucket.end, "data-total": bucket.total,
    "aria-label": describe(bucket),
  });
  const title = svg("title");
  title.textContent = `${describe(bucket)}. Click to show this time only.`;
  group.appendChild(title);
  const x = index * slot;
  const gap = slot > 4 ? Math.min(3, slot * 0.2) : 0;
  group.appendChild(svg("rect", { class: "hit", x, y: 0, width: slot, height: HEIGHT }));
  let y = HEIGHT;
  for (const level of STACK) {
    const count = bucket.counts[level];
    if (!count) continue;
    const height = Math.max(1, (count / top) * (HEIGHT - 2));
    y -= height;
    group.appendChild(svg("rect", { class: `seg level-${level}`, x: x + gap / 2, y, width: slot - gap, height }));
  }
  const pick = () => onPick(bucket.start, bucket.end);
  group.addEventListener("click", pick);
  group.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      pick();
    }
  });
  return group;
}

export function renderHistogram(data, onPick) {
  const buckets = data.buckets || [];
  const top = Math.max(1, ...buckets.map((bucket) => bucket.total));
  const slot = WIDTH / Math.max(1, buckets.length);
  $("histogram-chart").replaceChildren(...buckets.map((bucket, i) => bar(bucket, i, slot, top, onPick)));
  const totals = {};
  for (const bucket of buckets) {
    for (const [level, count] of Object.entries(bucket.counts)) totals[level] = (totals[level] || 0) + count;
  }
  $("histogram-legend").replaceChildren(...STACK.filter((level) => totals[level]).map((level) =>
    el("span", { class: "key" }, el("span", { class: `swatch level-${level}` }), `${level} ${totals[level]}`)));
  const entries = data.total === 1 ? "1 entry" : `${data.total} entries`;
  setText("histogram-caption", `${entries}; one bar = ${duration(data.bucket_seconds)}. Click a bar to show its time only.`);
  setText("histogram-from", `${utc(data.since)} UTC`);
  setText("histogram-to", `${utc(data.until)} UTC`);
  $("histogram").classList.remove("failed");
  $("histogram").hidden = false;
}

export function histogramFailed(message) {
  $("histogram-chart").replaceChildren();
  $("histogram-legend").replaceChildren();
  setText("histogram-caption", `No histogram: ${message}`);
  setText("histogram-from", "");
  setText("histogram-to", "");
  $("histogram").classList.add("failed");
  $("histogram").hidden = false;
}
