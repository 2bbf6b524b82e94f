// The runs list: status, progress and key metrics; refreshes while any run is queued or running.
"use strict";
(() => {
  const { api, el, fmt, fmtTime, statusBadge, progressBar, setState } = window.synflow;
  const table = document.getElementById("runs");
  const body = table.querySelector("tbody");
  const state = document.getElementById("runs-state");
  const more = document.getElementById("more");
  const POLL_MS = 3000;
  let cursor = null;
  let runs = [];

  function row(run) {
    const m = run.latest_metrics || {};
    return el("tr", { "data-run-id": run.id },
      el("td", {}, el("a", { href: `/runs/${run.id}`, text: run.name })),
      el("td", {}, statusBadge(run.status)),
      el("td", {}, progressBar(run.progress, `Progress of ${run.name}`)),
      el("td", { class: "num", text: fmt(run.molecules) }),
      el("td", { class: "num", text: fmt(m.top10_reward) }),
      el("td", { class: "num", text: fmt(m.modes) }),
      el("td", { class: "num", text: fmt(m.loss) }),
      el("td", { text: run.device || "–" }),
      el("td", { text: fmtTime(run.created_at) }));
  }

  // The list endpoint is light; metrics and counts come from each run's detail.
  async function detailed(items) {
    return Promise.all(items.map((r) => api(`/runs/${r.id}`).catch(() => r)));
  }

  function render() {
    body.replaceChildren(...runs.map(row));
    table.hidden = runs.length === 0;
    if (!runs.length) {
      state.replaceChildren("No runs yet. ", el("a", { href: "/runs/new", text: "Start one" }), ".");
      state.hidden = false;
    } else {
      setState(state, "", "");
    }
    more.hidden = !cursor;
  }

  async function load(append) {
    try {
      const page = await api(`/runs?limit=25${append && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      const items = await detailed(page.items);
      runs = append ? runs.concat(items) : items;
      if (!append) cursor = page.next_cursor;
      else cursor = page.next_cursor;
      render();
    } catch (err) {
      setState(state, "error", `Runs could not be loaded: ${err.message}`);
    }
  }

  async function poll() {
    const active = runs.filter((r) => r.status === "queued" || r.status === "running");
    if (active.length) {
      const fresh = await detailed(active);
      const byId = Object.fromEntries(fresh.map((r) => [r.id, r]));
      runs = runs.map((r) => byId[r.id] || r);
      render();
    }
    setTimeout(poll, POLL_MS);
  }

  more.addEventListener("click", () => load(true));
  load(false).then(() => setTimeout(poll, POLL_MS));
})();
