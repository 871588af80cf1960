// Shared by the UI pages: DOM building that only ever creates text nodes (control characters made
// visible), the JSON API client, and the session (sign in with the token once: the HttpOnly cookie
// then holds a server-side session id, never the token; CSRF header on changes).
// Log content must never become markup: nothing here or in the pages uses innerHTML.

export class AuthRequired extends Error {}

export class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const session = { csrf: null, csrfHeader: "X-CSRF-Token" };

// Control and bidirectional-override characters would make a log line display as something it is
// not (U+202E shows "invoice\u202Etxt.exe" as "invoiceexe.txt"): they are shown as ⟨U+202E⟩,
// still as text. Tab and newline stay (tracebacks); C0/C1 controls, LRM/RLM/ALM, the embeddings,
// overrides and isolates (U+202A-U+202E, U+2066-U+2069) do not.
const HIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

export function visible(text) {
  return String(text).replace(HIDDEN, (ch) => `⟨U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
}

// el("td", {class: "msg", title: t}, "text", otherNode): strings are appended as text nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "title") node.setAttribute(key, visible(value));
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) append(node, child);
  return node;
}

function append(node, child) {
  if (child === undefined || child === null || child === false) return;
  if (Array.isArray(child)) child.forEach((c) => append(node, c));
  else if (child instanceof Node) node.appendChild(child);
  else node.appendChild(document.createTextNode(visible(child)));
}

// svg("rect", {x: 1, class: "seg"}): an SVG element; attribute values are set as text, and any
// text inside (a <title>) is added by the caller with textContent.
const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  return node;
}

const LEVELS = new Set(["debug", "info", "warning", "error", "critical"]);

// The badge class of a level: the usual spellings get their colour, anything else a neutral one.
export function levelClass(level) {
  const name = String(level || "").toLowerCase();
  if (name === "warn") return "lvl lvl-warning";
  if (name === "fatal") return "lvl lvl-critical";
  return LEVELS.has(name) ? `lvl lvl-${name}` : "lvl lvl-other";
}

export function setText(id, text) {
  const node = document.getElementById(id);
  node.textContent = visible(text || "");
  return node;
}

export function showError(message) {
  const node = setText("error", message);
  node.hidden = !message;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.csrf) headers[session.csrfHeader] = session.csrf;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  const message = (data && data.error) || `HTTP ${response.status}`;
  if (response.status === 401) throw new AuthRequired(message);
  if (!response.ok || !data || data.ok === false) throw new ApiFailure(response.status, message);
  return data;
}

function renderSession(info) {
  session.csrf = info.csrf_token || null;
  session.csrfHeader = info.csrf_header || "X-CSRF-Token";
  const box = document.getElementById("session");
  box.replaceChildren();
  if (info.via === "cookie") {
    box.append(
      el("span", { class: "who" }, "Signed in"),
      el("button", { type: "button", id: "logout", class: "secondary small", onclick: logout }, "Sign out"),
    );
  } else if (!info.read_auth_required) {
    box.append(el("span", { class: "who open", title: "AGGREGATOR_READ_AUTH lets reads through without the token on loopback" }, "Reads open (loopback)"));
  }
}

async function logout() {
  try {
    await api("/api/v1/session", { method: "DELETE" });
  } catch (error) {
    showError(`Sign out failed: ${error.message}`);
    return;
  }
  window.location.reload();
}

function showLogin(run) {
  document.getElementById("main").hidden = true;
  const section = document.getElementById("login");
  const form = document.getElementById("login-form");
  const input = document.getElementById("login-token");
  const error = document.getElementById("login-error");
  section.hidden = false;
  input.focus();
  form.onsubmit = async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const info = await api("/api/v1/session", { method: "POST", body: { token: input.value.trim() } });
      input.value = "";
      section.hidden = true;
      renderSession({ ...info, read_auth_required: true });
      showMain(run);
    } catch (failure) {
      error.textContent = failure instanceof AuthRequired ? "That token is not valid." : failure.message;
      error.hidden = false;
      input.select();
    }
  };
}

function showMain(run) {
  document.getElementById("main").hidden = false;
  run().catch((error) => handle(error, run));
}

// Errors of a page's work: a 401 means the cookie is gone or the token changed: sign in again.
export function handle(error, run) {
  if (error instanceof AuthRequired) {
    showLogin(run);
    return;
  }
  showError(error.message || String(error));
}

// Entry point of a page: find out whether reads need the token, ask for it if so, then run.
export async function start(run) {
  let info;
  try {
    info = await api("/api/v1/session");
  } catch (error) {
    document.getElementById("main").hidden = false;
    showError(`Cannot reach the aggregator: ${error.message}`);
    return;
  }
  renderSession(info);
  if (info.read_auth_required && !info.authenticated) showLogin(run);
  else showMain(run);
}
