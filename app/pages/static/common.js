// Shared helpers for the synflow pages: API calls, formatting, small DOM builders. No dependencies.
"use strict";

const API = "/api/v1";

// An API error: `status`, a `message` and `errors` [{field, message}] as the service returns them.
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.errors = (body && body.errors) || [];
  }
}

function authHeaders() {
  const token = window.localStorage.getItem("synflow-token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  let response;
  try {
    response = await fetch(API + path, { ...options, headers });
  } catch (err) {
    throw new ApiError(0, { message: `The server cannot be reached (${err.message}).` });
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { message: text }; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return value.toLocaleString("en");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(2);
  return value.toFixed(digits);
}

function fmtTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso.endsWith("Z") ? iso : iso + "Z");
  return date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function secondsBetween(a, b) {
  if (!a) return null;
  const start = new Date(a.endsWith("Z") ? a : a + "Z");
  const end = b ? new Date(b.endsWith("Z") ? b : b + "Z") : new Date();
  return (end - start) / 1000;
}

function statusBadge(status) {
  return el("span", { class: `badge status-${status}`, text: status });
}

function progressBar(progress, label) {
  const pct = Math.round(100 * (progress.fraction || 0));
  const bar = el("div", {
    class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(pct), "aria-label": label || "Progress",
  }, el("div", { class: "progress-fill", style: `width:${pct}%` }));
  return el("div", { class: "progress-wrap" }, bar,
    el("span", { class: "progress-text", text: `${progress.step} / ${progress.total_steps}` }));
}

function setState(node, kind, message) {
  node.hidden = !message;
  node.className = `state ${kind || ""}`;
  node.textContent = message || "";
}

window.synflow = { api, ApiError, authHeaders, el, fmt, fmtTime, fmtDuration, secondsBetween, statusBadge, progressBar, setState };
